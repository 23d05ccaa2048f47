//! Loading the kernel modules the image builder listed, in the order it computed.

use std::fs::File;
use std::path::Path;

use keel_os_image::initramfs::{parse_module_load_list, MODULES_DIR, MODULE_LOAD_LIST};
use nix::errno::Errno;
use nix::kmod::{finit_module, ModuleInitFlags};

use crate::timeline;

/// The module list itself could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the module list {MODULE_LOAD_LIST}: {source}")]
pub struct ModuleListError {
    #[source]
    pub source: std::io::Error,
}

/// Loads every module of the list and returns how many are loaded. A module that fails is logged and skipped:
/// ENODEV is a driver that does not fit this machine (crc32c-intel without SSE4.2, efivarfs without UEFI), and a
/// missing driver shows up later, precisely, as the device it would have provided.
pub fn load_listed_modules() -> Result<usize, ModuleListError> {
    let list = std::fs::read_to_string(MODULE_LOAD_LIST).map_err(|source| ModuleListError { source })?;
    let mut loaded = 0;
    for relative in parse_module_load_list(&list) {
        let path = Path::new(MODULES_DIR).join(relative);
        let start = timeline::uptime_ms();
        match load_module(&path) {
            Ok(()) => {
                loaded += 1;
                log::debug!("module {relative}: {}ms", timeline::uptime_ms() - start);
            }
            Err(Errno::ENODEV) => log::info!("module {relative}: no such device here, skipped"),
            Err(errno) => log::warn!("module {relative}: {errno}"),
        }
    }
    Ok(loaded)
}

fn load_module(path: &Path) -> Result<(), Errno> {
    let file = File::open(path).map_err(|error| Errno::from_raw(error.raw_os_error().unwrap_or(libc::EIO)))?;
    match finit_module(&file, c"", ModuleInitFlags::empty()) {
        Ok(()) | Err(Errno::EEXIST) => Ok(()),
        Err(errno) => Err(errno),
    }
}
