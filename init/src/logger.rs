//! PID 1's logger: one line per record on the console, prefixed `keel:`, never failing.
//!
//! Writes go straight to stderr (the console for PID 1). A failed write is dropped, because `eprintln!` would
//! panic and a log line is never worth the host.

use std::io::Write;

/// Kernel parameter that turns on debug records.
pub const DEBUG_PARAMETER: &str = "keel.debug";

struct ConsoleLogger;

static LOGGER: ConsoleLogger = ConsoleLogger;

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
        let _ = writeln!(std::io::stderr().lock(), "keel: {level}{}", record.args());
    }

    fn flush(&self) {}
}

/// Installs the console logger; `debug` also shows debug records.
pub fn init(debug: bool) {
    // set_logger fails only when a logger is already set, which then keeps working.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(if debug { log::LevelFilter::Debug } else { log::LevelFilter::Info });
}
