//! The `image` command: builds a slot's contents ([`crate::slot_build`]), the ESP and the data partition, and
//! assembles the disk image (raw, optionally qcow2).

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use keel_os_image::layout::{self, DATA_PARTITION, ESP_BOOT_LOADER, ESP_ENTRIES_DIR, ESP_LOADER_CONF, ESP_PARTITION};
use keel_os_image::{BootEntryName, Slot};

use crate::boot_dir::{self, BootDirError};
use crate::command::{CommandError, Tool};
use crate::data_fs::{self, DataFsError};
use crate::disk_writer::{self, DiskWriteError};
use crate::erofs::ErofsError;
use crate::esp::{self, EspError, EspFile, EspSource};
use crate::gpt::{self, GptError};
use crate::initramfs::InitramfsError;
use crate::kernel_cache::{self, KernelCacheError, KernelTree};
use crate::kernel_lock::{self, KernelLockError};
use crate::kernel_package::{self, KernelDeb, KernelPackageError};
use crate::module_closure::ModuleClosureError;
use crate::module_index::ModuleIndexError;
use crate::recipe::{LoadedRecipe, RecipeError};
use crate::reproducible::{DerivedIds, ReproducibleError};
use crate::root_tree::RootTreeError;
use crate::slot_build::{self, Prepared, SlotContents, SlotInputs, SlotSources};
use crate::update_key::UpdateKeyError;
use crate::vmlinux::{self, VmlinuxError};

/// Where preloaded image archives go in the root filesystem; PID 1 imports what it finds there at boot.
pub const PRELOADED_IMAGES_DIR: &str = "/usr/share/keel/images";

/// systemd-boot's UEFI binary, from Debian's `systemd-boot-efi`.
pub const SYSTEMD_BOOT_EFI: &str = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImageFormat {
    #[default]
    Raw,
    Qcow2,
}

/// What to build, from the command line.
#[derive(Debug, Clone)]
pub struct ImageRequest {
    pub sources: SlotSources,
    pub out: PathBuf,
    pub format: ImageFormat,
    pub boot_dir: Option<PathBuf>,
}

