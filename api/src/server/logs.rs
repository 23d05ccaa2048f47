//! `GET /containers/{id}/logs`: the container's log files (`keel_logs::json_file`) in Docker's multiplexed framing
//! (keel gives containers no TTY): each line is a frame `[stream, 0, 0, 0, length as big-endian u32]` followed by
//! the line.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hyper::{Response, StatusCode};
use keel_logs::json_file::rfc3339_nanos;
use keel_logs::json_file::LogQuery;
use keel_logs::{LogRecord, LogStream};
use keel_supervision::machine::State;

use super::containers::resolve;
use super::{error_reply, query, stream_body, Body, Context};

/// Docker's stream numbers in a frame header.
const STDOUT: u8 = 1;
const STDERR: u8 = 2;

/// Lines framed into one chunk of the response body.
const SEND_CHUNK: usize = 1024;

/// How often a follower looks for new lines.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(100);

/// The frames of `records`.
fn frames(records: &[LogRecord], timestamps: bool) -> Vec<u8> {
    let mut body = Vec::new();
    for record in records {
        frame(&mut body, record, timestamps);
    }
    body
}

/// The logs, filtered as asked: `stdout`, `stderr`, `tail` (a number or `all`), `since`/`until` (Unix seconds, with
/// fractions), `timestamps`; with `follow`, new lines as they come until the container stops for good or the
/// client goes away.
pub fn logs(context: &Context, reference: &str, query: &HashMap<String, String>) -> Response<Body> {
    let name = match resolve(context, reference) {
        Ok(name) => name,
        Err(refusal) => return refusal.reply(),
    };
    let mut selection = LogQuery {
        stdout: query::flag(query, "stdout"),
        stderr: query::flag(query, "stderr"),
        since: query.get("since").and_then(|text| unix_time(text)),
        until: query.get("until").and_then(|text| unix_time(text)),
        tail: None,
    };
    let timestamps = query::flag(query, "timestamps");
    if !selection.stdout && !selection.stderr {
        return error_reply(StatusCode::BAD_REQUEST, "you must choose at least one stream");
    }
    selection.tail = match query.get("tail").map(String::as_str) {
        None | Some("all") | Some("") => None,
        Some(text) => match text.parse::<usize>() {
            Ok(count) => Some(count),
            Err(_) => return error_reply(StatusCode::BAD_REQUEST, &format!("tail: {text:?} is not a number or all")),
        },
    };
    let follow = query::flag(query, "follow");
    let (sender, body) = stream_body();
    let supervisor = Arc::clone(&context.supervisor);
    // The files are read on the blocking pool, never on the runtime's one thread, and sent in chunks as the client
    // takes them.
    tokio::spawn(async move {
        let reading = {
            let (supervisor, name) = (Arc::clone(&supervisor), name.clone());
            tokio::task::spawn_blocking(move || supervisor.log_files(&name).map(|files| files.read(&selection)))
        };
        let Ok(Some((records, mut follower))) = reading.await else { return };
        for chunk in records.chunks(SEND_CHUNK) {
            if sender.send(Bytes::from(frames(chunk, timestamps))).await.is_err() {
                return;
            }
        }
        drop(records);
        if !follow {
            return;
        }
        loop {
            // Looked at before reading: lines written before a final exit are still sent. A restart keeps the same
            // file, so a follower goes on across it.
            let running = supervisor
                .container(&name)
                .is_some_and(|status| !matches!(status.state, State::Exited | State::Dead | State::Created));
            let polled = {
                let (supervisor, name) = (Arc::clone(&supervisor), name.clone());
                tokio::task::spawn_blocking(move || {
                    if !running {
                        // Down for good: the last lines read from its pipes reach the files first (bounded).
                        let _ = supervisor.log_files(&name);
                    }
                    let records = follower.poll();
                    (follower, records)
                })
            };
            let Ok((back, records)) = polled.await else { return };
            follower = back;
            for chunk in records.chunks(SEND_CHUNK) {
                if sender.send(Bytes::from(frames(chunk, timestamps))).await.is_err() {
                    return;
                }
            }
            if !running {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(FOLLOW_INTERVAL) => {}
                _ = sender.closed() => return,
            }
        }
    });
    let mut response = Response::new(body);
    if let Ok(value) = CONTENT_TYPE.parse() {
        response.headers_mut().insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

/// Docker's content type for a multiplexed stream.
const CONTENT_TYPE: &str = "application/vnd.docker.multiplexed-stream";

/// Appends `record` as one frame.
fn frame(body: &mut Vec<u8>, record: &LogRecord, timestamps: bool) {
    let stream = match record.stream {
        LogStream::Stdout => STDOUT,
        LogStream::Stderr => STDERR,
    };
    let mut line = String::new();
    if timestamps {
        // Docker's `docker logs -t`: RFC 3339 with nine digits of nanoseconds.
        line.push_str(&rfc3339_nanos(record.time));
        line.push(' ');
    }
    line.push_str(&record.line);
    line.push('\n');
    let length = u32::try_from(line.len()).unwrap_or(u32::MAX);
    body.extend_from_slice(&[stream, 0, 0, 0]);
    body.extend_from_slice(&length.to_be_bytes());
    body.extend_from_slice(line.as_bytes());
}

/// Docker's `since`/`until`: Unix seconds, optionally with a fraction (`1700000000.123456789`).
pub(crate) fn unix_time(text: &str) -> Option<SystemTime> {
    let (seconds, fraction) = text.split_once('.').unwrap_or((text, ""));
    let seconds: u64 = seconds.parse().ok()?;
    let nanos: u32 = if fraction.is_empty() { 0 } else { format!("{fraction:0<9}").get(..9)?.parse().ok()? };
    UNIX_EPOCH.checked_add(Duration::new(seconds, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_the_stream_and_length() {
        let record = LogRecord { stream: LogStream::Stderr, time: UNIX_EPOCH, line: "boom".to_owned(), partial: false };
        let mut body = Vec::new();
        frame(&mut body, &record, false);
        assert_eq!(body, [&[2, 0, 0, 0, 0, 0, 0, 5][..], b"boom\n"].concat());
        assert_eq!(unix_time("10.5"), UNIX_EPOCH.checked_add(Duration::from_millis(10_500)));
        assert_eq!(unix_time("x"), None);
    }
}
