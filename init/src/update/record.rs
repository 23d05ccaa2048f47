//! `/var/lib/keel/update/install.json`: the outcome of the last install (or refusal), written durably, for people
//! and for the channel poller to read after a reboot.

use std::io;
use std::path::Path;

use keel_config::durable_file::write_durably;
use serde::Serialize;

/// Where the last install's outcome is kept.
pub const LAST_INSTALL: &str = "/var/lib/keel/update/install.json";

/// The outcome of one install.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstallRecord {
    /// Where the bundle came from.
    pub source: String,
    /// The bundle's version, once its manifest verified.
    pub version: Option<String>,
    /// The slot written, once known.
    pub slot: Option<String>,
    /// `installed` or `failed`.
    pub outcome: &'static str,
    /// The new entry's file name on the ESP.
    pub entry: Option<String>,
    /// The whole error chain of a failed install.
    pub error: Option<String>,
    /// Seconds since the epoch when it ended.
    pub finished_at: u64,
}

impl InstallRecord {
    /// Writes it to `path` so that a power cut leaves the old or the new record, never half of one.
    pub fn write(&self, path: &Path) -> io::Result<()> {
        let bytes = serde_json::to_vec_pretty(self).map_err(io::Error::other)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        write_durably(path, &bytes)
    }
}

/// Seconds since the epoch, 0 before it.
pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_record_durably() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("update/install.json");
        let record = InstallRecord {
            source: "http://10.0.2.2:8000/b.bundle".into(),
            version: Some("0.2.0".into()),
            slot: Some("b".into()),
            outcome: "installed",
            entry: Some("keel-0.2.0-b+3.conf".into()),
            error: None,
            finished_at: 1,
        };
        record.write(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"entry\": \"keel-0.2.0-b+3.conf\""), "{text}");
    }
}
