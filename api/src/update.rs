//! The JSON shapes of keel's update endpoints and status fields (`POST /keel/v1/update`, `POST /keel/v1/rollback`,
//! `status.slot|boot|update`), shared by the server and `keelctl`.

use serde::{Deserialize, Serialize};

/// `POST /keel/v1/update`'s body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateRequest {
    /// An http(s) URL, or an absolute file path on the host.
    pub source: String,
}

/// The 202 reply of `POST /keel/v1/update` (the version whose manifest verified) and of `POST /keel/v1/rollback`
/// (the version of the slot that boots next).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateAccepted {
    pub version: String,
}

/// Where an install stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InstallState {
    /// Reading the bundle and writing the inactive slot; no entry boots it.
    Downloading,
    /// Every payload verified; writing the kernel, initramfs and the entry.
    Writing,
    /// The new entry is on the ESP: the next boot is a trial of the new version.
    Installed,
    /// Stopped with an error; the inactive slot has no entry.
    Failed,
}

/// `status.update`: the current or last install.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateStatus {
    pub state: InstallState,
    pub version: String,
    pub bytes_done: u64,
    pub bytes_total: u64,
    pub percent: u8,
    /// The whole error chain of a failed install.
    pub error: Option<String>,
}

/// `status.boot`: what kind of boot this is, and the rollback the boot before it ended in, if any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootStatus {
    /// `trial` (a counted entry the health gate decides), `blessed`, or `untracked` (no UEFI, another loader or
    /// entry, keel supervise).
    pub state: String,
    pub rollback: Option<RollbackReport>,
}

/// A failed trial boot the machine rolled back from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackReport {
    pub from_version: String,
    pub reason: String,
}
