//! `keel-build`: turns a recipe (`os-image/keel.toml`) into a bootable keel GPT disk image with two root slots,
//! without root, loop devices or mounts, byte for byte reproducibly.
//!
//! # Background
//! A keel disk holds an EFI system partition (systemd-boot, one Type #1 entry per slot, the slot's kernel and
//! initramfs), two root slots `keel-root-a`/`keel-root-b` and an ext4 data partition `keel-data`. The names come
//! from `keel-os-image`, which PID 1 reads with.
//!
//! # Usage
//! ```text
//! keel-build image --recipe os-image/keel.toml --out build/keel.img \
//!     --init target/x86_64-unknown-linux-musl/release/keel \
//!     --container-init target/x86_64-unknown-linux-musl/release/keel-container-init \
//!     [--cache build/cache] [--boot-dir build/boot] [--format raw|qcow2] [--preload ARCHIVE]... \
//!     [--update-key PUBLIC]...
//! keel-build keygen --out DIR
//! keel-build channel --key SECRET --version V --compatible C --bundle URL --out FILE
//! keel-build bundle --recipe os-image/keel.toml --out build/keel.bundle --key SECRET \
//!     --init … --container-init … [--cache build/cache] [--preload ARCHIVE]... [--update-key PUBLIC]...
//! keel-build kernel --recipe os-image/keel.toml [--cache build/cache] [--update]
//! keel-build config-drive --user-data FILE [--meta-data FILE] [--format vfat|iso9660] \
//!     [--layout nocloud|config-2] --out FILE
//! ```
//! * `--cache`: the Debian kernel package is downloaded (`apt-get download`) and extracted there once (~400 MB),
//!   see [`keel_image_builder::kernel_cache`]. A populated cache is only read.
//! * The recipe's `kernel.package` names the kernel the way Debian users do (`linux-image-amd64`, or a flavour such
//!   as `linux-image-cloud-amd64`); the lock file beside the recipe (`os-image/keel.lock`,
//!   [`keel_image_builder::kernel_lock`]) records the package, version and sha256 a build used. Builds use the
//!   locked package (hash checked; from the cache without network); when it has left the mirror, a build moves to
//!   the current one, says so in one line and rewrites the lock. See [`keel_image_builder::kernel_package`].
//! * `kernel`: makes the locked kernel ready in the cache; with `--update`, first moves the lock to Debian's
//!   current kernel (running `apt-get update` when root).
//! * `--boot-dir`: also writes `vmlinux` (uncompressed ELF, for direct PVH boot), `initrd.img` (the ESP's bytes)
//!   and `cmdline` (slot a's kernel command line, one line) for tests, and `kernel` (one line:
//!   `linux-image-6.1.0-57-amd64 6.1.192-3 (6.1.0-57-amd64)`, also in the summary and `/etc/os-release` as
//!   `KEEL_KERNEL`) for `make bench`.
//! * `--format qcow2`: `--out` is a qcow2 made with `qemu-img convert`; the raw image is kept next to it as
//!   `<out without extension>.raw`.
//! * `--update-key`: a public key file (`keygen`'s `update.pub`) whose bundles the OS installs, copied to
//!   `/usr/share/keel/update-keys/<n>.pub`. Without one an image installs no update.
//! * `keygen`: writes a new signing key pair to `DIR/update.key` (secret, mode 0600) and `DIR/update.pub`; never
//!   replaces an existing file.
//! * `bundle`: builds what `image` puts in a root slot (kernel, initramfs, root erofs) and writes it as an update
//!   bundle signed with `--key` (`docs/update.md`); reproducible like the image. Its OS trusts the `--update-key`s,
//!   or without any the signing key's public half.
//! * `channel`: writes the signed channel document a host polls at `[update] url` (`docs/update.md`,
//!   "Channels"): version `V` for `compatible` `C`, its bundle at `URL` (absolute, or relative to the channel
//!   file's own URL). Reproducible; replaces `FILE` in one rename.
//! * `config-drive`: the user-data must pass keel's validation (every error is printed, exit 100). NoCloud puts
//!   `user-data` and `meta-data` on a filesystem labelled `cidata`; config-2 puts `openstack/latest/user_data`
//!   and `meta_data.json` on one labelled `config-2`. Without `--meta-data` the instance id is the user-data's
//!   short sha256; given meta-data is converted between the NoCloud and OpenStack forms as the layout needs.
//!
//! # Design
//! Each filesystem is made as a plain file (mkfs.fat + mtools, mkfs.erofs, mke2fs), then copied into the disk image
//! at its partition's offset, skipping zero blocks so the image stays sparse. Timestamps come from
//! `SOURCE_DATE_EPOCH` (default 1764374400, 2025-11-29); UUIDs, the FAT volume id and the ext4 hash seed are
//! derived from the OS version and the partition name.
//!
//! # Exit codes
//! | Code | Meaning |
//! |---|---|
//! | 0 | image, bundle, key pair or config drive built |
//! | 100 | usage error: bad command line, bad recipe or lock file, a key file that is no key (or is in keygen's way), invalid user-data or meta-data |
//! | 111 | system error: a tool, the cache or a file operation failed |
//!
//! # Current limitations
//! Slot b is left empty (zeros) and has no boot entry: an update writes it. x86-64 and Debian kernel packages only;
//! the kernel's XZ payload must use only the x86 BCJ and LZMA2 filters.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use keel_image_builder::bundle::{self, BundleBuildError, BundleRequest};
use keel_image_builder::channel::{self, ChannelBuildError, ChannelRequest};
use keel_image_builder::config_drive::{self, ConfigDriveError, ConfigDriveRequest, DriveFormat, DriveLayout};
use keel_image_builder::image::{self, ImageError, ImageFormat, ImageRequest};
use keel_image_builder::kernel_package;
use keel_image_builder::slot_build::SlotSources;
use keel_image_builder::update_key::{self, UpdateKeyError};

