//! Reads the `[containers.<name>]` sections into [`ContainerConfig`]s, in file order.

pub mod canonical;
pub mod dependencies;
pub mod healthcheck;
pub mod mounts;
pub mod process;
pub mod resources;
pub mod restart;

use std::collections::BTreeMap;

use crate::hostname::validate_hostname;
use crate::reader::{Field, Reader, Table};
use crate::values::capability::{parse_capability, Capability};
use crate::values::signal::{parse_signal, Signal};
use dependencies::{DependencyCondition, DependencyRef};
use healthcheck::Healthcheck;
use mounts::{Device, Tmpfs, Volume};
use process::{CommandLine, UserSpec};
use resources::Resources;
use restart::{parse_restart_policy, RestartPolicy};

const KEYS: [&str; 33] = [
    "image",
    "entrypoint",
    "command",
    "env",
    "workdir",
    "user",
    "hostname",
    "restart",
    "memory",
    "cpus",
    "cpu_shares",
    "cpuset",
    "pids_limit",
    "ulimits",
    "network",
    "volumes",
    "tmpfs",
    "read_only",
    "cap_add",
    "cap_drop",
    "privileged",
    "no_new_privileges",
    "seccomp",
    "devices",
    "labels",
    "depends_on",
    "healthcheck",
    "stop_signal",
    "stop_timeout",
    "init",
    "required",
    "log_max_size",
    "log_max_files",
];

/// `[containers.<name>]`: one container, as `docker run` options.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerConfig {
    /// Image reference, e.g. `nginx:1.27` or `ghcr.io/org/app@sha256:…`.
    pub image: String,
    pub entrypoint: Option<CommandLine>,
    pub command: Option<CommandLine>,
    /// In file order; added to (and overriding) the image's.
    pub env: Vec<(String, String)>,
    pub workdir: Option<String>,
    pub user: Option<UserSpec>,
    pub hostname: Option<String>,
    pub restart: RestartPolicy,
    pub resources: Resources,
    pub network: NetworkMode,
    pub volumes: Vec<Volume>,
    pub tmpfs: Vec<Tmpfs>,
    pub read_only: bool,
    pub cap_add: Vec<Capability>,
    pub cap_drop: Vec<Capability>,
    pub privileged: bool,
    /// Set `no_new_privs` before exec, so setuid binaries and file capabilities grant nothing (Docker's
    /// `--security-opt no-new-privileges`); off by default as in Docker, the seccomp filter stays on either way.
    pub no_new_privileges: bool,
    /// The system call filter; `privileged` overrides it with no filter, as Docker does.
    pub seccomp: Seccomp,
    pub devices: Vec<Device>,
    pub labels: BTreeMap<String, String>,
    pub depends_on: Vec<String>,
    /// What this container waits for in each `depends_on` container; a name without an entry means `Started`.
    pub dependency_conditions: BTreeMap<String, DependencyCondition>,
    pub healthcheck: Option<Healthcheck>,
    /// `None`: the image's STOPSIGNAL, else SIGTERM.
    pub stop_signal: Option<Signal>,
    /// Seconds between the stop signal and SIGKILL.
    pub stop_timeout: u32,
    /// Run a minimal init as the container's PID 1 (Docker's `--init`).
    pub init: bool,
    /// Part of the update health gate: must be running and healthy for a trial boot to be kept.
    pub required: bool,
    /// Its log files' size and count; `None`: `[logs]`'s.
    pub log_max_size: Option<u64>,
    pub log_max_files: Option<u32>,
    /// The sha256 of the user's table in canonical form ([`canonical`]): what decides whether the container's files
    /// still belong to this definition, stable across keel releases. Empty for a config not read from user-data.
    pub definition_digest: String,
}

impl ContainerConfig {
    /// What this container waits for in `dependency` before it starts.
    pub fn dependency_condition(&self, dependency: &str) -> DependencyCondition {
        self.dependency_conditions.get(dependency).copied().unwrap_or_default()
    }
}

/// A container's network namespace.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum NetworkMode {
    /// The host's network namespace.
    #[default]
    Host,
    /// A new namespace with only `lo`.
    None,
}

