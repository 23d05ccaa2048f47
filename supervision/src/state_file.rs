//! `<containers>/<name>/state.json`: what must survive a supervisor restart (manual stop, counts, last exit).

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use keel_config::durable_file::write_durably;
use serde::{Deserialize, Serialize};

/// The persisted part of a container's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistedState {
    /// `unless-stopped` keeps a container stopped across restarts while this is set.
    pub stopped_by_user: bool,
    pub restart_count: u32,
    /// Config and image digest the container's files were created for; a mismatch means recreate.
    pub fingerprint: String,
    pub status: String,
    pub exit_code: i32,
    pub oom_killed: bool,
    /// Milliseconds since the epoch.
    pub started_at_ms: Option<u64>,
    pub finished_at_ms: Option<u64>,
    /// The image's labels overlaid with the config's.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl PersistedState {
    /// The state at `path`; a missing or unreadable file is a fresh container.
    pub fn load(path: &Path) -> PersistedState {
        fs::read(path).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok()).unwrap_or_default()
    }

    /// Writes durably ([`write_durably`]), so a power cut leaves the old or the new state, never a stop the user
    /// asked for forgotten.
    pub fn save(&self, path: &Path) -> io::Result<()> {
        let bytes = serde_json::to_vec_pretty(self).map_err(io::Error::other)?;
        write_durably(path, &bytes)
    }
}

pub fn to_millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map(|since| since.as_millis() as u64).unwrap_or(0)
}

pub fn from_millis(millis: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_missing_is_fresh() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        assert_eq!(PersistedState::load(&path), PersistedState::default());
        let state = PersistedState { stopped_by_user: true, restart_count: 3, ..PersistedState::default() };
        state.save(&path).unwrap();
        assert_eq!(PersistedState::load(&path), state);
    }
}