#[derive(Parser)]
#[command(name = "keel-build", version, about = "Builds keel disk images and update bundles from a recipe")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build a disk image.
    Image(ImageArgs),
    /// Build a signed update bundle: the kernel, initramfs and root filesystem an image would hold.
    Bundle(BundleArgs),
    /// Make a new update signing key pair (update.key, update.pub).
    Keygen(KeygenArgs),
    /// Write a signed channel document naming a channel's latest bundle.
    Channel(ChannelArgs),
    /// Download, check and extract the recipe's locked kernel; with --update, move the lock to the current one.
    Kernel(KernelArgs),
    /// Build a config drive (NoCloud or OpenStack config-2) from a user-data file.
    ConfigDrive(ConfigDriveArgs),
}

#[derive(clap::Args)]
struct KernelArgs {
    /// The recipe (TOML); its lock file is beside it, with the extension .lock.
    #[arg(long)]
    recipe: PathBuf,
    /// Kernel package cache directory.
    #[arg(long, default_value = "build/cache")]
    cache: PathBuf,
    /// Move the lock to Debian's current kernel package for the recipe's kernel.package.
    #[arg(long)]
    update: bool,
}

#[derive(clap::Args)]
struct ConfigDriveArgs {
    /// The user-data (TOML); refused unless valid.
    #[arg(long)]
    user_data: PathBuf,
    /// NoCloud meta-data (`key: value`) or OpenStack meta_data.json; generated when absent.
    #[arg(long)]
    meta_data: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = DriveFormatArg::Vfat)]
    format: DriveFormatArg,
    #[arg(long, value_enum, default_value_t = DriveLayoutArg::Nocloud)]
    layout: DriveLayoutArg,
    /// The image to write.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Clone, Copy, ValueEnum)]
enum DriveFormatArg {
    Vfat,
    Iso9660,
}

