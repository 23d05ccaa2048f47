//! PID 1's logger: one line per record on the console, prefixed `keel:`, never failing.
//!
//! Writes go straight to stderr (the console for PID 1). A failed write is dropped, because `eprintln!` would
//! panic and a log line is never worth the host.

use std::io::Write;
use std::sync::OnceLock;
use std::time::Duration;

use keel_logs::syslog::{Record, Severity, SyslogRelay};
use keel_logs::{console_line, LogRecord, LogSink, LogStream};

/// Kernel parameter that turns on debug records.
pub const DEBUG_PARAMETER: &str = "keel.debug";

struct ConsoleLogger;

static LOGGER: ConsoleLogger = ConsoleLogger;

/// Where records also go once the user-data names a syslog receiver. The relay never blocks a caller: it queues,
/// bounded, and a thread of its own sends.
static RELAY: OnceLock<SyslogRelay> = OnceLock::new();

/// Sends every later record to `relay` too (APP-NAME `keel`). Only the first relay of a boot is kept.
pub fn relay_to(relay: SyslogRelay) {
    if RELAY.set(relay).is_err() {
        log::warn!("a syslog relay is already running; the new one is not used");
    }
}

/// A container's output line: on the console as `<container> | <line>` (see [`console_line`]), to syslog with the container's
/// name as APP-NAME (stdout as info, stderr as err, like Docker's syslog driver).
pub struct ContainerLogSink;

impl LogSink for ContainerLogSink {
    fn record(&self, container: &str, record: &LogRecord) {
        let _ = writeln!(std::io::stderr().lock(), "{}", console_line(container, &record.line));
        if let Some(relay) = RELAY.get() {
            let severity = match record.stream {
                LogStream::Stdout => Severity::Informational,
                LogStream::Stderr => Severity::Error,
            };
            relay.send(Record {
                app_name: container.to_owned(),
                severity,
                message: record.line.clone(),
                timestamp: record.time,
            });
        }
    }
}

/// Gives the relay up to `timeout` to send what it holds; called at shutdown while the network is still up.
pub fn flush_relay(timeout: Duration) {
    if let Some(relay) = RELAY.get() {
        if !relay.flush(timeout) {
            log::warn!("syslog relay: not everything was sent within {timeout:?}");
        }
    }
}

impl log::Log for ConsoleLogger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let level = match record.level() {
            log::Level::Error => "error: ",
            log::Level::Warn => "warning: ",
            log::Level::Info => "",
            log::Level::Debug | log::Level::Trace => "debug: ",
        };
        let message = record.args().to_string();
        let _ = writeln!(std::io::stderr().lock(), "keel: {level}{message}");
        if let Some(relay) = RELAY.get() {
            relay.send(Record::now("keel", record.level().into(), message));
        }
    }

    fn flush(&self) {}
}

/// Installs the console logger; `debug` also shows debug records.
pub fn init(debug: bool) {
    // set_logger fails only when a logger is already set, which then keeps working.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(if debug { log::LevelFilter::Debug } else { log::LevelFilter::Info });
}
