//! [`LogLines`]: the lines a reader read from one stream at once, in one buffer, handed to every sink together.
//!
//! One buffer for all their text and one small mark per line: a reader refills the same `LogLines` for every
//! read, so passing a line on costs no allocation, and a sink takes its lock once per read, not once per line.

use std::time::SystemTime;

use crate::output::LogStream;

/// Lines of one stream, oldest first; see the module doc.
#[derive(Debug, Clone)]
pub struct LogLines {
    stream: LogStream,
    /// The lines' text one after the other, without their newlines; invalid UTF-8 replaced.
    text: String,
    marks: Vec<Mark>,
}

/// Where one line ends in the text, and what is known of it.
#[derive(Debug, Clone, Copy)]
struct Mark {
    end: usize,
    time: SystemTime,
    partial: bool,
}

/// One line of a [`LogLines`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLine<'a> {
    pub stream: LogStream,
    /// When the supervisor read it.
    pub time: SystemTime,
    /// Without its newline.
    pub line: &'a str,
    /// A [`MAX_LINE`](crate::output::MAX_LINE) piece of a longer line: no newline ended it.
    pub partial: bool,
}

impl LogLines {
    pub fn new(stream: LogStream) -> LogLines {
        LogLines { stream, text: String::new(), marks: Vec::new() }
    }

    pub fn stream(&self) -> LogStream {
        self.stream
    }

    /// Adds a line read at `time` (invalid UTF-8 replaced).
    pub fn push(&mut self, time: SystemTime, line: &[u8], partial: bool) {
        match std::str::from_utf8(line) {
            Ok(text) => self.text.push_str(text),
            Err(_) => self.text.push_str(&String::from_utf8_lossy(line)),
        }
        self.marks.push(Mark { end: self.text.len(), time, partial });
    }

    pub fn len(&self) -> usize {
        self.marks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.marks.is_empty()
    }

    /// The text of all lines together.
    pub fn text_len(&self) -> usize {
        self.text.len()
    }

    /// Empties it for the next read, keeping its buffers unless they grew past `keep` bytes of text (a run of
    /// long lines), so that a reader holds no more than that between reads.
    pub fn clear(&mut self, keep: usize) {
        self.text.clear();
        self.marks.clear();
        if self.text.capacity() > keep {
            self.text.shrink_to(keep);
        }
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = LogLine<'_>> + '_ {
        self.marks.iter().enumerate().map(move |(index, mark)| {
            let start = index.checked_sub(1).and_then(|before| self.marks.get(before)).map_or(0, |before| before.end);
            LogLine {
                stream: self.stream,
                time: mark.time,
                line: self.text.get(start..mark.end).unwrap_or_default(),
                partial: mark.partial,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn lines_keep_their_text_time_and_cut_and_survive_a_clear() {
        let mut lines = LogLines::new(LogStream::Stderr);
        let at = |second| UNIX_EPOCH + Duration::from_secs(second);
        lines.push(at(1), b"one", false);
        lines.push(at(2), b"", false);
        lines.push(at(3), b"t\xffo", true);
        let seen: Vec<(SystemTime, &str, bool)> =
            lines.iter().map(|line| (line.time, line.line, line.partial)).collect();
        assert_eq!(seen, [(at(1), "one", false), (at(2), "", false), (at(3), "t\u{fffd}o", true)]);
        assert!(lines.iter().all(|line| line.stream == LogStream::Stderr));
        lines.push(at(4), &[b'x'; 100_000], false);
        lines.clear(1024);
        assert!(lines.is_empty() && lines.text.capacity() <= 1024);
        lines.push(at(5), b"again", false);
        assert_eq!(lines.iter().map(|line| line.line).collect::<Vec<_>>(), ["again"]);
    }
}
