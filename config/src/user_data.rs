//! The entry point: parses a whole user-data file into [`UserData`], or every error in it.

use std::collections::BTreeMap;

use toml::de::DeTable;
use toml::Spanned;

use crate::api::{self, ApiConfig};
use crate::containers::{self, dependencies, ContainerConfig};
use crate::error::{ConfigError, ConfigErrors};
use crate::host::{self, HostConfig};
use crate::logs::{self, LogsConfig};
use crate::network::NetworkConfig;
use crate::network_section;
use crate::reader::{Field, Reader};
use crate::registries::{self, RegistryConfig};
use crate::syslog::{self, SyslogConfig};
use crate::update::{self, UpdateConfig};

const SECTIONS: [&str; 8] = ["host", "network", "syslog", "logs", "api", "update", "registries", "containers"];

/// A valid user-data file. Every section is optional; an empty file is all defaults.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserData {
    pub host: HostConfig,
    /// Without `[network]`: no entries, meaning DHCPv4 on every ethernet link.
    pub network: NetworkConfig,
    pub syslog: SyslogConfig,
    /// Container log files: size and count unless a container says otherwise.
    pub logs: LogsConfig,
    pub api: ApiConfig,
    pub update: UpdateConfig,
    /// By `HOST[:PORT]`.
    pub registries: BTreeMap<String, RegistryConfig>,
    pub containers: BTreeMap<String, ContainerConfig>,
    /// The container names in the order the file declares them.
    pub container_order: Vec<String>,
    /// Valid settings that this keel does not act on yet, each placed like an error; shown by `keelctl validate`
    /// and at boot.
    pub warnings: Vec<ConfigError>,
}

impl UserData {
    /// Parses and validates `text`; errors name `file_name`, line, column and key path, all of them in file order.
    pub fn parse(file_name: &str, text: &str) -> Result<UserData, ConfigErrors> {
        let mut reader = Reader::new(file_name, text);
        let (document, syntax_errors) = DeTable::parse_recoverable(text);
        for error in syntax_errors {
            let span = error.span().unwrap_or(0..0);
            reader.error(span, "", format!("syntax error: {}", error.message()));
        }
        let root = Spanned::new(document.span(), toml::de::DeValue::Table(document.into_inner()));
        let mut user_data = read(&mut reader, &Field::root(&root));
        user_data.warnings = reader.take_warnings();
        if reader.has_errors() {
            Err(ConfigErrors { errors: reader.finish() })
        } else {
            Ok(user_data)
        }
    }

    /// Container names so that each starts after those it depends on; file order otherwise.
    pub fn start_order(&self) -> Vec<String> {
        let containers: Vec<(&str, &[String])> = self
            .container_order
            .iter()
            .filter_map(|name| self.containers.get(name).map(|container| (name.as_str(), &container.depends_on[..])))
            .collect();
        dependencies::start_order(&containers)
    }
}

fn read(reader: &mut Reader, root: &Field) -> UserData {
    let mut user_data = UserData::default();
    let Some(table) = reader.table(root, &SECTIONS) else { return user_data };
    if let Some(field) = table.get("host") {
        user_data.host = host::read(reader, &field);
    }
    if let Some(field) = table.get("network") {
        user_data.network = network_section::read(reader, &field);
    }
    if let Some(field) = table.get("syslog") {
        user_data.syslog = syslog::read(reader, &field);
    }
    if let Some(field) = table.get("logs") {
        user_data.logs = logs::read(reader, &field);
    }
    if let Some(field) = table.get("api") {
        user_data.api = api::read(reader, &field);
    }
    if let Some(field) = table.get("update") {
        user_data.update = update::read(reader, &field);
    }
    if let Some(field) = table.get("registries") {
        user_data.registries = registries::read(reader, &field);
    }
    if let Some(field) = table.get("containers") {
        for (name, mut container) in containers::read(reader, &field) {
            container.resources.add_default_ulimits(&user_data.host.default_ulimits);
            user_data.container_order.push(name.clone());
            user_data.containers.insert(name, container);
        }
    }
    user_data
}
