//! Finding a partition by its GPT name among the block devices the kernel knows.

use std::fs;
use std::path::PathBuf;
use std::thread::sleep;
use std::time::{Duration, Instant};

/// How often to look again while waiting for a partition to appear.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// A partition that did not show up.
#[derive(Debug, thiserror::Error)]
#[error("no partition named {name:?} appeared within {waited:?} (block devices seen: {seen})")]
pub struct PartitionNotFound {
    pub name: String,
    pub waited: Duration,
    pub seen: String,
}

/// The `/dev` node of the partition whose GPT name is `name`, if the kernel has one now.
pub fn find_partition(name: &str) -> Option<PathBuf> {
    let device = list_devices().into_iter().find(|device| device.partition_name.as_deref() == Some(name))?;
    let node = PathBuf::from("/dev").join(device.name);
    // devtmpfs creates the node right after the kernel announces the device; the caller retries.
    node.exists().then_some(node)
}

/// Waits, up to `timeout`, for the partition named `name`. virtio-blk probes synchronously, so it is usually
/// there at the first look; slower controllers get the time they need, but never forever.
pub fn wait_for_partition(name: &str, timeout: Duration) -> Result<PathBuf, PartitionNotFound> {
    let start = Instant::now();
    loop {
        if let Some(node) = find_partition(name) {
            return Ok(node);
        }
        if start.elapsed() >= timeout {
            return Err(PartitionNotFound { name: name.to_owned(), waited: timeout, seen: describe_block_devices() });
        }
        sleep(POLL_INTERVAL);
    }
}

/// `vda vda1[esp] vda2[keel-root-a]`: what there was, for the error message.
fn describe_block_devices() -> String {
    let mut devices: Vec<String> = list_devices()
        .into_iter()
        .map(|device| match device.partition_name {
            Some(label) => format!("{}[{label}]", device.name),
            None => device.name,
        })
        .collect();
    devices.sort();
    if devices.is_empty() {
        "none".to_owned()
    } else {
        devices.join(" ")
    }
}

/// A block device as sysfs describes it, read without touching the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockDevice {
    /// The kernel's name, also the `/dev` node: `vda`, `vdb2`.
    pub name: String,
    /// For a partition, the disk it is on (`vdb` for `vdb2`); `None` for a whole disk.
    pub disk: Option<String>,
    /// The GPT partition name, if any.
    pub partition_name: Option<String>,
}

/// Every block device the kernel knows now.
pub fn list_devices() -> Vec<BlockDevice> {
    let Ok(entries) = fs::read_dir("/sys/class/block") else { return Vec::new() };
    entries
        .flatten()
        .map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            let uevent = fs::read_to_string(path.join("uevent")).unwrap_or_default();
            // A partition's sysfs link points inside its disk's directory: ../../devices/…/block/vdb/vdb2.
            let disk = path
                .join("partition")
                .exists()
                .then(|| fs::read_link(&path).ok())
                .flatten()
                .and_then(|target| target.parent()?.file_name().map(|disk| disk.to_string_lossy().into_owned()));
            let partition_name = uevent_value(&uevent, "PARTNAME").map(str::to_owned);
            BlockDevice { name, disk, partition_name }
        })
        .collect()
}

fn uevent_value<'a>(uevent: &'a str, key: &str) -> Option<&'a str> {
    uevent.lines().find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_uevent_keys() {
        let uevent = "MAJOR=254\nMINOR=2\nDEVNAME=vda2\nDEVTYPE=partition\nPARTN=2\nPARTNAME=keel-root-a\n";
        assert_eq!(uevent_value(uevent, "PARTNAME"), Some("keel-root-a"));
        assert_eq!(uevent_value(uevent, "DEVNAME"), Some("vda2"));
        assert_eq!(uevent_value(uevent, "PARTN"), Some("2"));
        assert_eq!(uevent_value(uevent, "UUID"), None);
    }
}
