//! Reads the `[syslog]` section: where container and host logs are relayed, with which facility.

use std::fmt;
use std::path::PathBuf;

use crate::reader::{Field, Reader};

/// Syslog facilities by name, with their RFC 5424 codes.
const FACILITIES: [(&str, u8); 20] = [
    ("kern", 0),
    ("user", 1),
    ("mail", 2),
    ("daemon", 3),
    ("auth", 4),
    ("syslog", 5),
    ("lpr", 6),
    ("news", 7),
    ("uucp", 8),
    ("cron", 9),
    ("authpriv", 10),
    ("ftp", 11),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
    ("local7", 23),
];

/// `[syslog]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogConfig {
    /// Where to send; without it logs stay on the host (console, `/dev/kmsg`, per-container files).
    pub target: Option<SyslogTarget>,
    pub facility: Facility,
    /// Messages held while the receiver is slow or away; beyond it the oldest are dropped and counted.
    pub queue: usize,
}

impl Default for SyslogConfig {
    fn default() -> Self {
        SyslogConfig { target: None, facility: Facility(3), queue: 10_000 }
    }
}

/// A syslog receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyslogTarget {
    Udp { host: String, port: u16 },
    Tcp { host: String, port: u16 },
    Unix(PathBuf),
}

/// A syslog facility code (0..=23).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facility(pub u8);

impl fmt::Display for Facility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match FACILITIES.iter().find(|(_, code)| *code == self.0) {
            Some((name, _)) => f.write_str(name),
            None => write!(f, "facility {}", self.0),
        }
    }
}

pub(crate) fn read(reader: &mut Reader, field: &Field) -> SyslogConfig {
    let mut syslog = SyslogConfig::default();
    let Some(table) = reader.table(field, &["target", "facility", "queue"]) else { return syslog };
    syslog.target = table.get("target").and_then(|field| reader.parse(&field, parse_target));
    if let Some(facility) = table.get("facility").and_then(|field| reader.parse(&field, parse_facility)) {
        syslog.facility = facility;
    }
    if let Some(queue) = table.get("queue").and_then(|field| reader.integer_in(&field, 1, 1_000_000)) {
        syslog.queue = usize::try_from(queue).unwrap_or(syslog.queue);
    }
    syslog
}

fn parse_target(text: &str) -> Result<SyslogTarget, String> {
    let error = || format!("{text:?} is not a syslog target like udp://host:514, tcp://host:601 or unix:///dev/log");
    if let Some(path) = text.strip_prefix("unix://") {
        return if path.starts_with('/') { Ok(SyslogTarget::Unix(PathBuf::from(path))) } else { Err(error()) };
    }
    let (scheme, address) = text.split_once("://").ok_or_else(error)?;
    let (host, port) = address.rsplit_once(':').ok_or_else(error)?;
    let host = host.strip_prefix('[').and_then(|host| host.strip_suffix(']')).unwrap_or(host);
    let port: u16 = port.parse().ok().filter(|port| *port > 0).ok_or_else(error)?;
    if host.is_empty() || host.contains(['/', ' ']) {
        return Err(error());
    }
    let host = host.to_owned();
    match scheme {
        "udp" => Ok(SyslogTarget::Udp { host, port }),
        "tcp" => Ok(SyslogTarget::Tcp { host, port }),
        _ => Err(error()),
    }
}

fn parse_facility(text: &str) -> Result<Facility, String> {
    FACILITIES.iter().find(|(name, _)| *name == text).map(|(_, code)| Facility(*code)).ok_or_else(|| {
        let names: Vec<&str> = FACILITIES.iter().map(|(name, _)| *name).collect();
        format!("{text:?} is not one of {}", names.join(", "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_targets() {
        assert_eq!(parse_target("udp://10.0.0.1:514"), Ok(SyslogTarget::Udp { host: "10.0.0.1".into(), port: 514 }));
        assert_eq!(parse_target("tcp://[fd00::1]:601"), Ok(SyslogTarget::Tcp { host: "fd00::1".into(), port: 601 }));
        assert_eq!(parse_target("unix:///dev/log"), Ok(SyslogTarget::Unix("/dev/log".into())));
        for bad in ["udp://host", "http://host:1", "unix://dev/log", "tcp://:514", "udp://h:0"] {
            assert!(parse_target(bad).is_err(), "{bad}");
        }
    }
}
