//! Reads the `[host]` section: the host's own settings at boot.

use std::collections::BTreeMap;

use crate::containers::resources::{self, Ulimit};
use crate::hostname::validate_hostname;
use crate::reader::{Field, Reader};

/// Docker's default `shutdown-timeout`, in seconds.
pub const DEFAULT_SHUTDOWN_TIMEOUT: u32 = 15;

/// `[host]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostConfig {
    /// The host name (RFC 1123); without it, the meta-data's, else [`crate::DEFAULT_HOSTNAME`].
    pub hostname: Option<String>,
    /// Seconds every container together gets to stop at shutdown (each with its own stop signal and
    /// `stop_timeout`, in parallel); what still runs then is killed. Docker's daemon `shutdown-timeout`.
    pub shutdown_timeout: u32,
    /// `default_ulimits`: rlimits for every container that does not set that name in its own `ulimits` (Docker's
    /// daemon `default-ulimits`); over Docker's own defaults (`resources::DOCKER_DEFAULT_ULIMITS`).
    pub default_ulimits: BTreeMap<String, Ulimit>,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig { hostname: None, shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT, default_ulimits: BTreeMap::new() }
    }
}

pub(crate) fn read(reader: &mut Reader, field: &Field) -> HostConfig {
    let mut host = HostConfig::default();
    let Some(table) = reader.table(field, &["hostname", "shutdown_timeout", "default_ulimits"]) else { return host };
    if let Some(field) = table.get("hostname") {
        host.hostname = reader.parse(&field, |name| validate_hostname(name).map(|()| name.to_owned()));
    }
    if let Some(seconds) = table.get("shutdown_timeout").and_then(|field| reader.integer_in(&field, 0, 3_600)) {
        host.shutdown_timeout = u32::try_from(seconds).unwrap_or(DEFAULT_SHUTDOWN_TIMEOUT);
    }
    if let Some(field) = table.get("default_ulimits") {
        host.default_ulimits = resources::ulimits(reader, &field);
    }
    host
}
