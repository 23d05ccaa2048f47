//! `/var/lib/keel/update/channel.json`: the version the poller installed last and in which boot, so that the next
//! boot tells a version still waiting for its reboot from one whose trial failed, and never installs the latter
//! again.

use std::path::Path;

use keel_config::bounded_file::read_file_bounded;
use keel_config::durable_file::write_durably;

use super::decision::ChannelInstall;

/// Where the poller's last install is kept.
pub const CHANNEL_RECORD: &str = "/var/lib/keel/update/channel.json";
/// The kernel's id of this boot, a new random UUID at every boot.
const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";
/// The record is a version and a UUID.
const MAX_RECORD: u64 = 4096;

/// The poller's last install; `None` when there is none or it cannot be read (then the channel's version is
/// installed, at worst once more).
pub fn read(path: &Path) -> Option<ChannelInstall> {
    let bytes = match read_file_bounded(path, MAX_RECORD) {
        Ok(bytes) => bytes,
        Err(error) if error.is_not_found() => return None,
        Err(error) => {
            log::warn!("update channel: {}", keel_logs::error_chain(&error));
            return None;
        }
    };
    serde_json::from_slice(&bytes)
        .inspect_err(|error| log::warn!("update channel: {} is not a channel record: {error}", path.display()))
        .ok()
}

pub fn write(path: &Path, install: &ChannelInstall) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    write_durably(path, &serde_json::to_vec(install).unwrap_or_default())
}

/// This boot's id; empty if the kernel does not say (then every record looks like an earlier boot's).
pub fn boot_id() -> String {
    std::fs::read_to_string(BOOT_ID).map(|id| id.trim().to_owned()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_tolerates_what_is_not_a_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("update/channel.json");
        assert_eq!(read(&path), None);
        let install = ChannelInstall { version: "0.2.0".into(), boot_id: boot_id() };
        write(&path, &install).unwrap();
        assert_eq!(read(&path), Some(install));
        std::fs::write(&path, b"{not json").unwrap();
        assert_eq!(read(&path), None);
        assert_eq!(boot_id().len(), 36, "a UUID");
    }
}
