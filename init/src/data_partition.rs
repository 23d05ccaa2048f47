//! The data partition `keel-data`: everything keel keeps across boots lives on it, mounted at `/var`.

use std::time::Duration;

use keel_os_image::layout::{DATA_MOUNT_POINT, DATA_PARTITION};
use nix::mount::MsFlags;

use crate::block::{wait_for_partition, PartitionError, Scope};
use crate::boot_disk;
use crate::mounts::{Mount, MountError};

/// The data partition sits on the boot disk, which stage 1 already found; a short wait is plenty.
const DATA_WAIT: Duration = Duration::from_secs(2);

/// Why the data partition is not mounted.
#[derive(Debug, thiserror::Error)]
pub enum DataPartitionError {
    #[error("cannot tell the boot disk: the root filesystem is not on a partition")]
    NoBootDisk,
    #[error(transparent)]
    Partition(#[from] PartitionError),
    #[error(transparent)]
    Mount(#[from] MountError),
    #[error("the mount thread panicked")]
    Panicked,
}

/// Mounts the data partition of the boot disk (the disk the root slot is on) at `/var`; returns the device. A
/// `keel-data` partition on any other disk is someone else's and never mounted.
pub fn mount_data_partition() -> Result<String, DataPartitionError> {
    let disk = boot_disk::root_filesystem_disk().ok_or(DataPartitionError::NoBootDisk)?;
    let device = wait_for_partition(DATA_PARTITION, Scope::Disk(&disk), DATA_WAIT)?;
    let device = device.to_string_lossy().into_owned();
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOATIME;
    Mount { source: &device, target: DATA_MOUNT_POINT, fstype: "ext4", flags, data: Some("errors=remount-ro") }
        .ensure()?;
    Ok(device)
}

/// Keeps the host useful without its data partition: `/var` in memory, lost at the next boot.
pub fn mount_volatile_var() -> Result<(), MountError> {
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    Mount { source: "tmpfs", target: DATA_MOUNT_POINT, fstype: "tmpfs", flags, data: Some("mode=0755") }.ensure()
}
