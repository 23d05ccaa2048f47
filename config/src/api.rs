//! Reads the `[api]` section: the API's optional TCP listener and the unix socket's mode and group.

use std::net::SocketAddr;

use crate::reader::{Field, Reader};

/// `[api]`. The unix socket `/run/keel.sock` is always on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiConfig {
    /// Also listen on this TCP address (plain HTTP, like Docker's 2375: only on trusted networks).
    pub tcp: Option<SocketAddr>,
    /// Permission bits of the unix socket.
    pub socket_mode: u32,
    /// Group owning the unix socket (name or gid); root's group without it.
    pub socket_group: Option<String>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig { tcp: None, socket_mode: 0o600, socket_group: None }
    }
}

pub(crate) fn read(reader: &mut Reader, field: &Field) -> ApiConfig {
    let mut api = ApiConfig::default();
    let Some(table) = reader.table(field, &["tcp", "socket_mode", "socket_group"]) else { return api };
    api.tcp = table.get("tcp").and_then(|field| {
        reader.parse(&field, |text| {
            text.parse::<SocketAddr>()
                .map_err(|_| format!("{text:?} is not a listen address like 0.0.0.0:2375 or [::]:2375"))
        })
    });
    if let Some(mode) = table.get("socket_mode").and_then(|field| reader.parse(&field, parse_mode)) {
        api.socket_mode = mode;
    }
    api.socket_group = table.get("socket_group").and_then(|field| reader.parse(&field, parse_group));
    api
}

fn parse_mode(text: &str) -> Result<u32, String> {
    let valid = (3..=4).contains(&text.len()) && text.bytes().all(|byte| (b'0'..=b'7').contains(&byte));
    u32::from_str_radix(text, 8)
        .ok()
        .filter(|mode| valid && *mode <= 0o777)
        .ok_or_else(|| format!("{text:?} is not a permission mode like \"0660\" (octal, at most 0777)"))
}

fn parse_group(text: &str) -> Result<String, String> {
    let valid = !text.is_empty()
        && text.len() <= 32
        && text.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"_.-".contains(&byte))
        && !text.starts_with('-');
    if valid {
        Ok(text.to_owned())
    } else {
        Err(format!("{text:?} is not a group name or gid like \"docker\" or \"999\""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_octal_modes() {
        assert_eq!(parse_mode("0660"), Ok(0o660));
        assert_eq!(parse_mode("600"), Ok(0o600));
        for bad in ["0868", "66", "04755", "rw"] {
            assert!(parse_mode(bad).is_err(), "{bad}");
        }
    }
}
