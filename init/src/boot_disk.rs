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
use nix::mount::{umount, MsFlags};

use crate::block::{self, BlockDevice};
use crate::gpt;
use crate::mounts::{is_mount_point, Mount};

const EFI_DIR: &str = "/sys/firmware/efi";
const EFIVARS: &str = "/sys/firmware/efi/efivars";
/// systemd's loader interface: the partition GUID of the ESP the loader was started from.
const LOADER_DEVICE_PART_UUID: &str = "LoaderDevicePartUUID-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f";
/// A GUID in UTF-16 with a NUL is 74 bytes, plus 4 bytes of attributes; anything much larger is not one.
const MAX_VARIABLE_LEN: u64 = 256;
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// The loader's ESP is not on any disk the kernel found.
#[derive(Debug, thiserror::Error)]
#[error("the loader's ESP (partition GUID {guid}, from LoaderDevicePartUUID) is on no disk seen within {waited:?}")]
pub struct LoaderDiskNotFound {
    pub guid: String,
    pub waited: Duration,
}

/// The partition GUID in `LoaderDevicePartUUID`, lowercase; `None` without UEFI or without the variable.
/// Mounts efivarfs for the read if nothing has, and unmounts it again.
pub fn loader_partition_guid() -> Option<String> {
    if !Path::new(EFI_DIR).exists() {
        return None;
    }
    let mounted_here = !is_mount_point(Path::new(EFIVARS));
    if mounted_here {
        let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC | MsFlags::MS_RDONLY;
        let efivarfs = Mount { source: "efivarfs", target: EFIVARS, fstype: "efivarfs", flags, data: None };
        if let Err(error) = efivarfs.ensure() {
            log::warn!("{}", keel_logs::error_chain(&error));
            return None;
        }
    }
    let guid = read_variable(&Path::new(EFIVARS).join(LOADER_DEVICE_PART_UUID));
    if mounted_here {
        if let Err(error) = umount(EFIVARS) {
            log::warn!("cannot unmount {EFIVARS}: {}", error_chain(&error));
        }
    }
    guid
}

fn read_variable(path: &Path) -> Option<String> {
    let length = fs::metadata(path).ok()?.len();
    if length > MAX_VARIABLE_LEN {
        log::warn!("{} holds {length} bytes, not a GUID; ignored", path.display());
        return None;
    }
    let guid = parse_guid_variable(&fs::read(path).ok()?);
    if guid.is_none() {
        log::warn!("{} does not hold a GUID; ignored", path.display());
    }
    guid
}

/// efivarfs gives 4 bytes of attributes, then the value: here a UTF-16LE GUID string, NUL-terminated.
fn parse_guid_variable(bytes: &[u8]) -> Option<String> {
    let units: Vec<u16> = bytes.get(4..)?.chunks_exact(2).map(|pair| u16::from_le_bytes([pair[0], pair[1]])).collect();
    let text = String::from_utf16(&units).ok()?;
    let guid = text.trim_end_matches('\0').to_ascii_lowercase();
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

    fn variable(text: &str) -> Vec<u8> {
        let mut bytes = vec![0x06, 0, 0, 0];
        bytes.extend(text.encode_utf16().chain([0]).flat_map(u16::to_le_bytes));
        bytes
    }

    #[test]
    fn reads_the_loader_partition_guid() {
        let guid = parse_guid_variable(&variable("5B3D0C1A-2E4F-4A6B-8C9D-0E1F2A3B4C5D"));
        assert_eq!(guid.as_deref(), Some("5b3d0c1a-2e4f-4a6b-8c9d-0e1f2a3b4c5d"));
        assert_eq!(parse_guid_variable(&variable("5B3D0C1A-2E4F-4A6B-8C9D-0E1F2A3B4C5")), None);
        assert_eq!(parse_guid_variable(&variable("5B3D0C1A-2E4F-4A6B-8C9D-0E1F2A3B4C5X")), None);
        assert_eq!(parse_guid_variable(&variable("5B3D0C1A/2E4F-4A6B-8C9D-0E1F2A3B4C5D")), None);
        assert_eq!(parse_guid_variable(&[6, 0]), None);
    }
}
