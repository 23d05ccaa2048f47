//! The console writer: a bounded queue of lines and one thread that writes them, so no caller ever waits on the
//! console.
//!
//! PID 1's console is a serial port (115,200 baud is about 11 KiB/s) or a terminal that may stop draining; a write
//! to it can take seconds or block forever. Callers only queue: when the queue is full the new line is dropped and
//! counted, and the writer thread prints `keel: console dropped N lines` once it catches up (or every
//! [`REPORT_EVERY`] while it stays behind). Container lines may fill only part of the queue, each container a
//! smaller part, so a container that floods its output neither crowds out keel's own lines nor another
//! container's.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// The queue holds at most this many lines…
pub const MAX_LINES: usize = 1024;
/// …and at most this many bytes of them.
pub const MAX_BYTES: usize = 256 << 10;
/// Container lines together may take this share of either bound (the rest is kept for keel's own lines)…
const CONTAINERS_SHARE: usize = 4; // 3/4
/// …and one container this share of it.
const ONE_CONTAINER_SHARE: usize = 4; // 1/4
/// While lines are being dropped, the count is reported at least this often.
pub const REPORT_EVERY: Duration = Duration::from_secs(5);

/// Who a line comes from, for the queue's shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source<'a> {
    Keel,
    Container(&'a str),
}

/// Queues console lines for a writer thread of its own; see the module doc.
#[derive(Debug)]
pub struct Console {
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    /// A line was queued, or the queue was emptied.
    changed: Condvar,
}

#[derive(Debug, Default)]
struct State {
    lines: VecDeque<(Option<String>, String)>,
    bytes: usize,
    container_lines: usize,
    container_bytes: usize,
    /// Lines and bytes queued per container.
    per_container: HashMap<String, (usize, usize)>,
    dropped: u64,
    unreported: u64,
    /// The writer thread is writing a line it took off the queue.
    writing: bool,
    /// The `Console` is gone: the writer thread ends once the queue is written.
    closed: bool,
    /// There is no writer thread: `line` writes to stderr itself.
    unattended: bool,
}

impl Console {
    /// Starts the writer thread on `output`. It starts with every signal blocked, so that it never takes a
    /// signal meant for PID 1's signalfd (a thread inherits its creator's mask). Should the thread not start, each
    /// caller writes its line to stderr itself: a console that may block beats none.
    pub fn start(output: impl Write + Send + 'static) -> Console {
        let shared = Arc::new(Shared::default());
        let thread_shared = Arc::clone(&shared);
        let started = with_signals_blocked(|| {
            std::thread::Builder::new().name("keel-console".into()).spawn(move || write_lines(&thread_shared, output))
        });
        if started.is_err() {
            shared.lock().unattended = true;
        }
        Console { shared }
    }

    /// The console of this process: its stderr.
    pub fn stderr() -> Console {
        Console::start(std::io::stderr())
    }

    /// Queues `line` (without its newline) from `source`; drops and counts it when `source`'s share is full.
    /// Never blocks beyond a short lock.
    pub fn line(&self, source: Source<'_>, line: String) {
        let mut state = self.shared.lock();
        if state.unattended {
            drop(state);
            let _ = writeln!(std::io::stderr().lock(), "{line}");
            return;
        }
        let size = line.len() + 1;
        let fits = match source {
            Source::Keel => state.lines.len() < MAX_LINES && state.bytes + size <= MAX_BYTES,
            Source::Container(name) => {
                let (lines, bytes) = state.per_container.get(name).copied().unwrap_or_default();
                state.container_lines < MAX_LINES * (CONTAINERS_SHARE - 1) / CONTAINERS_SHARE
                    && state.container_bytes + size <= MAX_BYTES * (CONTAINERS_SHARE - 1) / CONTAINERS_SHARE
                    && lines < MAX_LINES / ONE_CONTAINER_SHARE
                    && bytes + size <= MAX_BYTES / ONE_CONTAINER_SHARE
            }
        };
        if !fits {
            state.dropped += 1;
            state.unreported += 1;
            return;
        }
        state.bytes += size;
        let owner = match source {
            Source::Keel => None,
            Source::Container(name) => {
                state.container_lines += 1;
                state.container_bytes += size;
                let entry = state.per_container.entry(name.to_owned()).or_default();
                entry.0 += 1;
                entry.1 += size;
                Some(name.to_owned())
            }
        };
        state.lines.push_back((owner, line));
        drop(state);
        self.shared.changed.notify_all();
    }

