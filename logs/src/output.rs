//! Container output: pipe readers that split lines, a bounded per-container buffer, and the `LogSink` seam.

use std::collections::VecDeque;
use std::fs::File;
use std::io::BufReader;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::SystemTime;

use crate::timeline::FirstEvents;

/// The buffer keeps at most this many lines…
pub const MAX_LINES: usize = 10_000;
/// …and at most this many bytes of them.
pub const MAX_BYTES: usize = 1 << 20;
use crate::pieces::Pieces;
pub use crate::pieces::MAX_LINE;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    Stdout,
    Stderr,
}

/// One line of output, stamped when the supervisor read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    pub stream: LogStream,
    pub time: SystemTime,
    /// Without its newline; invalid UTF-8 replaced.
    pub line: String,
}

/// Where container lines go besides the buffer: `docker logs` files and the syslog relay plug in here.
/// Called on the reader threads; must not block for long.
pub trait LogSink: Send + Sync {
    fn record(&self, container: &str, record: &LogRecord);
}

/// How a container's line appears on a console: `<container> | <line>`, with control characters escaped.
///
/// keel's own lines start with `keel: `, and a container's can never do so: its output cannot pass for a
/// supervisor event or a boot stage. Escaping keeps it from moving the cursor, clearing the screen or hiding
/// text on the terminal that shows the console.
pub fn console_line(container: &str, line: &str) -> String {
    console_line_within(container, line, usize::MAX)
}

/// [`console_line`], cut to about `max` bytes with ` [cut]` after it: the escaping stops there, so a 16 KiB line
/// of control characters costs no more than a short one.
pub fn console_line_within(container: &str, line: &str, max: usize) -> String {
    let mut out = String::with_capacity((container.len() + 3 + line.len()).min(max.saturating_add(16)));
    out.push_str(container);
    out.push_str(" | ");
    for c in line.chars() {
        if out.len() >= max {
            out.push_str(" [cut]");
            break;
        }
        if c.is_control() && c != '\t' {
            out.push_str(&c.escape_unicode().to_string());
        } else {
            out.push(c);
        }
    }
    out
}

/// The last [`MAX_LINES`] lines or [`MAX_BYTES`] bytes of a container's output, across its restarts.
/// Every record ever pushed has a position (0, 1, 2, …), so that a follower (`docker logs -f`) can ask for what came
/// after the last one it saw.
#[derive(Debug, Default)]
pub struct LogBuffer {
    inner: Mutex<Kept>,
}

#[derive(Debug, Default)]
struct Kept {
    records: VecDeque<LogRecord>,
    bytes: usize,
    /// How many records were ever pushed: the position of the next one.
    pushed: u64,
}

impl LogBuffer {
    pub fn push(&self, record: LogRecord) {
        let mut kept = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        kept.bytes += record.line.len();
        kept.records.push_back(record);
        kept.pushed += 1;
        while kept.records.len() > MAX_LINES || kept.bytes > MAX_BYTES {
            match kept.records.pop_front() {
                Some(old) => kept.bytes -= old.line.len(),
                None => break,
            }
        }
    }

    pub fn records(&self) -> Vec<LogRecord> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).records.iter().cloned().collect()
    }

    /// The records kept from position `position` on (those already dropped are gone), and the position after the
    /// last one.
    pub fn after(&self, position: u64) -> (Vec<LogRecord>, u64) {
        let kept = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let first = kept.pushed - kept.records.len() as u64;
        let skip = usize::try_from(position.saturating_sub(first)).unwrap_or(usize::MAX);
        (kept.records.iter().skip(skip).cloned().collect(), kept.pushed)
    }
}

/// Reads `pipe` line by line until its end, into `buffer` and every sink; `first` marks the first line. A line
/// longer than [`MAX_LINE`] is passed on in pieces as they fill (see [`Pieces`]): a reader never holds more.
pub fn spawn_reader(
    container: String,
    stream: LogStream,
    pipe: File,
    buffer: Arc<LogBuffer>,
    sinks: Arc<Vec<Arc<dyn LogSink>>>,
    first: Arc<FirstEvents>,
) -> std::io::Result<JoinHandle<()>> {
    thread::Builder::new().name(format!("log-{container}")).spawn(move || {
        let mut pieces = Pieces::new(BufReader::new(pipe));
        let mut piece = Vec::with_capacity(MAX_LINE);
        while pieces.next_into(&mut piece) {
            first.output(&container);
            let record =
                LogRecord { stream, time: SystemTime::now(), line: String::from_utf8_lossy(&piece).into_owned() };
            for sink in sinks.iter() {
                sink.record(&container, &record);
            }
            buffer.push(record);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(line: &str) -> LogRecord {
        LogRecord { stream: LogStream::Stdout, time: SystemTime::UNIX_EPOCH, line: line.to_owned() }
    }

    #[test]
    fn keeps_the_newest_lines_within_bounds() {
        let buffer = LogBuffer::default();
        for index in 0..MAX_LINES + 5 {
            buffer.push(record(&index.to_string()));
        }
        let records = buffer.records();
        assert_eq!(records.len(), MAX_LINES);
        assert_eq!(records[0].line, "5");
        let big = "x".repeat(MAX_BYTES / 2 + 1);
        buffer.push(record(&big));
        buffer.push(record(&big));
        assert_eq!(buffer.records().len(), 1);
    }

    #[test]
    fn console_lines_cannot_pass_for_keel_or_drive_the_terminal() {
        assert_eq!(console_line("web", "keel: db: started (pid 1)"), "web | keel: db: started (pid 1)");
        assert_eq!(console_line("web", "a\rkeel: 5ms ready"), "web | a\\u{d}keel: 5ms ready");
        assert_eq!(console_line("web", "\u{1b}[2J\tcleared\u{85}"), "web | \\u{1b}[2J\tcleared\\u{85}");
    }

    #[test]
    fn console_lines_are_cut_without_escaping_the_rest() {
        assert_eq!(console_line_within("w", "abcdef", 6), "w | ab [cut]");
        assert_eq!(console_line_within("w", "\0\0", 6), "w | \\u{0} [cut]");
        assert_eq!(console_line_within("w", "abc", 7), "w | abc");
        assert!(console_line_within("w", &"\0".repeat(16 << 10), 2048).len() < 2048 + 16);
    }
}

#[cfg(test)]
mod buffer_tests {
    use super::*;

    fn record(line: &str) -> LogRecord {
        LogRecord { stream: LogStream::Stdout, time: std::time::SystemTime::UNIX_EPOCH, line: line.to_owned() }
    }

    #[test]
    fn a_follower_gets_what_came_after_its_position() {
        let buffer = LogBuffer::default();
        buffer.push(record("a"));
        buffer.push(record("b"));
        let (first, position) = buffer.after(0);
        assert_eq!((first.len(), position), (2, 2));
        buffer.push(record("c"));
        let (next, position) = buffer.after(position);
        assert_eq!(next.iter().map(|r| r.line.as_str()).collect::<Vec<_>>(), ["c"]);
        assert_eq!(position, 3);
        assert!(buffer.after(3).0.is_empty());
        // More than the buffer keeps: a follower far behind gets what is left.
        for n in 0..MAX_LINES + 5 {
            buffer.push(record(&n.to_string()));
        }
        let (rest, position) = buffer.after(1);
        assert_eq!(rest.len(), MAX_LINES);
        assert_eq!(position, 3 + MAX_LINES as u64 + 5);
    }
}
