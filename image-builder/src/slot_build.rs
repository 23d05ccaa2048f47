//! Builds what one root slot holds from a recipe: the kernel, the initramfs and the root erofs image. The `image`
//! command puts them on a disk, the `bundle` command into an update bundle: both run this one pipeline, so a
//! bundle installs exactly what a fresh image boots.

use std::path::{Path, PathBuf};

use ed25519_dalek::VerifyingKey;
use keel_os_image::bundle::{self, keys};
use keel_os_image::initramfs::{LATE_MODULES_DIR, LATE_MODULE_LOAD_LIST};
use keel_os_image::{layout, Slot};

use crate::erofs;
use crate::image::{prepare_kernel, step, ImageError, PRELOADED_IMAGES_DIR};
use crate::initramfs::{self, InitramfsInputs};
use crate::kernel_cache::KernelTree;
use crate::kernel_package;
use crate::module_closure;
use crate::module_index::ModuleIndex;
use crate::recipe::LoadedRecipe;
use crate::reproducible::DerivedIds;
use crate::root_tree::{self, ExtraFile, GeneratedFile, RootTreeInputs};

/// What a slot is built from, besides the recipe.
pub struct SlotInputs<'a> {
    pub recipe: &'a LoadedRecipe,
    /// The static PID 1 binary.
    pub init: &'a Path,
    /// The static container init (`keel-container-init`).
    pub container_init: &'a Path,
    /// The kernel package cache.
    pub cache: &'a Path,
    /// Image archives for `/usr/share/keel/images/`, which PID 1 imports at boot.
    pub preload: &'a [PathBuf],
    /// The update keys the slot's OS trusts, installed under [`bundle::UPDATE_KEYS_DIR`].
    pub update_keys: &'a [VerifyingKey],
    pub epoch: u64,
    /// Scratch directory for the root tree and the erofs image.
    pub work: &'a Path,
}

/// What was built.
pub struct SlotContents {
    /// The kernel; its `vmlinuz()` is the kernel payload as the ESP holds it.
    pub kernel: KernelTree,
    /// The initramfs (gzip cpio).
    pub initrd: Vec<u8>,
    /// The root filesystem image (erofs), in the work directory.
    pub root_image: PathBuf,
    /// The modules the initramfs loads, in load order.
    pub modules: Vec<String>,
}

/// Checks the two binaries exist before the long steps run.
fn check_binaries(init: &Path, container_init: &Path) -> Result<(), ImageError> {
    for path in [init, container_init] {
        if !path.is_file() {
            return Err(ImageError::Init { path: path.to_owned() });
        }
    }
    Ok(())
}

/// What the `image` and `bundle` commands both build a slot from, as given on the command line.
#[derive(Debug, Clone)]
pub struct SlotSources {
    pub recipe: PathBuf,
    /// The static PID 1 binary.
    pub init: PathBuf,
    /// The static container init (`keel-container-init`).
    pub container_init: PathBuf,
    /// The kernel package cache directory.
    pub cache: PathBuf,
    /// Image archives for `/usr/share/keel/images/`, which PID 1 imports at boot.
    pub preload: Vec<PathBuf>,
    /// Public update key files whose bundles the slot's OS installs.
    pub update_keys: Vec<PathBuf>,
}

/// The sources read and checked: the recipe, the build's epoch and the update keys (as given; possibly none).
pub struct Prepared {
    pub recipe: LoadedRecipe,
    pub epoch: u64,
    pub update_keys: Vec<VerifyingKey>,
}

/// Loads the recipe, the epoch and the update keys and checks the binaries, before anything is built.
pub fn prepare(sources: &SlotSources) -> Result<Prepared, ImageError> {
    let recipe = LoadedRecipe::load(&sources.recipe).map_err(ImageError::Recipe)?;
    let epoch = crate::reproducible::source_date_epoch().map_err(ImageError::Epoch)?;
    check_binaries(&sources.init, &sources.container_init)?;
    let update_keys = sources
        .update_keys
        .iter()
        .map(|path| crate::update_key::read_public(path))
        .collect::<Result<Vec<_>, _>>()
        .map_err(ImageError::UpdateKey)?;
    let version = &recipe.recipe.version;
    step(&format!("recipe {} (keel {version}, {}, epoch {epoch})", sources.recipe.display(), recipe.compatible()));
    Ok(Prepared { recipe, epoch, update_keys })
}

/// A scratch directory next to `out` (same filesystem, so results can be renamed into place), removed on drop
/// even when a step fails.
pub fn work_dir_beside(out: &Path) -> Result<tempfile::TempDir, ImageError> {
    let out_dir = match out.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    };
    let work_error = |source| ImageError::WorkDir { dir: out_dir.clone(), source };
    std::fs::create_dir_all(&out_dir).map_err(work_error)?;
    tempfile::Builder::new().prefix(".keel-build-").tempdir_in(&out_dir).map_err(work_error)
}