/// What was built.
#[derive(Debug, Clone)]
pub struct ImageSummary {
    pub image: PathBuf,
    /// The raw image, when `image` is a qcow2 made from it.
    pub raw_image: Option<PathBuf>,
    /// Bytes allocated on disk.
    pub bytes_used: u64,
    pub apparent_size: u64,
    pub modules: Vec<String>,
    /// The kernel in the image: `linux-image-6.1.0-57-amd64 6.1.192-3 (6.1.0-57-amd64)`.
    pub kernel: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("reading the recipe failed")]
    Recipe(#[source] RecipeError),
    #[error("reading the build epoch failed")]
    Epoch(#[source] ReproducibleError),
    #[error("the init binary {path} is not a readable file")]
    Init { path: PathBuf },
    #[error("reading an update key failed")]
    UpdateKey(#[source] UpdateKeyError),
    #[error("the raw image path {raw} would be the qcow2 output too; choose an --out not ending in .raw")]
    RawPathClash { raw: PathBuf },
    #[error("the preloaded image archive {path} is not a readable file, or another archive has its file name")]
    Preload { path: PathBuf },
    #[error("finding the kernel package failed")]
    KernelPackage(#[source] KernelPackageError),
    #[error("preparing the kernel cache failed")]
    KernelCache(#[source] KernelCacheError),
    #[error("reading the kernel's module index failed")]
    ModuleIndex(#[source] ModuleIndexError),
    #[error("computing the module load order failed")]
    ModuleClosure(#[source] ModuleClosureError),
    #[error("cannot create the work directory in {dir}")]
    WorkDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("building the initramfs failed")]
    Initramfs(#[source] InitramfsError),
    #[error("staging the root tree failed")]
    RootTree(#[source] RootTreeError),
    #[error("building the root filesystem failed")]
    Erofs(#[source] ErofsError),
    #[error("building the EFI system partition failed")]
    Esp(#[source] EspError),
    #[error("building the data partition failed")]
    DataFs(#[source] DataFsError),
    #[error("cannot create the disk image {path}")]
    CreateDisk {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("partitioning the disk image failed")]
    Gpt(#[source] GptError),
    #[error("writing partition {partition} into the disk image failed")]
    WritePartition {
        partition: String,
        #[source]
        source: DiskWriteError,
    },
    #[error("converting the image to qcow2 failed")]
    Qcow2(#[source] CommandError),
    #[error("extracting vmlinux failed")]
    Vmlinux(#[source] VmlinuxError),
    #[error("writing the boot directory failed")]
    BootDir(#[source] BootDirError),
}

impl ImageError {
    /// Whether the error is the user's to fix (exit code 100): a bad recipe, lock file or update key file.
    pub fn is_usage(&self) -> bool {
        match self {
            ImageError::Recipe(_) => true,
            ImageError::KernelPackage(KernelPackageError::Lock(lock)) => {
                matches!(lock, KernelLockError::Parse { .. } | KernelLockError::Invalid { .. })
            }
            ImageError::UpdateKey(error) => error.is_usage(),
            _ => false,
        }
    }
}

pub(crate) fn step(message: &str) {
    eprintln!("keel-build: {message}");
}

/// Builds the image `request` describes.
pub fn build(request: &ImageRequest) -> Result<ImageSummary, ImageError> {
    let started = Instant::now();
    let Prepared { recipe, epoch, update_keys } = slot_build::prepare(&request.sources)?;
    let version = &recipe.recipe.version;
    let ids = DerivedIds::new(version);

    let work = slot_build::work_dir_beside(&request.out)?;
    let work = work.path();
    let SlotContents { kernel, initrd, root_image, modules: module_names } = slot_build::build(&SlotInputs {
        recipe: &recipe,
        init: &request.sources.init,
        container_init: &request.sources.container_init,
        cache: &request.sources.cache,
        preload: &request.sources.preload,
        update_keys: &update_keys,
        epoch,
        work,
    })?;
    let plan = gpt::plan(&recipe.recipe.partitions, &ids);
    let root_a_name = layout::root_partition_name(Slot::A);

    let esp_image = work.join("esp.fat");
    let cmdline = recipe.cmdline(Slot::A);
    let entry = BootEntryName::new(version, Slot::A);
    let esp_files = [
        EspFile { path: ESP_BOOT_LOADER.to_owned(), source: EspSource::File(Path::new(SYSTEMD_BOOT_EFI)) },
        EspFile { path: ESP_LOADER_CONF.to_owned(), source: EspSource::Bytes(esp::loader_conf().into_bytes()) },
        EspFile {
            path: format!("{ESP_ENTRIES_DIR}/{entry}"),
            source: EspSource::Bytes(
                keel_os_image::boot_entry::entry_file_text(version, Slot::A, &cmdline, 0).into_bytes(),
            ),
        },
        EspFile { path: layout::esp_kernel_path(Slot::A), source: EspSource::File(&kernel.vmlinuz()) },
        EspFile { path: layout::esp_initramfs_path(Slot::A), source: EspSource::Bytes(initrd.clone()) },
    ];
    let esp_stage = work.join("esp");
    esp::make(&esp_image, &esp_stage, recipe.recipe.partitions.esp, ids.u32("fat:esp"), &esp_files, epoch)
        .map_err(ImageError::Esp)?;
    step("EFI system partition (FAT32, systemd-boot)");

    let data_image = work.join("data.ext4");
    data_fs::make(
        &data_image,
        DATA_PARTITION,
        recipe.recipe.partitions.data,
        &ids.uuid(&format!("ext4:{DATA_PARTITION}")),
        &ids.uuid(&format!("ext4-hash-seed:{DATA_PARTITION}")),
        epoch,
    )
    .map_err(ImageError::DataFs)?;
    step("data partition (ext4)");

    let raw_path = match request.format {
        ImageFormat::Raw => request.out.clone(),
        ImageFormat::Qcow2 => {
            let raw = request.out.with_extension("raw");
            if raw == request.out {
                return Err(ImageError::RawPathClash { raw });
            }
            raw
        }
    };
    let partial = work.join("disk.img");
    let disk_error = |source| ImageError::CreateDisk { path: partial.clone(), source };
    let disk = File::options().create_new(true).read(true).write(true).open(&partial).map_err(disk_error)?;
    disk.set_len(plan.size).map_err(disk_error)?;
    gpt::write_table(&partial, &plan).map_err(ImageError::Gpt)?;
    for (name, image) in
        [(ESP_PARTITION, &esp_image), (root_a_name.as_str(), &root_image), (DATA_PARTITION, &data_image)]
    {
        // The plan always holds these names; a missing one would be a bug in gpt::plan, reported as a write error.
        let Some(partition) = plan.partition(name) else { continue };
        disk_writer::write_at(&disk, &partial, image, partition.offset(), partition.size())
            .map_err(|source| ImageError::WritePartition { partition: name.to_owned(), source })?;
    }
    disk.sync_all().map_err(disk_error)?;
    drop(disk);
    std::fs::rename(&partial, &raw_path).map_err(|source| ImageError::CreateDisk { path: raw_path.clone(), source })?;
    step(&format!("disk image {}", raw_path.display()));

    let (image, raw_image) = match request.format {
        ImageFormat::Raw => (raw_path, None),
        ImageFormat::Qcow2 => {
            let partial = work.join("disk.qcow2");
            Tool::new("qemu-img")
                .args(["convert", "-f", "raw", "-O", "qcow2"])
                .arg(&raw_path)
                .arg(&partial)
                .run()
                .map_err(ImageError::Qcow2)?;
            std::fs::rename(&partial, &request.out)
                .map_err(|source| ImageError::CreateDisk { path: request.out.clone(), source })?;
            step(&format!("qcow2 image {}", request.out.display()));
            (request.out.clone(), Some(raw_path))
        }
    };

    if let Some(boot_dir) = &request.boot_dir {
        let vmlinux = vmlinux::cached_vmlinux(&kernel).map_err(ImageError::Vmlinux)?;
        boot_dir::write(boot_dir, &vmlinux, &initrd, &cmdline, &kernel.description()).map_err(ImageError::BootDir)?;
        step(&format!("boot directory {} (vmlinux, initrd.img, cmdline, kernel)", boot_dir.display()));
    }

    let metadata =
        std::fs::metadata(&image).map_err(|source| ImageError::CreateDisk { path: image.clone(), source })?;
    step(&format!("done in {:.1} s", started.elapsed().as_secs_f64()));
    Ok(ImageSummary {
        image,
        raw_image,
        bytes_used: metadata.blocks() * 512,
        apparent_size: metadata.len(),
        modules: module_names,
        kernel: kernel.description(),
    })
}

/// The kernel of `recipe`, as its lock says or moved as `mode` and the mirror require (the lock then rewritten,
/// which one line says), extracted in `cache`.
pub(crate) fn prepare_kernel(
    recipe: &LoadedRecipe,
    cache: &Path,
    mode: kernel_package::Mode,
) -> Result<(KernelTree, KernelDeb), ImageError> {
    let lock_path = kernel_lock::lock_path(&recipe.path);
    let deb = kernel_package::fetch(&recipe.recipe.kernel.package, &lock_path, cache, mode)
        .map_err(ImageError::KernelPackage)?;
    if let Some(message) = deb.change_message(&lock_path) {
        step(&message);
    }
    let kernel = kernel_cache::prepare(cache, &deb.kernel.package, &deb.kernel.version, &deb.path)
        .map_err(ImageError::KernelCache)?;
    Ok((kernel, deb))
}

/// What `keel-build kernel` reports.
#[derive(Debug, Clone)]
pub struct KernelSummary {
    /// `linux-image-6.1.0-57-amd64 6.1.192-3 (6.1.0-57-amd64)`.
    pub kernel: String,
    pub lock: PathBuf,
    /// Whether the lock file was written.
    pub lock_changed: bool,
}

/// The `kernel` command: makes the recipe's locked kernel ready in the cache (downloaded, checked, extracted), or with
/// [`kernel_package::Mode::Update`] moves the lock to Debian's current kernel first.
pub fn kernel(recipe: &Path, cache: &Path, mode: kernel_package::Mode) -> Result<KernelSummary, ImageError> {
    let recipe = LoadedRecipe::load(recipe).map_err(ImageError::Recipe)?;
    let (kernel, deb) = prepare_kernel(&recipe, cache, mode)?;
    Ok(KernelSummary {
        kernel: kernel.description(),
        lock: kernel_lock::lock_path(&recipe.path),
        lock_changed: deb.change != kernel_package::LockChange::Unchanged,
    })
}
