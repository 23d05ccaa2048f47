//! Reads the `[registries."HOST[:PORT]"]` sections: per-registry TLS choice and credentials.

use std::collections::BTreeMap;

use crate::hostname::validate_hostname;
use crate::reader::{Field, Reader};

/// One `[registries."HOST[:PORT]"]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistryConfig {
    /// Plain HTTP (or HTTPS without certificate checks), like Docker's `insecure-registries`.
    pub insecure: bool,
    pub credentials: Option<RegistryCredentials>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryCredentials {
    pub username: String,
    pub password: String,
}

pub(crate) fn read(reader: &mut Reader, field: &Field) -> BTreeMap<String, RegistryConfig> {
    let mut registries = BTreeMap::new();
    let Some(table) = reader.map(field) else { return registries };
    for (host, key_span, field) in table.entries() {
        if let Err(message) = check_host(host) {
            reader.error(key_span, &field.path, message);
            continue;
        }
        let Some(table) = reader.table(&field, &["insecure", "username", "password"]) else { continue };
        let mut registry = RegistryConfig::default();
        if let Some(insecure) = table.get("insecure").and_then(|field| reader.bool(&field)) {
            registry.insecure = insecure;
        }
        let username = table.get("username").and_then(|field| reader.string(&field));
        let password = table.get("password").and_then(|field| reader.string(&field));
        match (username, password, table.get("username"), table.get("password")) {
            (Some(username), Some(password), _, _) => {
                registry.credentials =
                    Some(RegistryCredentials { username: username.to_owned(), password: password.to_owned() })
            }
            (_, _, Some(field), None) => {
                reader.error(field.node.span(), &table.path, "username without password; give both or neither")
            }
            (_, _, None, Some(field)) => {
                reader.error(field.node.span(), &table.path, "password without username; give both or neither")
            }
            _ => {}
        }
        registries.insert(host.to_owned(), registry);
    }
    registries
}

/// `HOST` or `HOST:PORT`, HOST a DNS name or an IP address (IPv6 in brackets).
fn check_host(text: &str) -> Result<(), String> {
    let error = || format!("{text:?} is not a registry HOST or HOST:PORT like ghcr.io or 10.0.0.5:5000");
    let (host, port) = match text.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(':') => (host, Some(port)),
        _ => (text, None),
    };
    if let Some(port) = port {
        port.parse::<u16>().ok().filter(|port| *port > 0).ok_or_else(error)?;
    }
    let bracketed = host.strip_prefix('[').and_then(|host| host.strip_suffix(']'));
    let valid = match bracketed {
        Some(ipv6) => ipv6.parse::<std::net::Ipv6Addr>().is_ok(),
        None => host.parse::<std::net::Ipv4Addr>().is_ok() || validate_hostname(host).is_ok(),
    };
    if valid {
        Ok(())
    } else {
        Err(error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_registry_hosts() {
        for good in ["ghcr.io", "localhost:5000", "10.0.0.5:5000", "[fd00::1]:5000"] {
            assert_eq!(check_host(good), Ok(()), "{good}");
        }
        for bad in ["", "ghcr.io:", "ghcr.io:99999", "bad host", "https://ghcr.io"] {
            assert!(check_host(bad).is_err(), "{bad}");
        }
    }
}
