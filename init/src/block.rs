//! Finding a partition by its GPT name among the block devices the kernel knows, on one disk or unique.

use std::fs;
use std::path::PathBuf;
use std::thread::sleep;
use std::time::{Duration, Instant};

/// How often to look again while waiting for a partition to appear.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// A partition of keel's that is not there, or is there more than once.
#[derive(Debug, thiserror::Error)]
pub enum PartitionError {
    #[error("no partition named {name:?} {scope} appeared within {waited:?} (block devices seen: {seen})")]
    NotFound { name: String, scope: String, waited: Duration, seen: String },
    #[error(
        "partitions {devices} are all named {name:?} {scope}: refusing to guess which one is keel's; \
         rename or detach all but one"
    )]
    Duplicate { name: String, scope: String, devices: String },
}

/// Where a partition of keel's may be.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// On this disk only (the boot disk): partitions with the same name elsewhere are someone else's.
    Disk(&'a str),
    /// Anywhere, but then only once (no boot disk is known yet).
    Anywhere,
}

impl std::fmt::Display for Scope<'_> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scope::Disk(disk) => write!(formatter, "on the boot disk {disk}"),
            Scope::Anywhere => write!(formatter, "on any disk"),
        }
    }
}

/// The partition named `name` within `scope` among `devices`: `None` while there is none, an error when there is
/// more than one.
pub fn find_partition<'d>(
    devices: &'d [BlockDevice],
    name: &str,
    scope: Scope,
) -> Result<Option<&'d BlockDevice>, PartitionError> {
    let mut matching: Vec<&BlockDevice> = devices
        .iter()
        .filter(|device| device.partition_name.as_deref() == Some(name))
        .filter(|device| match scope {
            Scope::Disk(disk) => device.disk.as_deref() == Some(disk),
            Scope::Anywhere => true,
        })
        .collect();
    if matching.len() > 1 {
        let mut names: Vec<&str> = matching.iter().map(|device| device.name.as_str()).collect();
        names.sort_unstable();
        let devices = names.join(", ");
        return Err(PartitionError::Duplicate { name: name.to_owned(), scope: scope.to_string(), devices });
    }
    Ok(matching.pop())
}

/// Waits, up to `timeout`, for the partition named `name` within `scope`. virtio-blk probes synchronously, so it
/// is usually there at the first look; slower controllers get the time they need, but never forever. Partitions of
/// that name outside the scope are ignored, and said so.
pub fn wait_for_partition(name: &str, scope: Scope, timeout: Duration) -> Result<PathBuf, PartitionError> {
    let start = Instant::now();
    loop {
        let devices = list_devices();
        if let Some(device) = find_partition(&devices, name, scope)? {
            let node = PathBuf::from("/dev").join(&device.name);
            // devtmpfs creates the node right after the kernel announces the device; look again if it lags.
            if node.exists() {
                for other in devices.iter().filter(|other| other.partition_name.as_deref() == Some(name)) {
                    if other.name != device.name {
                        log::warn!("ignoring partition {} named {name:?}: it is not on the boot disk", other.name);
                    }
                }
                return Ok(node);
            }
        }
        if start.elapsed() >= timeout {
            let seen = describe_block_devices();
            return Err(PartitionError::NotFound {
                name: name.to_owned(),
                scope: scope.to_string(),
                waited: timeout,
                seen,
            });
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

    fn device(name: &str, disk: &str, partition_name: &str) -> BlockDevice {
        BlockDevice { name: name.into(), disk: Some(disk.into()), partition_name: Some(partition_name.into()) }
    }

    #[test]
    fn a_partition_counts_only_on_the_boot_disk_and_only_once() {
        let devices = [device("vda4", "vda", "keel-data"), device("vdb2", "vdb", "keel-data")];
        let found = |scope| find_partition(&devices, "keel-data", scope).map(|found| found.map(|d| d.name.clone()));
        assert_eq!(found(Scope::Disk("vda")).unwrap().as_deref(), Some("vda4"));
        assert_eq!(found(Scope::Disk("vdb")).unwrap().as_deref(), Some("vdb2"));
        assert_eq!(found(Scope::Disk("vdc")).unwrap(), None);
        let error = found(Scope::Anywhere).unwrap_err().to_string();
        assert!(error.starts_with("partitions vda4, vdb2 are all named \"keel-data\" on any disk"), "{error}");
        let twice = [device("vda4", "vda", "keel-data"), device("vda5", "vda", "keel-data")];
        let error = find_partition(&twice, "keel-data", Scope::Disk("vda")).unwrap_err().to_string();
        assert!(error.contains("vda4, vda5") && error.contains("on the boot disk vda"), "{error}");
    }
}
