//! keel's user-data: what a host is told to be, with defaults and validation shared by PID 1 and the tools.
//!
//! # Background
//! keel is configured like cloud-init: a config drive (NoCloud `cidata` or OpenStack `config-2`) carries
//! `user-data`, a TOML file, and `meta-data`. PID 1 reads them at boot; `keelctl validate` and
//! `keel-build config-drive` check the same file offline with the same code. `docs/config.md` is the reference.
//!
//! # Design
//! The TOML is parsed with error recovery into a spanned tree ([`toml::de::DeTable`]) and walked by a reader that
//! records every problem with its line, column and key path instead of stopping at the first, so a user fixes a
//! file in one round. One module per section; value formats shared by sections live in [`values`]. Accepted files
//! are kept as numbered generations ([`generations`]) so a bad new config never leaves the host without one.
//! Files from outside (the config drive's, an image's, a container's) are read through [`bounded_file`]: regular
//! files of at most [`bounded_file::MAX_OUTSIDE_FILE`] bytes.
//!
//! # Current limitations
//! `[syslog]`, `[api]`, `[update]`, `[registries]` and `[containers]` are parsed and validated, but only later
//! issues act on them. The NoCloud meta-data reader handles the flat `key: value` subset of YAML.
//!
//! # Example
//! ```
//! let user_data = keel_config::UserData::parse("user-data", "[host]\nhostname = \"web-1\"\n").unwrap();
//! assert_eq!(user_data.host.hostname.as_deref(), Some("web-1"));
//! let errors = keel_config::UserData::parse("user-data", "[host]\nhostnme = \"x\"\n").unwrap_err();
//! assert_eq!(errors.to_string(), "user-data:2:1: host.hostnme: unknown key; expected one of hostname, shutdown_timeout, default_ulimits");
//! ```

pub mod api;
pub mod bounded_file;
pub mod containers;
pub mod durable_file;
pub mod error;
pub mod generations;
pub mod host;
pub mod hostname;
pub mod logs;
pub mod meta_data;
pub mod network;
pub mod network_section;
mod reader;
pub mod registries;
pub mod syslog;
pub mod update;
pub mod user_data;
pub mod values;

pub use api::ApiConfig;
pub use containers::{ContainerConfig, NetworkMode, Seccomp};
pub use error::{ConfigError, ConfigErrors};
pub use host::HostConfig;
pub use hostname::{validate_hostname, HostnameError, DEFAULT_HOSTNAME};
pub use logs::LogsConfig;
pub use meta_data::MetaData;
pub use network::{InterfaceConfig, InterfaceMatch, IpCidr, NetworkConfig, Route};
pub use registries::{RegistryConfig, RegistryCredentials};
pub use syslog::{CaSource, Facility, SyslogConfig, SyslogDestination, SyslogFormat, SyslogTarget};
pub use update::UpdateConfig;
pub use user_data::UserData;