#[derive(Clone, Copy, ValueEnum)]
enum DriveLayoutArg {
    Nocloud,
    #[value(name = "config-2")]
    Config2,
}

/// What `image` and `bundle` both build a slot from.
#[derive(clap::Args)]
struct SlotArgs {
    /// The recipe (TOML).
    #[arg(long)]
    recipe: PathBuf,
    /// The static PID 1 binary.
    #[arg(long)]
    init: PathBuf,
    /// The static container init that `init = true` runs (keel-container-init).
    #[arg(long)]
    container_init: PathBuf,
    /// Kernel package cache directory.
    #[arg(long, default_value = "build/cache")]
    cache: PathBuf,
    /// An image archive (docker save or OCI archive) for /usr/share/keel/images, imported at boot. Repeatable.
    #[arg(long)]
    preload: Vec<PathBuf>,
    /// A public update key file (keygen's update.pub): the OS installs bundles it signed. Repeatable; a bundle
    /// without any trusts its signing key.
    #[arg(long)]
    update_key: Vec<PathBuf>,
}

impl SlotArgs {
    fn into_sources(self) -> SlotSources {
        SlotSources {
            recipe: self.recipe,
            init: self.init,
            container_init: self.container_init,
            cache: self.cache,
            preload: self.preload,
            update_keys: self.update_key,
        }
    }
}

#[derive(clap::Args)]
struct ImageArgs {
    #[command(flatten)]
    slot: SlotArgs,
    /// The disk image to write.
    #[arg(long)]
    out: PathBuf,
    /// Output format; with qcow2 the raw image is kept as <out stem>.raw.
    #[arg(long, value_enum, default_value_t = Format::Raw)]
    format: Format,
    /// Also write vmlinux, initrd.img, cmdline (for direct kernel boot) and kernel (its description) here.
    #[arg(long)]
    boot_dir: Option<PathBuf>,
}

#[derive(clap::Args)]
struct BundleArgs {
    #[command(flatten)]
    slot: SlotArgs,
    /// The bundle to write.
    #[arg(long)]
    out: PathBuf,
    /// The secret key file that signs the bundle (keygen's update.key).
    #[arg(long)]
    key: PathBuf,
}

#[derive(clap::Args)]
struct KeygenArgs {
    /// Directory for update.key (secret, mode 0600) and update.pub; created if missing.
    #[arg(long)]
    out: PathBuf,
}

#[derive(clap::Args)]
struct ChannelArgs {
    /// The secret key file that signs the document (keygen's update.key).
    #[arg(long)]
    key: PathBuf,
    /// The version of the bundle.
    #[arg(long)]
    version: String,
    /// The bundle's compatible string (the recipe's compatible).
    #[arg(long, default_value = keel_os_image::bundle::DEFAULT_COMPATIBLE)]
    compatible: String,
    /// The bundle's URL: absolute http(s), or relative to the channel file's URL.
    #[arg(long)]
    bundle: String,
    /// The channel file to write.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Raw,
    Qcow2,
}

