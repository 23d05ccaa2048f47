//! Which disk keel booted from: the one whose partitions (root slot, `keel-data`) it may use. Any other disk may be
//! a tenant's volume or a disk a container wrote, and its partition names prove nothing.
//!
//! Under UEFI the loader names its ESP in the EFI variable `LoaderDevicePartUUID` (systemd-boot sets it): the boot
//! disk is the disk holding that partition. Without it (the direct PVH kernel boot, another loader) stage 1 takes the
//! root slot only if exactly one partition anywhere has its name. Stage 2 then takes the disk the root filesystem
//! was mounted from.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant};

use keel_logs::error_chain;

use crate::block::{self, BlockDevice};
use crate::{efi_vars, gpt};

const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// The loader's ESP is not on any disk the kernel found.
#[derive(Debug, thiserror::Error)]
#[error("the loader's ESP (partition GUID {guid}, from LoaderDevicePartUUID) is on no disk seen within {waited:?}")]
pub struct LoaderDiskNotFound {
    pub guid: String,
    pub waited: Duration,
}

/// The partition GUID in `LoaderDevicePartUUID`, lowercase; `None` without UEFI or without the variable.
pub fn loader_partition_guid() -> Option<String> {
    let [value] = efi_vars::read_loader_strings([efi_vars::LOADER_DEVICE_PART_UUID])?;
    let value = value?;
    let guid = parse_guid(&value);
    if guid.is_none() {
        log::warn!("{} is {value:?}, not a GUID; ignored", efi_vars::LOADER_DEVICE_PART_UUID);
    }
    guid
}

/// A GUID as text (`5b3d0c1a-2e4f-…`), lowercased; `None` if it has another shape.
fn parse_guid(text: &str) -> Option<String> {
    let guid = text.to_ascii_lowercase();
    let shape_ok = guid.len() == 36
        && guid.char_indices().all(
            |(index, c)| {
                if [8, 13, 18, 23].contains(&index) {
                    c == '-'
                } else {
                    c.is_ascii_hexdigit()
                }
            },
        );
    shape_ok.then_some(guid)
}

/// Waits, up to `timeout`, for the disk holding the partition with GUID `guid`; returns its name (`vda`).
/// Each whole disk's GPT is read once.
pub fn wait_for_loader_disk(guid: &str, timeout: Duration) -> Result<String, LoaderDiskNotFound> {
    let start = Instant::now();
    let mut checked: Vec<String> = Vec::new();
    loop {
        let devices = block::list_devices();
        for disk in partitioned_disks(&devices) {
            if checked.iter().any(|name| name == disk) {
                continue;
            }
            checked.push(disk.to_owned());
            let node = Path::new("/dev").join(disk);
            match gpt::partition_guids(&node, logical_block_size(disk)) {
                Ok(guids) if guids.iter().any(|candidate| candidate == guid) => return Ok(disk.to_owned()),
                Ok(_) => {}
                Err(error) => log::debug!("{}: no GPT read: {}", node.display(), error_chain(&error)),
            }
        }
        if start.elapsed() >= timeout {
            return Err(LoaderDiskNotFound { guid: guid.to_owned(), waited: timeout });
        }
        sleep(POLL_INTERVAL);
    }
}

/// Whole disks that have partitions, by name.
fn partitioned_disks(devices: &[BlockDevice]) -> Vec<&str> {
    let mut disks: Vec<&str> = devices.iter().filter_map(|device| device.disk.as_deref()).collect();
    disks.sort_unstable();
    disks.dedup();
    disks
}

fn logical_block_size(disk: &str) -> u64 {
    let path = Path::new("/sys/class/block").join(disk).join("queue/logical_block_size");
    let size = fs::read_to_string(path).ok().and_then(|text| text.trim().parse().ok()).unwrap_or(512);
    if (512..=65536).contains(&size) {
        size
    } else {
        512
    }
}

/// The disk the running root filesystem was mounted from (`vda` for `/dev/vda2`), from sysfs: stage 1 chose that
/// partition on the boot disk.
pub fn root_filesystem_disk() -> Option<String> {
    let device = fs::metadata("/").ok()?.dev();
    let (major, minor) = (nix::sys::stat::major(device), nix::sys::stat::minor(device));
    // /sys/dev/block/254:2 -> ../../devices/…/block/vda/vda2; a partition's parent directory is its disk.
    let link = Path::new("/sys/dev/block").join(format!("{major}:{minor}"));
    if !link.join("partition").exists() {
        return None;
    }
    let target = fs::read_link(&link).ok()?;
    Some(target.parent()?.file_name()?.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::efi_vars::parse_string_variable;
    use crate::efi_vars::tests::variable;

    fn guid(text: &str) -> Option<String> {
        parse_guid(&parse_string_variable(&variable(text))?)
    }

    #[test]
    fn reads_the_loader_partition_guid() {
        assert_eq!(
            guid("5B3D0C1A-2E4F-4A6B-8C9D-0E1F2A3B4C5D").as_deref(),
            Some("5b3d0c1a-2e4f-4a6b-8c9d-0e1f2a3b4c5d")
        );
        assert_eq!(guid("5B3D0C1A-2E4F-4A6B-8C9D-0E1F2A3B4C5"), None);
        assert_eq!(guid("5B3D0C1A-2E4F-4A6B-8C9D-0E1F2A3B4C5X"), None);
        assert_eq!(guid("5B3D0C1A/2E4F-4A6B-8C9D-0E1F2A3B4C5D"), None);
    }
}
