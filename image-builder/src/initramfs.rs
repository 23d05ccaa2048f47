//! Builds the gzip-compressed initramfs: PID 1 as `/init`, `/etc/initrd-release`, the kernel modules and the
//! module load list that stage 1 reads (the contract is in `keel_os_image::initramfs`).

use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::{Compression, GzBuilder};
use keel_os_image::initramfs::{INITRD_RELEASE, MODULES_DIR, MODULE_LOAD_LIST};

use crate::cpio::{CpioArchive, CpioError};
use crate::module_closure::OrderedModule;
use crate::module_signature::{strip_signature, ModuleSignatureError};

/// Mount points and directories stage 1 expects; the kernel's built-in cpio already supplies `/dev/console`.
const DIRECTORIES: [&str; 6] = ["/proc", "/sys", "/dev", "/newroot", "/etc", MODULES_DIR];

#[derive(Debug, thiserror::Error)]
pub enum InitramfsError {
    #[error("cannot read {path}")]
    ReadInput {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot add {path:?} to the initramfs")]
    AddEntry {
        path: String,
        #[source]
        source: CpioError,
    },
    #[error("cannot strip the signature of {path}")]
    ModuleSignature {
        path: PathBuf,
        #[source]
        source: ModuleSignatureError,
    },
    #[error("the build epoch {epoch} does not fit in a cpio mtime")]
    Epoch { epoch: u64 },
    #[error("writing the initramfs archive failed")]
    Write(#[source] CpioError),
    #[error("compressing the initramfs failed")]
    Compress(#[source] std::io::Error),
}

/// What goes into the initramfs.
pub struct InitramfsInputs<'a> {
    /// The static PID 1 binary.
    pub init: &'a Path,
    /// `os-release`-style text for `/etc/initrd-release`.
    pub release: &'a str,
    /// The kernel's `lib/modules/<release>`.
    pub modules_dir: &'a Path,
    /// The kernel release, noted in the load list.
    pub kernel_release: &'a str,
    pub modules: &'a [OrderedModule],
    pub strip_module_signatures: bool,
    pub epoch: u64,
}

/// Module files ready to ship, by path relative to the modules directory, and their load list.
pub struct PackedModules {
    pub files: Vec<(String, Vec<u8>)>,
    pub load_list: String,
}

/// Reads the modules in load order (without their signatures when asked) and writes their load list; used for
/// the initramfs and for the root filesystem's late modules alike.
pub fn pack_modules(
    modules_dir: &Path,
    kernel_release: &str,
    modules: &[OrderedModule],
    strip_signatures: bool,
) -> Result<PackedModules, InitramfsError> {
    let mut load_list = format!("# written by keel-build for kernel {kernel_release}: modules in load order\n");
    let mut files = Vec::new();
    for module in modules {
        let path = modules_dir.join(&module.path);
        let mut data =
            std::fs::read(&path).map_err(|source| InitramfsError::ReadInput { path: path.clone(), source })?;
        if strip_signatures {
            data = strip_signature(data).map_err(|source| InitramfsError::ModuleSignature { path, source })?;
        }
        files.push((module.path.clone(), data));
        load_list.push_str(&module.path);
        load_list.push('\n');
    }
    Ok(PackedModules { files, load_list })
}

/// Returns the gzip-compressed newc archive.
pub fn build(inputs: &InitramfsInputs) -> Result<Vec<u8>, InitramfsError> {
    let read =
        |path: &Path| std::fs::read(path).map_err(|source| InitramfsError::ReadInput { path: path.into(), source });
    let mut archive = CpioArchive::new();
    let mut add = |path: &str, mode: u32, data: Option<Vec<u8>>| {
        let result = match data {
            Some(data) => archive.add_file(path, mode, data),
            None => archive.add_dir(path, mode),
        };
        result.map_err(|source| InitramfsError::AddEntry { path: path.to_owned(), source })
    };
    for dir in DIRECTORIES {
        add(dir, 0o755, None)?;
    }
    add("/init", 0o755, Some(read(inputs.init)?))?;
    add(INITRD_RELEASE, 0o644, Some(inputs.release.as_bytes().to_vec()))?;
    let packed =
        pack_modules(inputs.modules_dir, inputs.kernel_release, inputs.modules, inputs.strip_module_signatures)?;
    for (relative, data) in packed.files {
        add(&format!("{MODULES_DIR}/{relative}"), 0o644, Some(data))?;
    }
    add(MODULE_LOAD_LIST, 0o644, Some(packed.load_list.into_bytes()))?;

    let mtime = u32::try_from(inputs.epoch).map_err(|_| InitramfsError::Epoch { epoch: inputs.epoch })?;
    // mtime 0 and no file name in the gzip header keep the output reproducible.
    let mut gzip = GzBuilder::new().mtime(0).write(Vec::new(), Compression::best());
    archive.write_to(&mut gzip, mtime).map_err(InitramfsError::Write)?;
    gzip.flush().map_err(InitramfsError::Compress)?;
    gzip.finish().map_err(InitramfsError::Compress)
}
