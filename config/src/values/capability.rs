//! Linux capability names as `--cap-add`/`--cap-drop` take them: `NET_ADMIN`, `cap_net_admin`, `ALL`.

use std::fmt;

/// Capabilities by number (linux/capability.h, up to CAP_CHECKPOINT_RESTORE = 40).
const NAMES: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// One capability, or all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    All,
    /// The capability's number, e.g. 12 for CAP_NET_ADMIN.
    Number(u8),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{text:?} is not a Linux capability like NET_ADMIN or CAP_SYS_TIME, or ALL")]
pub struct CapabilityError {
    pub text: String,
}

/// Parses a capability name, case-insensitive, `CAP_` optional.
pub fn parse_capability(text: &str) -> Result<Capability, CapabilityError> {
    let upper = text.to_ascii_uppercase();
    let name = upper.strip_prefix("CAP_").unwrap_or(&upper);
    if name == "ALL" {
        return Ok(Capability::All);
    }
    NAMES
        .iter()
        .position(|known| *known == name)
        .map(|index| Capability::Number(index as u8))
        .ok_or_else(|| CapabilityError { text: text.to_owned() })
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Capability::All => f.write_str("ALL"),
            Capability::Number(number) => match NAMES.get(usize::from(*number)) {
                Some(name) => write!(f, "CAP_{name}"),
                None => write!(f, "capability {number}"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_with_or_without_prefix() {
        assert_eq!(parse_capability("NET_ADMIN"), Ok(Capability::Number(12)));
        assert_eq!(parse_capability("cap_net_admin"), Ok(Capability::Number(12)));
        assert_eq!(parse_capability("all"), Ok(Capability::All));
        assert_eq!(Capability::Number(40).to_string(), "CAP_CHECKPOINT_RESTORE");
        assert!(parse_capability("NET_ADMINS").is_err());
    }
}
