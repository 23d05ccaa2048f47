//! What the API asks of the host it runs on, through a trait object so that the server knows no concrete type of
//! PID 1's: the user-data in force and its generations, the syslog relay's counters, and reboot and power-off.
//! PID 1 and `keel supervise` each implement it (`init/src/host_control.rs`).

use keel_logs::syslog::RelayStats;

/// The user-data in force and what the last rejected one said.
#[derive(Debug, Clone, Default)]
pub struct ConfigSnapshot {
    /// The user-data text in force (empty when the host runs on defaults).
    pub text: String,
    /// Its generation (counts up with each accepted user-data); 0 when none was kept.
    pub generation: u64,
    /// Every error of the last user-data that was rejected at boot (the host kept an older one); empty otherwise.
    pub rejected: Vec<keel_config::ConfigError>,
}

/// The host's power actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerAction {
    Reboot,
    PowerOff,
}

/// Why the host did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum HostControlError {
    /// Not possible here (`keel supervise` has no host to reboot): the API answers 409 with this message.
    #[error("{0}")]
    Refused(String),
    #[error("cannot keep the user-data as a new generation")]
    StoreConfig(#[source] keel_config::generations::GenerationError),
    #[error("cannot pass the power request on")]
    PowerRequest(#[source] std::io::Error),
}

/// The host side of keel's own endpoints. Calls return promptly: a power action is only asked for here, and
/// happens on PID 1's main thread through its one shutdown path.
pub trait HostControl: Send + Sync {
    /// The user-data in force, its generation and the errors of the last rejected one.
    fn config(&self) -> ConfigSnapshot;
    /// Keeps `text` (already validated) as the next generation, the one in force from now on; returns its number.
    /// The caller reconciles the containers.
    fn store_config(&self, text: &str) -> Result<u64, HostControlError>;
    /// The syslog relay's counters; `None` without a `[syslog] target`.
    fn syslog(&self) -> Option<RelayStats>;
    /// Refuses `action` at once where the host cannot do it; otherwise asks for it to start `after` from now (so
    /// that the reply goes out first) and returns at once.
    fn power(&self, action: PowerAction, after: std::time::Duration) -> Result<(), HostControlError>;
}