    /// Lines dropped so far, in total.
    pub fn dropped(&self) -> u64 {
        self.shared.lock().dropped
    }

    /// Waits up to `timeout` for every queued line to be written (before a `switch_root`, a reboot or an exit);
    /// returns whether they were.
    pub fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.lock();
        loop {
            if state.lines.is_empty() && !state.writing {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            state = self
                .shared
                .changed
                .wait_timeout(state, deadline - now)
                .map(|(state, _)| state)
                .unwrap_or_else(|poisoned| poisoned.into_inner().0);
        }
    }
}

impl Drop for Console {
    /// The writer thread writes what is queued and ends (a write that blocks forever keeps it, and nothing else).
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.changed.notify_all();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update below leaves the counts consistent before anything can panic.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The writer thread: takes one line at a time and writes it outside the lock. A failed write is dropped: a
/// console line is never worth more than that.
fn write_lines(shared: &Shared, mut output: impl Write) {
    let mut last_report = Instant::now();
    loop {
        let mut state = shared.lock();
        state.writing = false;
        shared.changed.notify_all();
        while state.lines.is_empty() && state.unreported == 0 {
            if state.closed {
                return;
            }
            state = shared.changed.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
        let report = state.unreported > 0 && (state.lines.is_empty() || last_report.elapsed() >= REPORT_EVERY);
        let text = if report {
            last_report = Instant::now();
            format!("keel: console dropped {} lines", std::mem::take(&mut state.unreported))
        } else if let Some((owner, line)) = state.lines.pop_front() {
            let size = line.len() + 1;
            state.bytes -= size;
            if let Some(name) = owner {
                state.container_lines -= 1;
                state.container_bytes -= size;
                if let Some(entry) = state.per_container.get_mut(&name) {
                    entry.0 -= 1;
                    entry.1 -= size;
                    if entry.0 == 0 {
                        state.per_container.remove(&name);
                    }
                }
            }
            line
        } else {
            continue;
        };
        state.writing = true;
        drop(state);
        let _ = writeln!(output, "{text}");
        let _ = output.flush();
    }
}

/// Runs `spawn` with every signal blocked in this thread, then restores the mask.
fn with_signals_blocked<T>(spawn: impl FnOnce() -> T) -> T {
    use nix::sys::signal::{SigSet, SigmaskHow};
    let mut previous = SigSet::empty();
    let blocked = nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&SigSet::all()), Some(&mut previous));
    let result = spawn();
    if blocked.is_ok() {
        let _ = nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&previous), None);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Collects what the writer thread writes.
    #[derive(Clone, Default)]
    struct Collected(Arc<Mutex<Vec<u8>>>);

    impl Write for Collected {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn writes_lines_in_order_and_flush_waits_for_them() {
        let collected = Collected::default();
        let console = Console::start(collected.clone());
        console.line(Source::Keel, "keel: one".into());
        console.line(Source::Container("web"), "web | two".into());
        assert!(console.flush(Duration::from_secs(10)));
        assert_eq!(String::from_utf8(collected.0.lock().unwrap().clone()).unwrap(), "keel: one\nweb | two\n");
        assert_eq!(console.dropped(), 0);
    }

    #[test]
    fn a_flooding_container_leaves_room_for_keel_and_other_containers() {
        // No writer: the queue only fills.
        let console = Console { shared: Arc::new(Shared::default()) };
        for n in 0..MAX_LINES {
            console.line(Source::Container("flood"), format!("flood | {n}"));
        }
        let state = console.shared.lock();
        assert_eq!(state.lines.len(), MAX_LINES / ONE_CONTAINER_SHARE);
        drop(state);
        console.line(Source::Container("tick"), "tick | 1".into());
        console.line(Source::Keel, "keel: still here".into());
        let state = console.shared.lock();
        assert_eq!(state.lines.len(), MAX_LINES / ONE_CONTAINER_SHARE + 2);
        assert_eq!(state.dropped, (MAX_LINES - MAX_LINES / ONE_CONTAINER_SHARE) as u64);
    }
}
