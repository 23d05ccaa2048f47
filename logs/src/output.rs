//! Container output: pipe readers that split lines, and the `LogSink` seam they hand each line to.

use std::fs::File;
use std::io::BufReader;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::SystemTime;

use crate::batch::LogLines;
use crate::pieces::Pieces;
pub use crate::pieces::MAX_LINE;
use crate::timeline::FirstEvents;

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
    /// A [`MAX_LINE`] piece of a longer line: no newline ended it.
    pub partial: bool,
}

/// Where container lines go: the `docker logs` files, the console and the syslog relay plug in here.
/// Called on the reader threads; must not block for long.
pub trait LogSink: Send + Sync {
    /// Lines read together from one of `container`'s streams, oldest first: a reader hands on at once what one
    /// read of the pipe brought, so that a sink takes its lock and wakes its thread once for all of them.
    fn lines(&self, container: &str, lines: &LogLines);

    /// One line alone (tests, benches, and callers that have only one).
    fn record(&self, container: &str, record: &LogRecord) {
        let mut lines = LogLines::new(record.stream);
        lines.push(record.time, record.line.as_bytes(), record.partial);
        self.lines(container, &lines);
    }

    /// Called before a run of `container` from `image` starts printing, for sinks that label its lines.
    fn container_starting(&self, _container: &str, _image: &str) {}
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

/// A reader hands on at most this many lines at once…
pub const BATCH_LINES: usize = 1024;
/// …and stops adding lines once they hold this much text.
const BATCH_TEXT: usize = 32 << 10;
/// What a reader's buffer of lines keeps between reads (a batch ends within a [`MAX_LINE`] piece of its bound).
const BATCH_KEEP: usize = BATCH_TEXT + MAX_LINE;

/// Reads `pipe` line by line until its end, into every sink; `first` marks the first line. The lines one read
/// brought are handed on together, as soon as the next line is not complete in the buffer yet: a line never
/// waits for the next one. A line longer than [`MAX_LINE`] is passed on in pieces as they fill (see [`Pieces`]):
/// a reader never holds more.
pub fn spawn_reader(
    container: String,
    stream: LogStream,
    pipe: File,
    sinks: Arc<Vec<Arc<dyn LogSink>>>,
    first: Arc<FirstEvents>,
) -> std::io::Result<JoinHandle<()>> {
    thread::Builder::new().name(format!("log-{container}")).spawn(move || {
        let mut pieces = Pieces::new(BufReader::new(pipe));
        let mut piece = Vec::with_capacity(MAX_LINE);
        let mut lines = LogLines::new(stream);
        let hand_on = |lines: &mut LogLines| {
            first.output(&container);
            for sink in sinks.iter() {
                sink.lines(&container, lines);
            }
            lines.clear(BATCH_KEEP);
        };
        while pieces.next_into(&mut piece) {
            lines.push(SystemTime::now(), &piece, pieces.was_cut());
            if lines.len() >= BATCH_LINES || lines.text_len() >= BATCH_TEXT || !pieces.next_is_buffered() {
                hand_on(&mut lines);
            }
        }
        if !lines.is_empty() {
            hand_on(&mut lines);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::OwnedFd;
    use std::os::unix::net::UnixStream;
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    #[derive(Default)]
    struct Collect(Mutex<Vec<(String, bool)>>);

    impl LogSink for Collect {
        fn lines(&self, _container: &str, lines: &LogLines) {
            let mut seen = self.0.lock().unwrap();
            seen.extend(lines.iter().map(|line| (line.line.to_owned(), line.partial)));
        }
    }

    fn seen(sink: &Collect) -> Vec<String> {
        sink.0.lock().unwrap().iter().map(|(line, _)| line.clone()).collect()
    }

    #[test]
    fn complete_lines_go_on_at_once_even_when_an_incomplete_one_follows_them() {
        let (reading, mut writing) = UnixStream::pair().unwrap();
        let sink = Arc::new(Collect::default());
        let reader = spawn_reader(
            "web".into(),
            LogStream::Stdout,
            File::from(OwnedFd::from(reading)),
            Arc::new(vec![sink.clone() as Arc<dyn LogSink>]),
            Arc::new(FirstEvents::default()),
        )
        .unwrap();
        writing.write_all(b"one\ntwo\nthr").unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while seen(&sink).len() < 2 {
            assert!(Instant::now() < deadline, "complete lines held back behind an incomplete one: {:?}", seen(&sink));
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(seen(&sink), ["one", "two"]);
        writing.write_all(b"ee\nlast").unwrap();
        drop(writing);
        reader.join().unwrap();
        assert_eq!(seen(&sink), ["one", "two", "three", "last"]);
        assert!(sink.0.lock().unwrap().iter().all(|(_, partial)| !partial));
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
