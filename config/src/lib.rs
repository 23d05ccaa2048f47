//! keel's user-data: what a host is told to be, with defaults and validation shared by PID 1 and the tools.
//!
//! # Background
//! keel is configured like cloud-init: a config drive carries `user-data`. PID 1 reads it at boot; `keelctl
//! validate` and `keel-build config-drive` check the same file offline with the same code.
//!
//! # Current limitations
//! Only the host name so far; the full TOML schema comes with the config drive.

pub mod hostname;
pub mod network;

pub use hostname::{validate_hostname, HostnameError, DEFAULT_HOSTNAME};
