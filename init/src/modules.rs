//! Loading the kernel modules the image builder listed, in the order it computed: the initramfs' list in stage 1,
//! the root filesystem's late list after `ready`.

use std::fs::File;
use std::path::Path;

use keel_os_image::initramfs::{
    parse_module_load_list, LATE_MODULES_DIR, LATE_MODULE_LOAD_LIST, MODULES_DIR, MODULE_LOAD_LIST,
};
use nix::errno::Errno;
use nix::kmod::{finit_module, ModuleInitFlags};

use crate::timeline;

/// The module list itself could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the module list {list}")]
pub struct ModuleListError {
    pub list: String,
    #[source]
    pub source: std::io::Error,
}

/// The initramfs' modules: what mounting the root, the data partition and the config drive need.
pub fn load_boot_modules() -> Result<usize, ModuleListError> {
    load_listed_modules(MODULES_DIR, MODULE_LOAD_LIST)
}

/// The root filesystem's modules, loaded after `ready`: what only the network and the containers need.
pub fn load_late_modules() -> Result<usize, ModuleListError> {
    load_listed_modules(LATE_MODULES_DIR, LATE_MODULE_LOAD_LIST)
}

/// Loads every module of the list and returns how many are loaded. A module that fails is logged and skipped:
/// ENODEV is a driver that does not fit this machine (crc32c-intel without SSE4.2, efivarfs without UEFI), and a
/// missing driver shows up later, precisely, as the device it would have provided.
fn load_listed_modules(dir: &str, list: &str) -> Result<usize, ModuleListError> {
    let list = std::fs::read_to_string(list).map_err(|source| ModuleListError { list: list.to_owned(), source })?;
    let mut loaded = 0;
    for relative in parse_module_load_list(&list) {
        let path = Path::new(dir).join(relative);
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
