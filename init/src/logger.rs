//! PID 1's logger: the process's one [`LogRouter`], installed as the `log` logger on its stderr (the console).
//!
//! The router queues; a console that stops draining drops and counts lines instead of stalling PID 1. What is
//! queued is flushed, with a bound, before stage 1 execs the real init, before `reboot(2)` and before `keel
//! supervise` or `keel run` exit.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use keel_logs::{Console, LogRouter};

/// Kernel parameter that turns on debug records.
pub const DEBUG_PARAMETER: &str = "keel.debug";

/// How long the console gets to write what it holds before the process execs, reboots or exits.
pub const CONSOLE_FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

static ROUTER: OnceLock<Arc<LogRouter>> = OnceLock::new();

/// The router: keel's own lines and (for PID 1, or `keel supervise --echo-logs`) containers' lines.
pub fn router() -> &'static Arc<LogRouter> {
    ROUTER.get_or_init(|| Arc::new(LogRouter::new(Console::stderr(), true)))
}

/// Installs the router as the logger; `debug` also shows debug records.
pub fn init(debug: bool) {
    let router: &'static LogRouter = router();
    // set_logger fails only when a logger is already set, which then keeps working.
    let _ = log::set_logger(router);
    log::set_max_level(if debug { log::LevelFilter::Debug } else { log::LevelFilter::Info });
}

/// Gives the console [`CONSOLE_FLUSH_TIMEOUT`] to write what it holds.
pub fn flush_console() {
    router().flush_console(CONSOLE_FLUSH_TIMEOUT);
}
