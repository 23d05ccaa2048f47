//! One json-file line: a [`LogRecord`] as `{"log":…,"stream":…,"time":…}` and back, bounded before parsing.

use std::borrow::Cow;

use serde::Deserialize;

use super::time::{parse_rfc3339, write_rfc3339_nanos};
use crate::append::push_bytes;
use crate::batch::LogLine;
use crate::output::{LogRecord, LogStream};
use crate::pieces::MAX_LINE;
use crate::syslog::timestamp::SecondStamp;

/// The longest line a reader parses: a [`MAX_LINE`] piece with every byte escaped as `\u00XX` and the fields
/// around it. Longer lines were not written by keel and are skipped unread.
pub const MAX_ENTRY: usize = MAX_LINE * 6 + 256;

#[derive(Deserialize)]
struct Entry<'a> {
    #[serde(borrow)]
    log: Cow<'a, str>,
    #[serde(borrow)]
    stream: Cow<'a, str>,
    #[serde(borrow)]
    time: Cow<'a, str>,
}

/// Appends `record` to `out` as one line, ending with `\n`. The `log` field carries the line's `\n`, as Docker
/// writes it; a piece of a longer line (see [`crate::pieces`]) carries none.
pub fn encode(record: &LogRecord, out: &mut Vec<u8>) {
    let line = LogLine { stream: record.stream, time: record.time, line: &record.line, partial: record.partial };
    encode_line(line, &mut SecondStamp::default(), out);
}

/// [`encode`] for a line of a [`LogLines`](crate::LogLines), written straight into `out`: the fields in
/// [`Entry`]'s order, nothing allocated, the time's second from `stamp`.
pub(crate) fn encode_line(line: LogLine<'_>, stamp: &mut SecondStamp, out: &mut Vec<u8>) {
    push_bytes(out, b"{\"log\":\"");
    push_escaped(out, line.line);
    if !line.partial {
        push_bytes(out, b"\\n");
    }
    push_bytes(out, b"\",\"stream\":\"");
    push_bytes(out, stream_name(line.stream).as_bytes());
    push_bytes(out, b"\",\"time\":\"");
    write_rfc3339_nanos(stamp, line.time, out);
    push_bytes(out, b"\"}\n");
}

/// `text` as the inside of a JSON string, escaped as serde_json escapes (`\"`, `\\`, `\n`-style short forms,
/// `\u00XX` for the other control characters), so that files read the same as before. Runs that need no escape
/// are copied whole.
fn push_escaped(out: &mut Vec<u8>, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = text.as_bytes();
    let mut start = 0;
    for (at, &byte) in bytes.iter().enumerate() {
        let short = match byte {
            b'"' => b'"',
            b'\\' => b'\\',
            b'\n' => b'n',
            b'\r' => b'r',
            b'\t' => b't',
            0x08 => b'b',
            0x0c => b'f',
            0x00..=0x1f => b'u',
            _ => continue,
        };
        push_bytes(out, &bytes[start..at]);
        start = at + 1;
        out.push(b'\\');
        out.push(short);
        if short == b'u' {
            push_bytes(out, &[b'0', b'0', HEX[usize::from(byte >> 4)], HEX[usize::from(byte & 0xf)]]);
        }
    }
    push_bytes(out, &bytes[start..]);
}

/// The record of one line (without its `\n`), or `None` if it is too long, not JSON, or lacks a field.
pub fn decode(line: &[u8]) -> Option<LogRecord> {
    if line.len() > MAX_ENTRY {
        return None;
    }
    let entry: Entry = serde_json::from_slice(line).ok()?;
    let stream = match &*entry.stream {
        "stdout" => LogStream::Stdout,
        "stderr" => LogStream::Stderr,
        _ => return None,
    };
    let time = parse_rfc3339(&entry.time)?;
    let (text, partial) = match entry.log.strip_suffix('\n') {
        Some(text) => (text.to_owned(), false),
        None => (entry.log.into_owned(), true),
    };
    Some(LogRecord { stream, time, line: text, partial })
}

fn stream_name(stream: LogStream) -> &'static str {
    match stream {
        LogStream::Stdout => "stdout",
        LogStream::Stderr => "stderr",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn escapes_every_character_as_serde_json_does() {
        let mut text: String = (0u8..=0x7f).map(char::from).collect();
        text.push_str("\u{e9}\u{2028}\u{1F600}");
        let mut out = Vec::new();
        push_escaped(&mut out, &text);
        let expected = serde_json::to_string(&text).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), expected[1..expected.len() - 1]);
    }

    #[test]
    fn docker_json_file_lines() {
        let record = LogRecord {
            stream: LogStream::Stderr,
            time: UNIX_EPOCH + Duration::new(1_709_210_096, 5),
            line: "say \"hi\"\t\u{1b}".to_owned(),
            partial: false,
        };
        let mut out = Vec::new();
        encode(&record, &mut out);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "{\"log\":\"say \\\"hi\\\"\\t\\u001b\\n\",\"stream\":\"stderr\",\"time\":\"2024-02-29T12:34:56.000000005Z\"}\n"
        );
        assert_eq!(decode(&out[..out.len() - 1]), Some(record.clone()));
        let piece =
            LogRecord { stream: LogStream::Stdout, partial: true, line: "\u{e9}\u{2028}".to_owned(), ..record.clone() };
        let mut out = Vec::new();
        encode(&piece, &mut out);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "{\"log\":\"\u{e9}\u{2028}\",\"stream\":\"stdout\",\"time\":\"2024-02-29T12:34:56.000000005Z\"}\n"
        );
        assert_eq!(decode(&out[..out.len() - 1]), Some(piece));
        assert_eq!(decode(b"{\"log\":\"x\\n\",\"stream\":\"stdin\",\"time\":\"2024-02-29T12:34:56Z\"}"), None);
        assert_eq!(decode(b"{\"log\":\"x\\n\",\"stream\":\"stdout\",\"ti"), None);
        assert_eq!(decode(&vec![b' '; MAX_ENTRY + 1]), None);
    }
}
