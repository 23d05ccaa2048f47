//! `/var/lib/keel/update/last-boot.json`: the outcome of the last trial boot, written durably before the entry is
//! renamed, and read by the next boot to report a rollback once.

use std::io;
use std::path::{Path, PathBuf};

use keel_config::bounded_file::{read_file_bounded, BoundedReadError};
use keel_config::durable_file::write_durably;
use serde::{Deserialize, Serialize};

use super::gate::ContainerReport;

/// Where the outcome of the last trial boot is kept.
pub const LAST_BOOT: &str = "/var/lib/keel/update/last-boot.json";
/// A record names a few containers; anything larger was not written by keel.
const MAX_RECORD: u64 = 256 * 1024;

/// What the health gate decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Kept: the entry is blessed.
    Passed,
    /// Rolled back: the entry has no tries left, and the machine rebooted.
    Failed,
}

/// The outcome of one trial boot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrialRecord {
    /// The entry as the loader named it (`keel-0.2.0-b+3.conf`).
    pub entry: String,
    pub version: String,
    pub slot: String,
    pub outcome: Outcome,
    /// Why, in words; for a pass, how long the window was.
    pub reason: String,
    /// The required containers the gate held against the boot (empty on a pass).
    pub containers: Vec<ContainerReport>,
    /// The entry's file name after the gate renamed it; `None` if the rename failed.
    pub renamed_to: Option<String>,
    /// Set by the next boot once it has reported the rollback.
    pub rollback_reported: bool,
}

/// Reading or writing the record failed.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: BoundedReadError,
    },
    #[error("{} is not a trial record", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

impl TrialRecord {
    /// Writes it to `path` so that a power cut leaves the old or the new record, never half of one.
    pub fn write(&self, path: &Path) -> Result<(), RecordError> {
        let write_error = |source| RecordError::Write { path: path.to_path_buf(), source };
        let bytes = serde_json::to_vec_pretty(self).map_err(|error| write_error(io::Error::other(error)))?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(write_error)?;
        }
        write_durably(path, &bytes).map_err(write_error)
    }

    /// The record at `path`; `None` if there is none (no trial boot yet).
    pub fn read(path: &Path) -> Result<Option<TrialRecord>, RecordError> {
        let bytes = match read_file_bounded(path, MAX_RECORD) {
            Ok(bytes) => bytes,
            Err(error) if error.is_not_found() => return Ok(None),
            Err(source) => return Err(RecordError::Read { path: path.to_path_buf(), source }),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| RecordError::Parse { path: path.to_path_buf(), source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_a_write_and_a_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("update/last-boot.json");
        assert_eq!(TrialRecord::read(&path).unwrap(), None);
        let record = TrialRecord {
            entry: "keel-0.2.0-b+3.conf".into(),
            version: "0.2.0".into(),
            slot: "b".into(),
            outcome: Outcome::Failed,
            reason: "required container web stopped and will not be restarted".into(),
            containers: vec![ContainerReport {
                name: "web".into(),
                state: "Exited".into(),
                exit_code: 1,
                health: None,
                condition: "Exited, exit code 1".into(),
            }],
            renamed_to: Some("keel-0.2.0-b+0-1.conf".into()),
            rollback_reported: false,
        };
        record.write(&path).unwrap();
        assert_eq!(TrialRecord::read(&path).unwrap(), Some(record));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"outcome\": \"failed\""), "{text}");
        std::fs::write(&path, "{").unwrap();
        assert!(matches!(TrialRecord::read(&path), Err(RecordError::Parse { .. })));
    }
}
