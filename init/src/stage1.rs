//! Stage 1, in the initramfs: kernel filesystems, modules, the root slot, and the switch to the real root.

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use keel_os_image::initramfs::ROOT_INIT;
use keel_os_image::layout::root_partition_name;
use keel_os_image::slot::SLOT_PARAMETER;
use keel_os_image::{Slot, SlotError};
use nix::mount::MsFlags;

use crate::block::{wait_for_partition, PartitionError, Scope};
use crate::boot_disk::{self, LoaderDiskNotFound};
use crate::cmdline::KernelCmdline;
use crate::modules::{load_boot_modules, ModuleListError};
use crate::mounts::{mount_kernel_filesystems, Mount, MountError};
use crate::switch_root::{switch_root, SwitchRootError};
use crate::{logger, timeline};

/// Where the root slot is mounted before it becomes `/`.
const NEW_ROOT: &str = "/newroot";
/// Kernel parameter: seconds to wait for the root partition.
const ROOT_WAIT_PARAMETER: &str = "keel.rootwait";
const DEFAULT_ROOT_WAIT: Duration = Duration::from_secs(10);

/// Why stage 1 could not hand over to the real root.
#[derive(Debug, thiserror::Error)]
pub enum Stage1Error {
    #[error(transparent)]
    KernelFilesystems(MountError),
    #[error(transparent)]
    ModuleList(#[from] ModuleListError),
    #[error("no {SLOT_PARAMETER}= on the kernel command line: the boot entry must name the root slot")]
    NoSlot,
    #[error("{SLOT_PARAMETER}")]
    BadSlot(#[from] SlotError),
    #[error("{ROOT_WAIT_PARAMETER}={value:?} is not a whole number of seconds")]
    BadRootWait { value: String },
    #[error(transparent)]
    BootDisk(#[from] LoaderDiskNotFound),
    #[error(transparent)]
    RootPartition(#[from] PartitionError),
    #[error("root slot {slot}")]
    MountRoot { slot: Slot, source: MountError },
    #[error(transparent)]
    SwitchRoot(#[from] SwitchRootError),
}

/// Runs stage 1; it returns only when something failed, and the caller reboots.
pub fn run() -> Result<Infallible, Stage1Error> {
    timeline::mark("init-started");
    mount_kernel_filesystems().map_err(Stage1Error::KernelFilesystems)?;
    let cmdline = KernelCmdline::read();
    logger::init(cmdline.has(logger::DEBUG_PARAMETER));
    let slot: Slot = cmdline.value(SLOT_PARAMETER).ok_or(Stage1Error::NoSlot)?.parse()?;
    let root_wait = match cmdline.value(ROOT_WAIT_PARAMETER) {
        Some(value) => {
            Duration::from_secs(value.parse().map_err(|_| Stage1Error::BadRootWait { value: value.to_owned() })?)
        }
        None => DEFAULT_ROOT_WAIT,
    };

    let loaded = load_boot_modules()?;
    timeline::mark(&format!("modules-loaded {loaded}"));

    let partition = root_partition_name(slot);
    let device = find_root(&partition, root_wait)?;
    let device_name = device.to_string_lossy();
    Mount { source: &device_name, target: NEW_ROOT, fstype: "erofs", flags: MsFlags::MS_RDONLY, data: None }
        .ensure()
        .map_err(|source| Stage1Error::MountRoot { slot, source })?;
    timeline::mark(&format!("root-mounted {partition} {device_name}"));

    Ok(switch_root(Path::new(NEW_ROOT), ROOT_INIT)?)
}

/// The root slot on the boot disk (the disk of the ESP the loader names), or, without a loader that names it, the
/// only partition anywhere with the slot's name.
fn find_root(partition: &str, timeout: Duration) -> Result<PathBuf, Stage1Error> {
    let start = Instant::now();
    let Some(guid) = boot_disk::loader_partition_guid() else {
        log::info!("no LoaderDevicePartUUID: the root slot must be the only partition named {partition:?}");
        return Ok(wait_for_partition(partition, Scope::Anywhere, timeout)?);
    };
    let disk = boot_disk::wait_for_loader_disk(&guid, timeout)?;
    timeline::mark(&format!("boot-disk {disk}"));
    let remaining = timeout.saturating_sub(start.elapsed());
    Ok(wait_for_partition(partition, Scope::Disk(&disk), remaining)?)
}
