//! Reads the `[syslog]` section: where container and host logs are relayed, with which facility.

use std::fmt;
use std::path::PathBuf;

use toml::de::DeValue;

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

/// Receivers one config may name: each holds a queue of its own (up to `queue` lines and 4 MiB) in PID 1.
pub const MAX_RECEIVERS: usize = 8;

/// `[syslog]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogConfig {
    /// Where to send, each receiver on its own; none: logs stay on the host (console, per-container files).
    pub targets: Vec<SyslogDestination>,
    pub facility: Facility,
    /// Messages held per receiver while it is slow or away; beyond it the oldest are dropped and counted.
    pub queue: usize,
}

impl Default for SyslogConfig {
    fn default() -> Self {
        SyslogConfig { targets: Vec::new(), facility: Facility(3), queue: 10_000 }
    }
}

/// One receiver and how to talk to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogDestination {
    pub target: SyslogTarget,
    /// The line format on the network; a unix socket always gets the local `/dev/log` form.
    pub format: SyslogFormat,
    /// The certificate authorities a `tls://` receiver's certificate must chain to; `None`: Mozilla's roots.
    pub ca: Option<CaSource>,
}

impl SyslogDestination {
    /// A receiver in RFC 5424 that trusts Mozilla's roots.
    pub fn new(target: SyslogTarget) -> SyslogDestination {
        SyslogDestination { target, format: SyslogFormat::Rfc5424, ca: None }
    }
}

/// A syslog receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyslogTarget {
    Udp {
        host: String,
        port: u16,
    },
    Tcp {
        host: String,
        port: u16,
    },
    /// RFC 5425: octet-counted frames over TLS; the certificate must name `host`.
    Tls {
        host: String,
        port: u16,
    },
    Unix(PathBuf),
}

/// The line format network receivers get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyslogFormat {
    /// `<PRI>1 TIMESTAMP HOSTNAME APP-NAME - - - MSG`.
    Rfc5424,
    /// The BSD form, `<PRI>Mmm dd hh:mm:ss HOSTNAME APP-NAME: MSG`, for receivers that know no other.
    Rfc3164,
}

/// Where the certificate authorities of a TLS receiver come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaSource {
    /// PEM text written in the config.
    Pem(String),
    /// A PEM file on the host, read when the relay starts.
    File(PathBuf),
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
    let Some(table) = reader.table(field, &["target", "facility", "queue", "format", "ca"]) else { return syslog };
    let format =
        table.get("format").and_then(|field| reader.parse(&field, parse_format)).unwrap_or(SyslogFormat::Rfc5424);
    let ca = table.get("ca").and_then(|field| reader.parse(&field, parse_ca));
    let defaults = SyslogDestination { target: SyslogTarget::Unix(PathBuf::new()), format, ca };
    if let Some(field) = table.get("target") {
        syslog.targets = match field.node.get_ref() {
            DeValue::Array(_) => {
                let items = reader.array(&field).unwrap_or_default();
                if items.len() > MAX_RECEIVERS {
                    let message = format!("{} receivers; at most {MAX_RECEIVERS}", items.len());
                    reader.error(field.node.span(), &field.path, message);
                }
                items.iter().take(MAX_RECEIVERS).filter_map(|item| destination(reader, item, &defaults)).collect()
            }
            _ => destination(reader, &field, &defaults).into_iter().collect(),
        };
    }
    if let Some(facility) = table.get("facility").and_then(|field| reader.parse(&field, parse_facility)) {
        syslog.facility = facility;
    }
    if let Some(queue) = table.get("queue").and_then(|field| reader.integer_in(&field, 1, 1_000_000)) {
        syslog.queue = usize::try_from(queue).unwrap_or(syslog.queue);
    }
    syslog
}

/// One receiver: a target string with the section's format and ca, or a table `{ url, format, ca }`.
fn destination(reader: &mut Reader, field: &Field, defaults: &SyslogDestination) -> Option<SyslogDestination> {
    if !matches!(field.node.get_ref(), DeValue::Table(_)) {
        let target = reader.parse(field, parse_target)?;
        return Some(SyslogDestination { target, ..defaults.clone() });
    }
    let table = reader.table(field, &["url", "format", "ca"])?;
    let Some(url) = table.get("url") else {
        reader.error(table.span.clone(), &format!("{}.url", table.path), "required key is missing");
        return None;
    };
    let target = reader.parse(&url, parse_target);
    let format = table.get("format").and_then(|field| reader.parse(&field, parse_format)).unwrap_or(defaults.format);
    let ca = match table.get("ca") {
        Some(field) => reader.parse(&field, parse_ca),
        None => defaults.ca.clone(),
    };
    Some(SyslogDestination { target: target?, format, ca })
}

fn parse_format(text: &str) -> Result<SyslogFormat, String> {
    match text {
        "rfc5424" => Ok(SyslogFormat::Rfc5424),
        "rfc3164" => Ok(SyslogFormat::Rfc3164),
        _ => Err(format!("{text:?} is not a syslog format: \"rfc5424\" or \"rfc3164\"")),
    }
}

/// PEM text (it starts with `-----BEGIN CERTIFICATE-----`) or an absolute path to a PEM file.
fn parse_ca(text: &str) -> Result<CaSource, String> {
    let trimmed = text.trim_start();
    if trimmed.starts_with("-----BEGIN CERTIFICATE-----") {
        return if trimmed.contains("-----END CERTIFICATE-----") {
            Ok(CaSource::Pem(text.to_owned()))
        } else {
            Err("the PEM certificate has no -----END CERTIFICATE----- line".to_owned())
        };
    }
    if text.starts_with('/') {
        return Ok(CaSource::File(PathBuf::from(text)));
    }
    let shown: String = text.chars().take(40).collect();
    Err(format!("{shown:?} is neither a PEM certificate (-----BEGIN CERTIFICATE-----…) nor an absolute path to one"))
}

fn parse_target(text: &str) -> Result<SyslogTarget, String> {
    let error = || {
        format!(
            "{text:?} is not a syslog target like udp://host:514, tcp://host:601, tls://host:6514 or unix:///dev/log"
        )
    };
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
        "tls" => Ok(SyslogTarget::Tls { host, port }),
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
        assert_eq!(
            parse_target("tls://logs.example.com:6514"),
            Ok(SyslogTarget::Tls { host: "logs.example.com".into(), port: 6514 })
        );
        for bad in ["udp://host", "http://host:1", "unix://dev/log", "tcp://:514", "udp://h:0"] {
            assert!(parse_target(bad).is_err(), "{bad}");
        }
    }
}
