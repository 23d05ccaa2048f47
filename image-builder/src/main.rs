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
//!     --init target/x86_64-unknown-linux-musl/release/keel [--cache build/cache] [--boot-dir build/boot] \
//!     [--format raw|qcow2]
//! ```
//! * `--cache`: the Debian kernel package is downloaded (`apt-get download`) and extracted there once (~400 MB),
//!   see [`keel_image_builder::kernel_cache`]. A populated cache is only read.
//! * `--boot-dir`: also writes `vmlinux` (uncompressed ELF, for direct PVH boot), `initrd.img` (the ESP's bytes)
//!   and `cmdline` (slot a's kernel command line, one line) for tests.
//! * `--format qcow2`: `--out` is a qcow2 made with `qemu-img convert`; the raw image is kept next to it as
//!   `<out without extension>.raw`.
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
//! | 0 | image built |
//! | 100 | usage error: bad command line or bad recipe |
//! | 111 | system error: a tool, the cache or a file operation failed |
//!
//! # Current limitations
//! Slot b is left empty (zeros) and has no boot entry: updates write it. x86-64 and Debian kernel packages only;
//! the kernel's XZ payload must use only the x86 BCJ and LZMA2 filters.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use keel_image_builder::image::{self, ImageError, ImageFormat, ImageRequest};

#[derive(Parser)]
#[command(name = "keel-build", version, about = "Builds keel disk images from a recipe")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build a disk image.
    Image(ImageArgs),
}

#[derive(clap::Args)]
struct ImageArgs {
    /// The recipe (TOML).
    #[arg(long)]
    recipe: PathBuf,
    /// The disk image to write.
    #[arg(long)]
    out: PathBuf,
    /// Output format; with qcow2 the raw image is kept as <out stem>.raw.
    #[arg(long, value_enum, default_value_t = Format::Raw)]
    format: Format,
    /// The static PID 1 binary.
    #[arg(long)]
    init: PathBuf,
    /// Kernel package cache directory.
    #[arg(long, default_value = "build/cache")]
    cache: PathBuf,
    /// Also write vmlinux, initrd.img and cmdline here, for direct kernel boot.
    #[arg(long)]
    boot_dir: Option<PathBuf>,
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
            let usage = matches!(error.downcast_ref::<ImageError>(), Some(ImageError::Recipe(_)));
            ExitCode::from(if usage { EXIT_USAGE } else { EXIT_SYSTEM })
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let Command::Image(args) = cli.command;
    let request = ImageRequest {
        recipe: args.recipe,
        out: args.out,
        format: match args.format {
            Format::Raw => ImageFormat::Raw,
            Format::Qcow2 => ImageFormat::Qcow2,
        },
        init: args.init,
        cache: args.cache,
        boot_dir: args.boot_dir,
    };
    let summary = image::build(&request)?;
    println!("image:         {}", summary.image.display());
    if let Some(raw) = &summary.raw_image {
        println!("raw image:     {}", raw.display());
    }
    println!("bytes used:    {} ({:.1} MiB)", summary.bytes_used, summary.bytes_used as f64 / 1048576.0);
    println!("apparent size: {} ({:.1} MiB)", summary.apparent_size, summary.apparent_size as f64 / 1048576.0);
    Ok(())
}
