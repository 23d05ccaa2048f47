//! Renders a record as one syslog line: RFC 5424 for the network, the BSD local form for a unix socket.

use std::sync::Arc;
use std::time::SystemTime;

use keel_config::{Facility, SyslogDestination, SyslogFormat, SyslogTarget};

use super::timestamp;
use crate::append::{push_bytes, push_digits};

/// RFC 5424 caps APP-NAME at 48 and HOSTNAME at 255 printable US-ASCII characters.
const APP_NAME_MAX: usize = 48;
const HOSTNAME_MAX: usize = 255;
/// A datagram this size crosses any path unfragmented in practice, and every receiver takes it.
const UDP_LINE_MAX: usize = 2048;
/// rsyslog's default `maxMessageSize`; also what a local `/dev/log` reader takes.
const STREAM_LINE_MAX: usize = 8192;

/// How bad a record is, with the RFC 5424 codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Emergency = 0,
    Alert = 1,
    Critical = 2,
    Error = 3,
    Warning = 4,
    Notice = 5,
    Informational = 6,
    Debug = 7,
}

impl Severity {
    pub fn code(self) -> u8 {
        self as u8
    }
}

impl From<log::Level> for Severity {
    fn from(level: log::Level) -> Severity {
        match level {
            log::Level::Error => Severity::Error,
            log::Level::Warn => Severity::Warning,
            log::Level::Info => Severity::Informational,
            log::Level::Debug | log::Level::Trace => Severity::Debug,
        }
    }
}

/// One log line to relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Who said it: `keel`, or a container's name (shared by the lines of one read).
    pub app_name: Arc<str>,
    pub severity: Severity,
    pub message: String,
    pub timestamp: SystemTime,
    /// The record's own facility (the kernel's `kern`); `None` takes `[syslog] facility`.
    pub facility: Option<Facility>,
    /// RFC 5424 STRUCTURED-DATA, whole (`[keel@32473 container_id="…" image="…"]`); `None` is the nil value `-`.
    pub structured_data: Option<Arc<str>>,
}

impl Record {
    /// A record stamped now, in the configured facility.
    pub fn now(app_name: impl Into<Arc<str>>, severity: Severity, message: impl Into<String>) -> Record {
        Record {
            app_name: app_name.into(),
            severity,
            message: message.into(),
            timestamp: SystemTime::now(),
            facility: None,
            structured_data: None,
        }
    }
}

/// The line shape a receiver expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    /// `<PRI>1 TIMESTAMP HOSTNAME APP-NAME - - - MSG` (RFC 5424) for UDP, TCP and TLS receivers.
    Rfc5424,
    /// `<PRI>Mmm dd hh:mm:ss HOSTNAME APP-NAME: MSG` (RFC 3164) for network receivers that only know the old form.
    Rfc3164,
    /// `<PRI>Mmm dd hh:mm:ss APP-NAME: MSG`, what glibc's `syslog(3)` writes to `/dev/log`: rsyslog's imuxsock,
    /// journald and busybox syslogd parse this on a local socket, and none of them parses RFC 5424 there by default.
    Local,
}

/// Renders records for one target with the host's facility and name.
#[derive(Debug, Clone)]
pub(crate) struct Formatter {
    style: Style,
    facility: Facility,
    hostname: String,
    max_line: usize,
}

impl Formatter {
    pub(crate) fn new(destination: &SyslogDestination, facility: Facility, hostname: &str) -> Formatter {
        let network = match destination.format {
            SyslogFormat::Rfc5424 => Style::Rfc5424,
            SyslogFormat::Rfc3164 => Style::Rfc3164,
        };
        let (style, max_line) = match destination.target {
            SyslogTarget::Udp { .. } => (network, UDP_LINE_MAX),
            SyslogTarget::Tcp { .. } | SyslogTarget::Tls { .. } => (network, STREAM_LINE_MAX),
            SyslogTarget::Unix(_) => (Style::Local, STREAM_LINE_MAX),
        };
        Formatter { style, facility, hostname: printable(hostname, HOSTNAME_MAX, &[]), max_line }
    }

    /// The record as one line, without framing, cut to what the target takes.
    #[cfg(test)]
    pub(crate) fn line(&self, record: &Record) -> Vec<u8> {
        let mut line = Vec::new();
        self.write_line(record, &mut timestamp::SecondStamp::default(), &mut line);
        line
    }

