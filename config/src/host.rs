//! Reads the `[host]` section: the host's own settings at boot.

use crate::hostname::validate_hostname;
use crate::reader::{Field, Reader};

/// `[host]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostConfig {
    /// The host name (RFC 1123); without it, the meta-data's, else [`crate::DEFAULT_HOSTNAME`].
    pub hostname: Option<String>,
}

pub(crate) fn read(reader: &mut Reader, field: &Field) -> HostConfig {
    let mut host = HostConfig::default();
    let Some(table) = reader.table(field, &["hostname"]) else { return host };
    if let Some(field) = table.get("hostname") {
        host.hostname = reader.parse(&field, |name| validate_hostname(name).map(|()| name.to_owned()));
    }
    host
}
