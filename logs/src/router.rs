//! Where every log line goes: keel's own records and containers' output lines, to the console and to syslog.
//!
//! One [`LogRouter`] per process, used alike by PID 1 and `keel supervise`: it is the `log` crate's logger (keel's
//! lines, `keel: ` on the console, APP-NAME `keel` in syslog) and a [`LogSink`] for the supervisor (a container's
//! line, `<name> | <line>` on the console, APP-NAME `<name>` in syslog, stdout as info and stderr as err like
//! Docker's syslog driver). Neither output ever blocks a caller: the console is a [`Console`] queue with its own
//! writer thread, the relay a [`SyslogRelay`] queue with its own sender thread. The relay can be replaced when a
//! new config generation names another receiver.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use crate::batch::LogLines;
use crate::console::{Console, Source};
use crate::output::{console_line_within, LogSink, LogStream};
use crate::syslog::{structured_data, Record, Severity, SyslogRelay};

/// A container line longer than this is cut on the console (the whole line is in the buffer and in syslog): a
/// 16 KiB line of control characters would be 96 KiB escaped, seconds of a serial console.
pub const CONSOLE_LINE_MAX: usize = 2048;

/// Routes keel's and containers' lines to the console and the syslog relay; see the module doc.
#[derive(Debug)]
pub struct LogRouter {
    console: Console,
    /// Whether container lines go to the console too (always for PID 1; `keel supervise --echo-logs`).
    containers_on_console: AtomicBool,
    relay: RwLock<Option<Arc<SyslogRelay>>>,
    /// Each container's STRUCTURED-DATA (its id and its current run's image), set as a run starts.
    labels: RwLock<HashMap<String, Arc<str>>>,
}

impl LogRouter {
    pub fn new(console: Console, containers_on_console: bool) -> LogRouter {
        LogRouter {
            console,
            containers_on_console: AtomicBool::new(containers_on_console),
            relay: RwLock::new(None),
            labels: RwLock::default(),
        }
    }

    pub fn set_containers_on_console(&self, show: bool) {
        self.containers_on_console.store(show, Ordering::Relaxed);
    }

    /// Sends every later line to `relay` instead of the current one (`None`: to no receiver), and returns the
    /// one it replaces, for the caller to flush.
    pub fn replace_relay(&self, relay: Option<SyslogRelay>) -> Option<Arc<SyslogRelay>> {
        let mut current = self.relay.write().unwrap_or_else(PoisonError::into_inner);
        std::mem::replace(&mut *current, relay.map(Arc::new))
    }

    /// The current relay, for its statistics.
    pub fn relay(&self) -> Option<Arc<SyslogRelay>> {
        self.relay.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// One of keel's own lines: `keel: <level prefix><message>` on the console, APP-NAME `keel` in syslog.
    pub fn keel(&self, level: log::Level, message: String) {
        let prefix = match level {
            log::Level::Error => "error: ",
            log::Level::Warn => "warning: ",
            log::Level::Info => "",
            log::Level::Debug | log::Level::Trace => "debug: ",
        };
        self.console.line(Source::Keel, format!("keel: {prefix}{message}"));
        self.send(|| Record::now("keel", level.into(), message));
    }

    /// Lines the console dropped so far because it was behind.
    pub fn console_dropped(&self) -> u64 {
        self.console.dropped()
    }

    /// Gives the relay up to `timeout` to send what it holds (at shutdown, while the network is still up);
    /// returns whether everything was sent. After it the relay takes no more lines.
    pub fn flush_relay(&self, timeout: Duration) -> bool {
        self.relay().is_none_or(|relay| relay.flush(timeout))
    }

    /// Waits up to `timeout` for the console to write what it holds (before an exec, a reboot or an exit).
    pub fn flush_console(&self, timeout: Duration) -> bool {
        self.console.flush(timeout)
    }

    fn send(&self, record: impl FnOnce() -> Record) {
        if let Some(relay) = self.relay.read().unwrap_or_else(PoisonError::into_inner).as_ref() {
            relay.send(record());
        }
    }
}

impl LogSink for LogRouter {
    fn lines(&self, container: &str, lines: &LogLines) {
        if self.containers_on_console.load(Ordering::Relaxed) {
            for line in lines.iter() {
                let line = console_line_within(container, line.line, CONSOLE_LINE_MAX);
                self.console.line(Source::Container(container), line);
            }
        }
        let severity = match lines.stream() {
            LogStream::Stdout => Severity::Informational,
            LogStream::Stderr => Severity::Error,
        };
        // A container's lines may wait (briefly, and only while the receiver takes lines) for room in the
        // relay's queue; the relay is taken out of the lock first so that a new config's relay never waits on it.
        if let Some(relay) = self.relay() {
            let labels = self.labels.read().unwrap_or_else(PoisonError::into_inner).get(container).cloned();
            relay.send_lines_waiting(container, severity, labels, lines);
        }
    }

    fn container_starting(&self, container: &str, image: &str) {
        let labels = structured_data(&keel_config::containers::container_id(container), image);
        self.labels.write().unwrap_or_else(PoisonError::into_inner).insert(container.to_owned(), labels.into());
    }
}

impl log::Log for LogRouter {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            self.keel(record.level(), record.args().to_string());
        }
    }

    fn flush(&self) {}
}