    /// [`line`](Self::line) appended to `out`, written piece by piece: the relay thread writes one per line.
    /// `stamp` keeps the last second's date and time for the next line.
    pub(crate) fn write_line(&self, record: &Record, stamp: &mut timestamp::SecondStamp, out: &mut Vec<u8>) {
        let start = out.len();
        let facility = record.facility.unwrap_or(self.facility);
        let priority = u16::from(facility.0) * 8 + u16::from(record.severity.code());
        out.push(b'<');
        push_digits(out, u64::from(priority), 1);
        out.push(b'>');
        match self.style {
            Style::Rfc5424 => {
                push_bytes(out, b"1 ");
                timestamp::write_rfc3339_millis(stamp, record.timestamp, out);
                out.push(b' ');
                push_bytes(out, self.hostname.as_bytes());
                out.push(b' ');
                push_printable(out, &record.app_name, APP_NAME_MAX, &[]);
                push_bytes(out, b" - - ");
                push_bytes(out, record.structured_data.as_deref().unwrap_or("-").as_bytes());
                out.push(b' ');
            }
            // The tag ends at the first `:` or `[`, so neither may appear inside it.
            Style::Rfc3164 => {
                push_bytes(out, timestamp::bsd(record.timestamp).as_bytes());
                out.push(b' ');
                push_bytes(out, self.hostname.as_bytes());
                out.push(b' ');
                push_printable(out, &record.app_name, APP_NAME_MAX, &[':', '[', ']']);
                push_bytes(out, b": ");
            }
            Style::Local => {
                push_bytes(out, timestamp::bsd(record.timestamp).as_bytes());
                out.push(b' ');
                push_printable(out, &record.app_name, APP_NAME_MAX, &[':', '[', ']']);
                push_bytes(out, b": ");
            }
        }
        let message = record.message.trim_end_matches(['\n', '\r']);
        let room = self.max_line.saturating_sub(out.len() - start);
        push_bytes(out, truncated(message, room).as_bytes());
    }
}

/// The STRUCTURED-DATA element of a container's lines: its id and image, under keel's SD-ID (`keel@32473`: 32473
/// is the enterprise number RFC 5612 sets aside for documentation, as keel has none of its own). `"`, `\` and `]`
/// in values are escaped as RFC 5424 asks.
pub fn structured_data(container_id: &str, image: &str) -> String {
    let escape = |value: &str| {
        let mut escaped = String::with_capacity(value.len());
        for c in value.chars().filter(|c| !c.is_control()) {
            if matches!(c, '"' | '\\' | ']') {
                escaped.push('\\');
            }
            escaped.push(c);
        }
        escaped
    };
    format!("[keel@32473 container_id=\"{}\" image=\"{}\"]", escape(container_id), escape(image))
}

