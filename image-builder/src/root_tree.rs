//! Stages the root filesystem tree of a slot: PID 1 as `/sbin/init`, the mount-point directories, `/etc/os-release`,
//! the links from `/etc` to the files PID 1 generates, and the recipe's extra files, all with fixed modes and the build epoch as timestamps.

use std::path::{Path, PathBuf};

use keel_os_image::initramfs::{ROOT_CONTAINER_INIT, ROOT_INIT};
use keel_os_image::layout::{GENERATED_ETC, GENERATED_ETC_FILES};

use crate::staging::{self, StagingError};

/// Directories of the read-only root: mount points must exist in the image. `/tmp` is sticky and world-writable,
/// `/root` private.
const DIRECTORIES: [(&str, u32); 10] = [
    ("proc", 0o755),
    ("sys", 0o755),
    ("dev", 0o755),
    ("run", 0o755),
    ("tmp", 0o1777),
    ("var", 0o755),
    ("etc", 0o755),
    ("root", 0o700),
    ("usr", 0o755),
    ("usr/share/keel", 0o755),
];

#[derive(Debug, thiserror::Error)]
pub enum RootTreeError {
    #[error("staging the root tree in {dir} failed")]
    Stage {
        dir: PathBuf,
        #[source]
        source: StagingError,
    },
}

/// An extra file for the root tree.
pub struct ExtraFile<'a> {
    pub source: &'a Path,
    /// Absolute path in the root tree.
    pub path: &'a str,
    pub mode: u32,
}

/// A file the builder makes for the root tree (absolute path, content, mode).
pub struct GeneratedFile {
    pub path: String,
    pub data: Vec<u8>,
    pub mode: u32,
}

/// What goes into a root tree besides the fixed directories.
pub struct RootTreeInputs<'a> {
    /// The static PID 1 binary, installed as `/sbin/init`.
    pub init: &'a Path,
    /// The static container init, installed as `/sbin/keel-container-init`.
    pub container_init: &'a Path,
    pub os_release: &'a str,
    pub files: &'a [ExtraFile<'a>],
    pub generated: &'a [GeneratedFile],
    pub epoch: u64,
}

/// Fills the empty directory `dir` with the root tree.
pub fn stage(dir: &Path, inputs: &RootTreeInputs) -> Result<(), RootTreeError> {
    stage_inner(dir, inputs).map_err(|source| RootTreeError::Stage { dir: dir.into(), source })
}

fn stage_inner(dir: &Path, inputs: &RootTreeInputs) -> Result<(), StagingError> {
    staging::make_dir(dir, 0o755)?;
    for (path, mode) in DIRECTORIES {
        staging::make_dir(&dir.join(path), mode)?;
    }
    staging::copy_file(inputs.init, &dir.join(ROOT_INIT.trim_start_matches('/')), 0o755)?;
    staging::copy_file(inputs.container_init, &dir.join(ROOT_CONTAINER_INIT.trim_start_matches('/')), 0o755)?;
    staging::write_file(&dir.join("etc/os-release"), inputs.os_release.as_bytes(), 0o644)?;
    for name in GENERATED_ETC_FILES {
        staging::make_symlink(&format!("{GENERATED_ETC}/{name}"), &dir.join("etc").join(name))?;
    }
    for file in inputs.files {
        staging::copy_file(file.source, &dir.join(file.path.trim_start_matches('/')), file.mode)?;
    }
    for file in inputs.generated {
        staging::write_file(&dir.join(file.path.trim_start_matches('/')), &file.data, file.mode)?;
    }
    staging::set_tree_times(dir, inputs.epoch)
}

/// `/etc/os-release` of a keel version (also used as the initramfs' `/etc/initrd-release`). `KEEL_COMPATIBLE` is
/// what an update checks a bundle against ([`keel_os_image::os_release`]). `KEEL_KERNEL` is the kernel's
/// description (`linux-image-6.1.0-57-amd64 6.1.192-3 (6.1.0-57-amd64)`): package names, versions, releases and
/// compatible strings hold no character that needs escaping inside double quotes.
pub fn os_release(version: &str, compatible: &str, kernel: &str) -> String {
    format!(
        "NAME=keel\nID=keel\nVERSION_ID={version}\nVERSION=\"{version}\"\nPRETTY_NAME=\"keel {version}\"\n\
         KEEL_COMPATIBLE=\"{compatible}\"\nKEEL_KERNEL=\"{kernel}\"\n"
    )
}