/// `seccomp`: which system call filter a container gets (Docker's `--security-opt seccomp=…`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Seccomp {
    /// Docker's default profile, evaluated against the container's capabilities.
    #[default]
    Default,
    /// No filter.
    Unconfined,
    /// A profile in Docker's JSON format, read when the container is created. An absolute path.
    Profile(String),
}

/// The containers in file order, and the `depends_on` items for the cross-container checks.
pub(crate) fn read(reader: &mut Reader, field: &Field) -> Vec<(String, ContainerConfig)> {
    let mut containers = Vec::new();
    let mut dependencies = Vec::new();
    let Some(table) = reader.map(field) else { return containers };
    for (name, key_span, field) in table.entries() {
        if !mounts::is_docker_name(name) {
            let message = format!("{name:?} is not a container name; names are [a-zA-Z0-9][a-zA-Z0-9_.-]*");
            reader.error(key_span, &field.path, message);
            continue;
        }
        let Some(table) = reader.table(&field, &KEYS) else { continue };
        let depends_on = table.get("depends_on").map(|field| depends_on(reader, &field)).unwrap_or_default();
        let names = depends_on.iter().map(|dependency| dependency.name.clone()).collect();
        let conditions = depends_on.iter().map(|dependency| (dependency.name.clone(), dependency.condition)).collect();
        dependencies.push((name.to_owned(), depends_on));
        if let Some(mut container) = container(reader, &table, names) {
            container.dependency_conditions = conditions;
            containers.push((name.to_owned(), container));
        }
    }
    dependencies::check(reader, &dependencies);
    containers
}

fn container(reader: &mut Reader, table: &Table, depends_on: Vec<String>) -> Option<ContainerConfig> {
    let image = match table.get("image") {
        Some(field) => reader.parse(&field, parse_image),
        None => {
            reader.error(table.span.clone(), &format!("{}.image", table.path), "required key is missing");
            None
        }
    };
    let bool = |reader: &mut Reader, key: &str| table.get(key).and_then(|field| reader.bool(&field)).unwrap_or(false);
    let capabilities = |reader: &mut Reader, key: &str| {
        table.get(key).map(|field| reader.parse_array(&field, parse_capability)).unwrap_or_default()
    };
    let (log_max_size, log_max_files) = crate::logs::limits(reader, table, "log_max_size", "log_max_files");
    let container = ContainerConfig {
        image: String::new(),
        log_max_size,
        log_max_files,
        entrypoint: table.get("entrypoint").and_then(|field| process::command_line(reader, &field)),
        command: table.get("command").and_then(|field| process::command_line(reader, &field)),
        env: table.get("env").map(|field| process::env(reader, &field)).unwrap_or_default(),
        workdir: table.get("workdir").and_then(|field| reader.parse(&field, parse_workdir)),
        user: table.get("user").and_then(|field| reader.parse(&field, process::parse_user)),
        hostname: table
            .get("hostname")
            .and_then(|field| reader.parse(&field, |name| validate_hostname(name).map(|()| name.to_owned()))),
        restart: table.get("restart").and_then(|field| reader.parse(&field, parse_restart_policy)).unwrap_or_default(),
        resources: resources::read(reader, table),
        network: table.get("network").and_then(|field| reader.parse(&field, parse_network)).unwrap_or_default(),
        volumes: table.get("volumes").map(|field| reader.parse_array(&field, mounts::parse_volume)).unwrap_or_default(),
        tmpfs: table.get("tmpfs").map(|field| reader.parse_array(&field, mounts::parse_tmpfs)).unwrap_or_default(),
        read_only: bool(reader, "read_only"),
        cap_add: capabilities(reader, "cap_add"),
        cap_drop: capabilities(reader, "cap_drop"),
        privileged: bool(reader, "privileged"),
        no_new_privileges: bool(reader, "no_new_privileges"),
        seccomp: table.get("seccomp").and_then(|field| reader.parse(&field, parse_seccomp)).unwrap_or_default(),
        devices: table.get("devices").map(|field| reader.parse_array(&field, mounts::parse_device)).unwrap_or_default(),
        labels: table.get("labels").map(|field| labels(reader, &field)).unwrap_or_default(),
        depends_on,
        dependency_conditions: BTreeMap::new(),
        healthcheck: table.get("healthcheck").and_then(|field| healthcheck::read(reader, &field)),
        stop_signal: table.get("stop_signal").and_then(|field| stop_signal(reader, &field)),
        stop_timeout: table
            .get("stop_timeout")
            .and_then(|field| reader.integer_in(&field, 0, 86_400))
            .and_then(|seconds| u32::try_from(seconds).ok())
            .unwrap_or(10),
        init: bool(reader, "init"),
        required: bool(reader, "required"),
        definition_digest: canonical::definition_digest(table.raw()),
    };
    Some(ContainerConfig { image: image?, ..container })
}