/// `text` cut to at most `max` bytes on a character boundary.
pub(crate) fn truncated(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// `text` as printable US-ASCII (33..=126) without `forbidden`, others replaced by `_`, at most `max` characters;
/// `-` (the RFC 5424 nil value) when empty.
fn printable(text: &str, max: usize, forbidden: &[char]) -> String {
    let mut out = Vec::with_capacity(text.len().min(max));
    push_printable(&mut out, text, max, forbidden);
    String::from_utf8_lossy(&out).into_owned()
}

/// [`printable`] appended to `out`.
fn push_printable(out: &mut Vec<u8>, text: &str, max: usize, forbidden: &[char]) {
    if text.is_empty() || max == 0 {
        out.push(b'-');
        return;
    }
    for c in text.chars().take(max) {
        out.push(if c.is_ascii_graphic() && !forbidden.contains(&c) { c as u8 } else { b'_' });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn record(app_name: &str, severity: Severity, message: &str) -> Record {
        let timestamp = UNIX_EPOCH + Duration::from_millis(1_709_210_096_789);
        Record {
            app_name: app_name.into(),
            severity,
            message: message.into(),
            timestamp,
            facility: None,
            structured_data: None,
        }
    }

    fn tcp() -> SyslogDestination {
        SyslogDestination::new(SyslogTarget::Tcp { host: "h".into(), port: 601 })
    }

    #[test]
    fn renders_rfc5424_with_facility_and_severity_in_pri() {
        let formatter = Formatter::new(&tcp(), Facility(19), "node-1");
        let line = formatter.line(&record("web", Severity::Warning, "disk almost full\n"));
        assert_eq!(
            String::from_utf8(line).unwrap(),
            "<156>1 2024-02-29T12:34:56.789Z node-1 web - - - disk almost full"
        );
        let line = Formatter::new(&tcp(), Facility(0), "h").line(&record("k", Severity::Emergency, "x"));
        assert!(line.starts_with(b"<0>1 "));
        let line = Formatter::new(&tcp(), Facility(23), "h").line(&record("k", Severity::Debug, "x"));
        assert!(line.starts_with(b"<191>1 "));
    }

    #[test]
    fn renders_rfc3164_with_the_hostname_for_old_receivers() {
        let destination = SyslogDestination {
            format: SyslogFormat::Rfc3164,
            ..SyslogDestination::new(SyslogTarget::Tls { host: "h".into(), port: 6514 })
        };
        let line = Formatter::new(&destination, Facility(16), "node-1").line(&record("web", Severity::Error, "boom"));
        assert_eq!(String::from_utf8(line).unwrap(), "<131>Feb 29 12:34:56 node-1 web: boom");
    }

    #[test]
    fn structured_data_goes_between_msgid_and_msg_in_rfc5424_only() {
        let labelled = Record {
            structured_data: Some(structured_data("abc", "reg/app:1 \"x\"]").into()),
            ..record("web", Severity::Informational, "up")
        };
        let line = Formatter::new(&tcp(), Facility(3), "h").line(&labelled);
        assert!(String::from_utf8(line)
            .unwrap()
            .ends_with(r#" h web - - [keel@32473 container_id="abc" image="reg/app:1 \"x\"\]"] up"#),);
        let bsd = SyslogDestination { format: SyslogFormat::Rfc3164, ..tcp() };
        let line = Formatter::new(&bsd, Facility(3), "h").line(&labelled);
        assert!(String::from_utf8(line).unwrap().ends_with(" h web: up"));
    }

    #[test]
    fn a_record_with_its_own_facility_keeps_it() {
        let formatter = Formatter::new(&tcp(), Facility(3), "h");
        let kernel = Record { facility: Some(Facility(0)), ..record("kernel", Severity::Error, "oom") };
        assert!(formatter.line(&kernel).starts_with(b"<3>1 "));
    }

    #[test]
    fn renders_the_local_form_for_unix_sockets() {
        let formatter =
            Formatter::new(&SyslogDestination::new(SyslogTarget::Unix("/dev/log".into())), Facility(3), "ignored");
        let line = formatter.line(&record("a:b[1]", Severity::Error, "boom"));
        assert_eq!(String::from_utf8(line).unwrap(), "<27>Feb 29 12:34:56 a_b_1_: boom");
    }

    #[test]
    fn sanitises_app_name_and_hostname() {
        let formatter = Formatter::new(&tcp(), Facility(3), "my host\u{e9}");
        let long = "n".repeat(60);
        let line = String::from_utf8(formatter.line(&record(&long, Severity::Notice, "m"))).unwrap();
        assert!(line.contains(&format!(" my_host_ {} - - - m", "n".repeat(48))), "{line}");
        let line = String::from_utf8(formatter.line(&record("", Severity::Notice, "m"))).unwrap();
        assert!(line.contains(" my_host_ - - - - m"), "{line}");
        assert_eq!(Formatter::new(&tcp(), Facility(3), "").hostname, "-");
        assert_eq!(Formatter::new(&tcp(), Facility(3), &"h".repeat(300)).hostname.len(), 255);
    }

    #[test]
    fn cuts_long_messages_on_a_character_boundary() {
        let formatter = Formatter::new(
            &SyslogDestination::new(SyslogTarget::Udp { host: "h".into(), port: 514 }),
            Facility(3),
            "h",
        );
        let line = formatter.line(&record("app", Severity::Notice, &"\u{e9}".repeat(5000)));
        assert!(line.len() <= UDP_LINE_MAX && line.len() >= UDP_LINE_MAX - 1, "{}", line.len());
        assert!(String::from_utf8(line).is_ok());
        assert_eq!(truncated("h\u{e9}llo", 2), "h");
        assert_eq!(truncated("h\u{e9}llo", 3), "h\u{e9}");
        assert_eq!(truncated("short", 100), "short");
    }
}
