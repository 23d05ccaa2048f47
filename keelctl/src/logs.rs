//! `keelctl logs [-f] [--tail N] [-t] NAME`: a container's output, demultiplexed from Docker's framing (keel gives
//! containers no TTY): stdout to stdout, stderr to stderr, or one JSON line per line of output.

use std::io::Write;

use hyper::Method;

use crate::client::{path_escape, Client, READ_TIMEOUT};
use crate::output;
use crate::CommandError;

/// The largest frame accepted: the server cuts lines at 16 KiB; anything far beyond is not keel's framing.
const MAX_FRAME: usize = 1 << 20;

#[derive(clap::Args)]
pub struct LogsArgs {
    /// Keep printing new output until the container stops for good (or Ctrl-C).
    #[arg(short, long)]
    follow: bool,
    /// Only the last N lines.
    #[arg(short = 'n', long)]
    tail: Option<usize>,
    /// Each line with its time (RFC 3339).
    #[arg(short, long)]
    timestamps: bool,
    /// The container: name, id or unique id prefix.
    name: String,
}

/// Which stream a frame belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Docker's multiplexed framing: `[stream, 0, 0, 0, length as big-endian u32]`, then the payload.
#[derive(Default)]
pub struct Demultiplexer {
    pending: Vec<u8>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("a log frame names stream {0}, not stdout (1) or stderr (2)")]
    UnknownStream(u8),
    #[error("a log frame of {0} bytes is larger than {MAX_FRAME}")]
    TooLarge(usize),
    #[error("the log stream ends inside a frame")]
    Truncated,
}

impl Demultiplexer {
    /// Adds `bytes` and returns the frames now complete.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<(Stream, Vec<u8>)>, FrameError> {
        self.pending.extend_from_slice(bytes);
        let mut frames = Vec::new();
        loop {
            let Some(header) = self.pending.get(..8) else { return Ok(frames) };
            let stream = match header[0] {
                1 => Stream::Stdout,
                2 => Stream::Stderr,
                other => return Err(FrameError::UnknownStream(other)),
            };
            let length = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
            if length > MAX_FRAME {
                return Err(FrameError::TooLarge(length));
            }
            if self.pending.len() < 8 + length {
                return Ok(frames);
            }
            let payload = self.pending[8..8 + length].to_vec();
            self.pending.drain(..8 + length);
            frames.push((stream, payload));
        }
    }

    /// Checks that the stream did not end inside a frame.
    pub fn finish(&self) -> Result<(), FrameError> {
        if self.pending.is_empty() {
            Ok(())
        } else {
            Err(FrameError::Truncated)
        }
    }
}

pub fn run(client: &Client, args: &LogsArgs, json: bool) -> Result<(), CommandError> {
    let mut path = format!("/containers/{}/logs?stdout=1&stderr=1", path_escape(&args.name));
    if args.follow {
        path.push_str("&follow=1");
    }
    if let Some(tail) = args.tail {
        path.push_str(&format!("&tail={tail}"));
    }
    if args.timestamps {
        path.push_str("&timestamps=1");
    }
    let mut stream = client.stream(Method::GET, &path)?;
    // A follower waits for as long as the container runs; a one-shot read must not hang on a stalled server.
    let idle = if args.follow { None } else { Some(READ_TIMEOUT) };
    let mut demultiplexer = Demultiplexer::default();
    let framing = |error: FrameError| CommandError::Failed(format!("GET {path}: {error}"));
    while let Some(chunk) = stream.next_chunk(idle)? {
        for (which, payload) in demultiplexer.push(&chunk).map_err(framing)? {
            if json {
                output::json_line(&json_record(which, &payload, args.timestamps))?;
            } else {
                write_raw(which, &payload)?;
            }
        }
    }
    demultiplexer.finish().map_err(framing)?;
    Ok(())
}

fn write_raw(which: Stream, payload: &[u8]) -> std::io::Result<()> {
    match which {
        Stream::Stdout => {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(payload)?;
            stdout.flush()
        }
        Stream::Stderr => std::io::stderr().lock().write_all(payload),
    }
}

/// `{"stream": "stdout", "time": "…", "line": "…"}` (`time` only with `-t`; the line without its newline).
fn json_record(which: Stream, payload: &[u8], timestamps: bool) -> serde_json::Value {
    let text = String::from_utf8_lossy(payload);
    let text = text.strip_suffix('\n').unwrap_or(&text);
    let stream = match which {
        Stream::Stdout => "stdout",
        Stream::Stderr => "stderr",
    };
    match text.split_once(' ').filter(|_| timestamps) {
        Some((time, line)) => serde_json::json!({"stream": stream, "time": time, "line": line}),
        None => serde_json::json!({"stream": stream, "line": text}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(stream: u8, payload: &[u8]) -> Vec<u8> {
        let mut bytes = vec![stream, 0, 0, 0];
        bytes.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes());
        bytes.extend_from_slice(payload);
        bytes
    }

    #[test]
    fn splits_frames_across_chunk_boundaries() {
        let mut bytes = frame(1, b"out 1\n");
        bytes.extend(frame(2, b"err 1\n"));
        let mut demultiplexer = Demultiplexer::default();
        let mut frames = Vec::new();
        for piece in bytes.chunks(5) {
            frames.extend(demultiplexer.push(piece).unwrap());
        }
        demultiplexer.finish().unwrap();
        assert_eq!(frames, vec![(Stream::Stdout, b"out 1\n".to_vec()), (Stream::Stderr, b"err 1\n".to_vec())]);
    }

    #[test]
    fn refuses_what_is_not_docker_framing() {
        let mut demultiplexer = Demultiplexer::default();
        assert_eq!(demultiplexer.push(b"hello world\n"), Err(FrameError::UnknownStream(b'h')));
        let mut demultiplexer = Demultiplexer::default();
        assert_eq!(demultiplexer.push(&[1, 0, 0, 0, 0x7f, 0, 0, 0]), Err(FrameError::TooLarge(0x7f00_0000)));
        let mut demultiplexer = Demultiplexer::default();
        demultiplexer.push(&frame(1, b"cut")[..9]).unwrap();
        assert_eq!(demultiplexer.finish(), Err(FrameError::Truncated));
    }

    #[test]
    fn json_records_split_the_timestamp() {
        let record = json_record(Stream::Stderr, b"2026-11-29T20:00:00.000Z err 1\n", true);
        assert_eq!(
            record,
            serde_json::json!({"stream": "stderr", "time": "2026-11-29T20:00:00.000Z", "line": "err 1"})
        );
        assert_eq!(
            json_record(Stream::Stdout, b"a b\n", false),
            serde_json::json!({"stream": "stdout", "line": "a b"})
        );
    }
}