const EXIT_USAGE: u8 = 100;
const EXIT_SYSTEM: u8 = 111;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let usage = error.use_stderr();
            let _ = error.print();
            return if usage { ExitCode::from(EXIT_USAGE) } else { ExitCode::SUCCESS };
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("keel-build: error: {error:#}");
            let usage = error.downcast_ref::<ImageError>().is_some_and(ImageError::is_usage)
                || error.downcast_ref::<BundleBuildError>().is_some_and(BundleBuildError::is_usage)
                || error.downcast_ref::<UpdateKeyError>().is_some_and(UpdateKeyError::is_usage)
                || error.downcast_ref::<ChannelBuildError>().is_some_and(ChannelBuildError::is_usage)
                || error.downcast_ref::<ConfigDriveError>().is_some_and(ConfigDriveError::is_usage);
            ExitCode::from(if usage { EXIT_USAGE } else { EXIT_SYSTEM })
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let args = match cli.command {
        Command::Image(args) => args,
        Command::ConfigDrive(args) => return build_config_drive(args),
        Command::Kernel(args) => return kernel(args),
        Command::Bundle(args) => return build_bundle(args),
        Command::Keygen(args) => return keygen(args),
        Command::Channel(args) => return build_channel(args),
    };
    let request = ImageRequest {
        sources: args.slot.into_sources(),
        out: args.out,
        format: match args.format {
            Format::Raw => ImageFormat::Raw,
            Format::Qcow2 => ImageFormat::Qcow2,
        },
        boot_dir: args.boot_dir,
    };
    let summary = image::build(&request)?;
    println!("image:         {}", summary.image.display());
    if let Some(raw) = &summary.raw_image {
        println!("raw image:     {}", raw.display());
    }
    println!("bytes used:    {} ({:.1} MiB)", summary.bytes_used, summary.bytes_used as f64 / 1048576.0);
    println!("apparent size: {} ({:.1} MiB)", summary.apparent_size, summary.apparent_size as f64 / 1048576.0);
    println!("kernel:        {}", summary.kernel);
    Ok(())
}

fn build_bundle(args: BundleArgs) -> anyhow::Result<()> {
    let request = BundleRequest { sources: args.slot.into_sources(), out: args.out, key: args.key };
    let summary = bundle::build(&request)?;
    println!("bundle:        {}", summary.bundle.display());
    println!("size:          {} ({:.1} MiB)", summary.size, summary.size as f64 / 1048576.0);
    println!("version:       {}", summary.manifest.version);
    println!("compatible:    {}", summary.manifest.compatible);
    println!("kernel:        {}", summary.kernel);
    for payload in &summary.manifest.payloads {
        println!("  {:<10} {:>10} bytes  sha256:{}", payload.name.as_str(), payload.size, payload.sha256);
    }
    Ok(())
}

fn keygen(args: KeygenArgs) -> anyhow::Result<()> {
    let pair = update_key::generate(&args.out)?;
    println!("secret key:    {} (keep it off the hosts; it signs bundles)", pair.secret.display());
    println!("public key:    {} (for keel-build image --update-key)", pair.public.display());
    Ok(())
}

fn build_channel(args: ChannelArgs) -> anyhow::Result<()> {
    let request = ChannelRequest {
        key: args.key,
        version: args.version,
        compatible: args.compatible,
        bundle: args.bundle,
        out: args.out,
    };
    let document = channel::build(&request)?;
    println!("channel:       {}", request.out.display());
    println!("version:       {}", document.version);
    println!("compatible:    {}", document.compatible);
    println!("bundle:        {}", document.bundle);
    Ok(())
}

fn kernel(args: KernelArgs) -> anyhow::Result<()> {
    let mode = if args.update { kernel_package::Mode::Update } else { kernel_package::Mode::Locked };
    let summary = image::kernel(&args.recipe, &args.cache, mode)?;
    println!("kernel:        {}", summary.kernel);
    let state = if summary.lock_changed { "written" } else { "unchanged" };
    println!("lock:          {} ({state})", summary.lock.display());
    Ok(())
}

fn build_config_drive(args: ConfigDriveArgs) -> anyhow::Result<()> {
    let request = ConfigDriveRequest {
        user_data: args.user_data,
        meta_data: args.meta_data,
        format: match args.format {
            DriveFormatArg::Vfat => DriveFormat::Vfat,
            DriveFormatArg::Iso9660 => DriveFormat::Iso9660,
        },
        layout: match args.layout {
            DriveLayoutArg::Nocloud => DriveLayout::NoCloud,
            DriveLayoutArg::Config2 => DriveLayout::ConfigDrive2,
        },
        out: args.out,
    };
    let files = config_drive::build(&request)?;
    println!("config drive:  {} (label {})", request.out.display(), request.layout.label());
    for file in files {
        println!("  {} ({} bytes)", file.path, file.content.len());
    }
    Ok(())
}
