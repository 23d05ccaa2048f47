//! Collects a VM's serial output into lines, mirrors it to a log file, and wakes waiters on each new line.

use std::fs::File;
use std::io::{self, Read, Write};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Console lines quoted in a wait error.
pub const ERROR_TAIL_LINES: usize = 60;

/// Why waiting on the console failed. Both variants carry the last console lines for the test report.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("timed out after {timeout:?} waiting for {what}; last console lines:\n{tail}")]
    Timeout { what: String, timeout: Duration, tail: String },
    #[error("QEMU closed the console before {what} appeared; last console lines:\n{tail}")]
    Closed { what: String, tail: String },
}

/// Where a wait looks for its line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scan {
    /// Lines after the previous match only, moving the cursor.
    AfterCursor,
    /// Every line so far and later ones, without moving the cursor.
    Everything,
}

/// Which QEMU output stream a reader thread forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The guest's serial port (`-serial stdio`).
    Serial,
    /// QEMU's own diagnostics.
    QemuStderr,
}

/// Shared between the reader threads and the `Vm`.
pub struct Console {
    state: Mutex<State>,
    new_output: Condvar,
    echo: bool,
}

#[derive(Default)]
struct State {
    lines: Vec<String>,
    partial: Vec<u8>,
    stderr: Vec<String>,
    /// Index of the first line the next `wait_line` looks at.
    cursor: usize,
    closed: bool,
    log: Option<File>,
}

impl Console {
    /// A console that appends to `log` (if any) and echoes to stderr when `echo` is set.
    pub fn new(log: Option<File>, echo: bool) -> Self {
        Self { state: Mutex::new(State { log, ..State::default() }), new_output: Condvar::new(), echo }
    }

