//! Writes what a container sees as `/etc/hostname`, `/etc/hosts` and `/etc/resolv.conf`, by Docker's rules.
//!
//! With the host's network (`network = "host"`) Docker gives a container the host's view: the host's hostname
//! (unless the config names one), a copy of the host's `/etc/hosts` and of its `resolv.conf`. With a network of its
//! own a container gets a generated `/etc/hosts` (localhost and its hostname) and the host's `resolv.conf` without
//! loopback name servers, which would point into the container itself (Docker's public ones if none is left).

use std::path::{Path, PathBuf};

use keel_config::bounded_file::{read_text_file_bounded, BoundedReadError, MAX_OUTSIDE_FILE};
use keel_config::{ContainerConfig, NetworkMode};

/// The host file the container's copy is made of could not be read.
#[derive(Debug, thiserror::Error)]
#[error("container {container}: reading the host's {path}")]
pub struct HostFileError {
    pub container: String,
    pub path: PathBuf,
    #[source]
    pub source: BoundedReadError,
}

/// Docker's name servers for a container whose host has only loopback ones.
const FALLBACK_NAME_SERVERS: &str = "nameserver 8.8.8.8\nnameserver 8.8.4.4\n";

/// The container's hostname: the config's; with the host's network, the host's; else the container's name (keel
/// has no container ids, Docker's default).
pub fn container_hostname(name: &str, config: &ContainerConfig) -> String {
    if let Some(hostname) = &config.hostname {
        return hostname.clone();
    }
    let host = match config.network {
        NetworkMode::Host => std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default(),
        NetworkMode::None => String::new(),
    };
    match host.trim() {
        "" => name.to_owned(),
        host => host.to_owned(),
    }
}

/// `(file name, contents)` of the three files for container `name`.
pub fn etc_files(
    name: &str,
    config: &ContainerConfig,
    hostname: &str,
    host_etc: &Path,
) -> Result<[(&'static str, String); 3], HostFileError> {
    let hosts = match config.network {
        NetworkMode::Host => host_file(name, &host_etc.join("hosts"))?.unwrap_or_else(|| generated_hosts(hostname)),
        NetworkMode::None => generated_hosts(hostname),
    };
    let resolv_conf = host_file(name, &host_etc.join("resolv.conf"))?.unwrap_or_default();
    let resolv_conf = match config.network {
        NetworkMode::Host => resolv_conf,
        NetworkMode::None => without_loopback_name_servers(&resolv_conf),
    };
    Ok([("hostname", format!("{hostname}\n")), ("hosts", hosts), ("resolv.conf", resolv_conf)])
}

/// A host file, read within keel's bound for outside files; `None` if the host has none.
fn host_file(name: &str, path: &Path) -> Result<Option<String>, HostFileError> {
    match read_text_file_bounded(path, MAX_OUTSIDE_FILE) {
        Ok(text) => Ok(Some(text)),
        Err(error) if error.is_not_found() => Ok(None),
        Err(source) => Err(HostFileError { container: name.to_owned(), path: path.to_owned(), source }),
    }
}

/// Docker's /etc/hosts for a container with a network of its own, with its hostname on the loopback address.
fn generated_hosts(hostname: &str) -> String {
    format!(
        "127.0.0.1\tlocalhost {hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n\
         ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"
    )
}

/// `resolv.conf` without `nameserver` lines for loopback addresses; Docker's public name servers if none is left.
pub fn without_loopback_name_servers(text: &str) -> String {
    let is_loopback = |line: &str| {
        let mut words = line.split_whitespace();
        words.next() == Some("nameserver")
            && words
                .next()
                .and_then(|address| address.parse::<std::net::IpAddr>().ok())
                .is_some_and(|ip| ip.is_loopback())
    };
    let mut kept: String = text.lines().filter(|line| !is_loopback(line)).flat_map(|line| [line, "\n"]).collect();
    if !kept.lines().any(|line| line.split_whitespace().next() == Some("nameserver")) {
        kept.push_str(FALLBACK_NAME_SERVERS);
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_name_servers_are_stripped_and_public_ones_fill_in() {
        let text = "search corp\nnameserver 127.0.0.53\nnameserver ::1\nnameserver 192.0.2.1\noptions edns0\n";
        assert_eq!(without_loopback_name_servers(text), "search corp\nnameserver 192.0.2.1\noptions edns0\n");
        let only_local = "nameserver 127.0.0.53\nsearch corp\n";
        assert_eq!(without_loopback_name_servers(only_local), format!("search corp\n{FALLBACK_NAME_SERVERS}"));
    }

    fn config(extra: &str) -> ContainerConfig {
        let text = format!("[containers.app]\nimage = \"busybox\"\n{extra}");
        keel_config::UserData::parse("test", &text).unwrap().containers.remove("app").unwrap()
    }

    #[test]
    fn the_config_s_hostname_wins_and_no_network_means_the_name() {
        assert_eq!(container_hostname("app", &config("hostname = \"web\"")), "web");
        assert_eq!(container_hostname("app", &config("network = \"none\"")), "app");
    }
}