/// Builds the kernel, initramfs and root image of `inputs.recipe`.
pub fn build(inputs: &SlotInputs) -> Result<SlotContents, ImageError> {
    let recipe = inputs.recipe;
    let version = &recipe.recipe.version;
    let ids = DerivedIds::new(version);
    let (kernel, _) = prepare_kernel(recipe, inputs.cache, kernel_package::Mode::Locked)?;
    step(&format!("kernel {}", kernel.description()));
    let index = ModuleIndex::load(&kernel.modules_dir()).map_err(ImageError::ModuleIndex)?;
    let modules =
        module_closure::load_order(&index, &recipe.recipe.kernel.modules).map_err(ImageError::ModuleClosure)?;
    let module_names: Vec<String> = modules.iter().map(|module| module.name.clone()).collect();
    step(&format!("{} modules: {}", modules.len(), module_names.join(" ")));
    let late_modules: Vec<_> = module_closure::load_order(&index, &recipe.recipe.kernel.late_modules)
        .map_err(ImageError::ModuleClosure)?
        .into_iter()
        .filter(|module| !module_names.contains(&module.name))
        .collect();
    let late_names: Vec<&str> = late_modules.iter().map(|module| module.name.as_str()).collect();
    step(&format!("{} late modules: {}", late_modules.len(), late_names.join(" ")));

    let os_release = root_tree::os_release(version, recipe.compatible(), &kernel.description());
    let initrd = initramfs::build(&InitramfsInputs {
        init: inputs.init,
        release: &os_release,
        modules_dir: &kernel.modules_dir(),
        kernel_release: &kernel.release,
        modules: &modules,
        strip_module_signatures: recipe.recipe.kernel.strip_module_signatures,
        epoch: inputs.epoch,
    })
    .map_err(ImageError::Initramfs)?;
    step(&format!("initramfs: {} bytes (gzip)", initrd.len()));

    let preload_paths = preload_paths(inputs.preload)?;
    let extra_files: Vec<ExtraFile> = recipe
        .recipe
        .files
        .iter()
        .zip(&recipe.file_sources)
        .map(|(file, source)| ExtraFile { source, path: &file.path, mode: file.mode })
        .chain(inputs.preload.iter().zip(&preload_paths).map(|(source, path)| ExtraFile { source, path, mode: 0o644 }))
        .collect();
    let strip = recipe.recipe.kernel.strip_module_signatures;
    let packed = initramfs::pack_modules(&kernel.modules_dir(), &kernel.release, &late_modules, strip)
        .map_err(ImageError::Initramfs)?;
    let mut generated: Vec<GeneratedFile> = packed
        .files
        .into_iter()
        .map(|(relative, data)| GeneratedFile { path: format!("{LATE_MODULES_DIR}/{relative}"), data, mode: 0o644 })
        .collect();
    generated.push(GeneratedFile {
        path: LATE_MODULE_LOAD_LIST.to_owned(),
        data: packed.load_list.into_bytes(),
        mode: 0o644,
    });
    let key_files = update_key_files(inputs.update_keys);
    let key_count = key_files.len();
    generated.extend(key_files);
    let root_tree = inputs.work.join("root");
    root_tree::stage(
        &root_tree,
        &RootTreeInputs {
            init: inputs.init,
            container_init: inputs.container_init,
            os_release: &os_release,
            files: &extra_files,
            generated: &generated,
            epoch: inputs.epoch,
        },
    )
    .map_err(ImageError::RootTree)?;
    step(&format!("{key_count} trusted update keys in {}", bundle::UPDATE_KEYS_DIR));

    // One root image for either slot (a bundle carries these bytes into slot b), so its UUID is named after the
    // slot a fresh disk holds it in.
    let root_image = inputs.work.join("root.erofs");
    let uuid = ids.uuid(&format!("erofs:{}", layout::root_partition_name(Slot::A)));
    let root_limit = recipe.recipe.partitions.root << 20;
    let root_size = erofs::make(&root_tree, &root_image, &uuid, inputs.epoch, root_limit).map_err(ImageError::Erofs)?;
    step(&format!("root filesystem (erofs): {root_size} bytes"));
    Ok(SlotContents { kernel, initrd, root_image, modules: module_names })
}

/// `/usr/share/keel/update-keys/<n>.pub` for each distinct key, in the order given.
fn update_key_files(update_keys: &[VerifyingKey]) -> Vec<GeneratedFile> {
    let mut distinct: Vec<&VerifyingKey> = Vec::new();
    for key in update_keys {
        if !distinct.contains(&key) {
            distinct.push(key);
        }
    }
    distinct
        .into_iter()
        .enumerate()
        .map(|(index, key)| GeneratedFile {
            path: bundle::update_key_path(index),
            data: keys::format_public_key(key).into_bytes(),
            mode: 0o644,
        })
        .collect()
}

/// `/usr/share/keel/images/<file name>` for each archive; two archives with the same name are refused.
fn preload_paths(archives: &[PathBuf]) -> Result<Vec<String>, ImageError> {
    let mut paths: Vec<String> = Vec::new();
    for archive in archives {
        let name = archive.file_name().map(|name| name.to_string_lossy().into_owned());
        let path = name.map(|name| format!("{PRELOADED_IMAGES_DIR}/{name}"));
        match path {
            Some(path) if archive.is_file() && !paths.contains(&path) => paths.push(path),
            _ => return Err(ImageError::Preload { path: archive.clone() }),
        }
    }
    Ok(paths)
}