    /// Reads `source` to its end, feeding the console; meant to run on its own thread.
    ///
    /// End of the serial stream means QEMU has exited (or is exiting): waiters are then woken for good.
    pub fn pump(&self, mut source: impl Read, stream: Stream) {
        let mut buf = [0u8; 4096];
        loop {
            match source.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => self.feed(&buf[..n], stream),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        let mut state = self.lock();
        let rest = std::mem::take(&mut state.partial);
        if stream == Stream::Serial {
            if !rest.is_empty() {
                self.push_line(&mut state, &rest, stream);
            }
            state.closed = true;
        }
        drop(state);
        self.new_output.notify_all();
    }

    fn feed(&self, bytes: &[u8], stream: Stream) {
        let mut state = self.lock();
        let mut pending = match stream {
            Stream::Serial => std::mem::take(&mut state.partial),
            Stream::QemuStderr => Vec::new(),
        };
        pending.extend_from_slice(bytes);
        let mut start = 0;
        while let Some(end) = pending[start..].iter().position(|&b| b == b'\n') {
            self.push_line(&mut state, &pending[start..start + end], stream);
            start += end + 1;
        }
        // QEMU writes its diagnostics in whole lines; only the serial stream keeps a partial line.
        match stream {
            Stream::Serial => state.partial = pending[start..].to_vec(),
            Stream::QemuStderr if start < pending.len() => self.push_line(&mut state, &pending[start..], stream),
            Stream::QemuStderr => {}
        }
        drop(state);
        self.new_output.notify_all();
    }

    fn push_line(&self, state: &mut State, raw: &[u8], stream: Stream) {
        let line = String::from_utf8_lossy(raw).trim_end_matches('\r').to_owned();
        let shown = match stream {
            Stream::Serial => line.clone(),
            Stream::QemuStderr => format!("[qemu] {line}"),
        };
        if let Some(log) = state.log.as_mut() {
            // A failing log write must not stop the test; the console is still kept in memory.
            let _ = writeln!(log, "{shown}");
        }
        if self.echo {
            eprintln!("{shown}");
        }
        match stream {
            Stream::Serial => state.lines.push(line),
            Stream::QemuStderr => state.stderr.push(line),
        }
    }

    /// Waits for the next line (after the previous match) satisfying `matches`, and returns it.
    ///
    /// Matching is expect-style: each hit moves a cursor past the matched line, so waiting twice for the same
    /// marker finds two occurrences (e.g. across a reboot). Only complete lines are matched.
    pub fn wait_line(
        &self,
        what: &str,
        timeout: Duration,
        matches: impl Fn(&str) -> bool,
    ) -> Result<String, ConsoleError> {
        self.wait_matching(what, timeout, matches, Scan::AfterCursor)
    }

    /// Waits for any line since the start of the console satisfying `matches`, also one the cursor has passed
    /// (output of a container that runs alongside the lines a test waited for), and leaves the cursor alone.
    pub fn wait_line_anywhere(
        &self,
        what: &str,
        timeout: Duration,
        matches: impl Fn(&str) -> bool,
    ) -> Result<String, ConsoleError> {
        self.wait_matching(what, timeout, matches, Scan::Everything)
    }

    fn wait_matching(
        &self,
        what: &str,
        timeout: Duration,
        matches: impl Fn(&str) -> bool,
        scan: Scan,
    ) -> Result<String, ConsoleError> {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        let mut scanned = match scan {
            Scan::AfterCursor => state.cursor,
            Scan::Everything => 0,
        };
        loop {
            if let Some(offset) = state.lines[scanned..].iter().position(|l| matches(l)) {
                let index = scanned + offset;
                if scan == Scan::AfterCursor {
                    state.cursor = index + 1;
                }
                return Ok(state.lines[index].clone());
            }
            scanned = state.lines.len();
            if scan == Scan::AfterCursor {
                state.cursor = scanned;
            }
            if state.closed {
                return Err(ConsoleError::Closed { what: what.to_owned(), tail: tail(&state) });
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(ConsoleError::Timeout { what: what.to_owned(), timeout, tail: tail(&state) });
            }
            state = self
                .new_output
                .wait_timeout(state, deadline - now)
                .map(|(s, _)| s)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }

    /// Waits until the serial stream has ended (QEMU exited); returns false on timeout.
    pub fn wait_closed(&self, timeout: Duration) -> bool {
        let state = self.lock();
        let (state, _) =
            self.new_output.wait_timeout_while(state, timeout, |s| !s.closed).unwrap_or_else(|e| e.into_inner());
        state.closed
    }

    /// Everything the guest printed so far, one line per line (a trailing partial line included).
    pub fn text(&self) -> String {
        let state = self.lock();
        let mut text = state.lines.join("\n");
        if !state.partial.is_empty() {
            text.push('\n');
            text.push_str(&String::from_utf8_lossy(&state.partial));
        }
        text
    }

    /// The last console lines and QEMU's diagnostics, as quoted in errors.
    pub fn tail(&self) -> String {
        tail(&self.lock())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A reader thread cannot panic while holding the lock in a way that leaves the state torn; keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn tail(state: &State) -> String {
    let start = state.lines.len().saturating_sub(ERROR_TAIL_LINES);
    let mut text = state.lines[start..].join("\n");
    if !state.partial.is_empty() {
        text.push('\n');
        text.push_str(&String::from_utf8_lossy(&state.partial));
    }
    if !state.stderr.is_empty() {
        text.push_str("\nQEMU stderr:\n");
        text.push_str(&state.stderr.join("\n"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_lines_in_order_and_reports_close() {
        let console = Console::new(None, false);
        console.pump(&b"one\r\nkeel: ready\nkeel: ready\npartial"[..], Stream::Serial);
        let t = Duration::from_millis(10);
        assert_eq!(console.wait_line("ready", t, |l| l.contains("ready")).ok().as_deref(), Some("keel: ready"));
        assert!(console.wait_line("ready", t, |l| l.contains("ready")).is_ok());
        assert!(console.wait_line("partial", t, |l| l == "partial").is_ok());
        let err = console.wait_line("ready", t, |l| l.contains("ready"));
        assert!(matches!(err, Err(ConsoleError::Closed { .. })));
        assert!(console.wait_closed(t));
        assert_eq!(console.text(), "one\nkeel: ready\nkeel: ready\npartial");
    }

    #[test]
    fn times_out_with_tail_and_stderr() {
        let console = Console::new(None, false);
        console.feed(b"booting\n", Stream::Serial);
        console.feed(b"qemu: warning\n", Stream::QemuStderr);
        match console.wait_line("never", Duration::from_millis(10), |l| l == "never") {
            Err(ConsoleError::Timeout { tail, .. }) => {
                assert!(tail.contains("booting") && tail.contains("qemu: warning"));
            }
            other => panic!("expected a timeout, got {other:?}"),
        }
        assert!(!console.wait_closed(Duration::from_millis(10)));
    }
}