/// `["db", …]` (each `started`, Compose's short form) or `{ db = "healthy", … }` (Compose's conditions).
fn depends_on(reader: &mut Reader, field: &Field) -> Vec<DependencyRef> {
    if field.node.get_ref().is_table() {
        let Some(table) = reader.map(field) else { return Vec::new() };
        return table
            .entries()
            .into_iter()
            .filter_map(|(name, key_span, value)| {
                let condition = reader.parse(&value, dependencies::parse_condition)?;
                Some(DependencyRef { name: name.to_owned(), condition, span: key_span, path: value.path.clone() })
            })
            .collect();
    }
    let items = reader.array(field).unwrap_or_default();
    items
        .iter()
        .filter_map(|item| {
            let name = reader.string(item)?;
            let condition = DependencyCondition::Started;
            Some(DependencyRef { name: name.to_owned(), condition, span: item.node.span(), path: item.path.clone() })
        })
        .collect()
}

fn labels(reader: &mut Reader, field: &Field) -> BTreeMap<String, String> {
    let Some(table) = reader.map(field) else { return BTreeMap::new() };
    let mut labels = BTreeMap::new();
    for (key, _, value) in table.entries() {
        if let Some(text) = reader.string(&value) {
            labels.insert(key.to_owned(), text.to_owned());
        }
    }
    labels
}

fn stop_signal(reader: &mut Reader, field: &Field) -> Option<Signal> {
    if field.node.get_ref().is_integer() {
        let number = reader.integer_in(field, 1, 64)?;
        return i32::try_from(number).ok().map(Signal);
    }
    reader.parse(field, parse_signal)
}

fn parse_image(text: &str) -> Result<String, String> {
    if text.is_empty() || text.contains(char::is_whitespace) || text.starts_with(['-', '/', ':', '@']) {
        Err(format!("{text:?} is not an image reference like nginx:1.27 or ghcr.io/org/app@sha256:…"))
    } else {
        Ok(text.to_owned())
    }
}

fn parse_workdir(text: &str) -> Result<String, String> {
    if text.starts_with('/') {
        Ok(text.to_owned())
    } else {
        Err(format!("{text:?} is not an absolute path"))
    }
}

fn parse_seccomp(text: &str) -> Result<Seccomp, String> {
    match text {
        "default" => Ok(Seccomp::Default),
        "unconfined" => Ok(Seccomp::Unconfined),
        path if path.starts_with('/') => Ok(Seccomp::Profile(path.to_owned())),
        _ => Err(format!("{text:?} is not one of default, unconfined or an absolute path to a JSON profile")),
    }
}

fn parse_network(text: &str) -> Result<NetworkMode, String> {
    match text {
        "host" => Ok(NetworkMode::Host),
        "none" => Ok(NetworkMode::None),
        "bridge" => Err("bridge networking is not supported yet; use host or none".to_owned()),
        _ => Err(format!("{text:?} is not one of host, none")),
    }
}

/// The id of container `name`, as the API, `docker ps` and the syslog relay show it: 64 hex digits, the sha256 of
/// `keel-container:<name>`. Derived from the name, so that it is the same across restarts and reboots.
pub fn container_id(name: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("keel-container:{name}").as_bytes());
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}
