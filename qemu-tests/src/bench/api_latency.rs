//! The API latency bench's measuring part: a keep-alive HTTP/1.1 connection on the API's unix socket that sends
//! one GET at a time and reads the whole reply (Content-Length or chunked), and the percentiles of the times.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

/// How long one reply may take before the bench gives up.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest reply read (50 containers' summaries are about 40 KB).
const MAX_REPLY: usize = 16 << 20;

/// One open connection to the API.
pub struct ApiConnection {
    reader: BufReader<UnixStream>,
}

impl ApiConnection {
    pub fn open(socket: &Path) -> Result<Self> {
        let stream = UnixStream::connect(socket).with_context(|| format!("connecting to {}", socket.display()))?;
        stream.set_read_timeout(Some(REPLY_TIMEOUT))?;
        stream.set_write_timeout(Some(REPLY_TIMEOUT))?;
        Ok(ApiConnection { reader: BufReader::new(stream) })
    }

    /// `GET path`: the time from the first byte sent to the last byte of the reply read, and the body.
    pub fn get(&mut self, path: &str) -> Result<(Duration, Vec<u8>)> {
        let request = format!("GET {path} HTTP/1.1\r\nHost: keel\r\n\r\n");
        let started = Instant::now();
        self.reader.get_mut().write_all(request.as_bytes())?;
        let mut status = String::new();
        self.reader.read_line(&mut status)?;
        ensure!(status.starts_with("HTTP/1.1 200"), "GET {path}: {}", status.trim());
        let (mut length, mut chunked) = (None, false);
        loop {
            let mut header = String::new();
            self.reader.read_line(&mut header)?;
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            let (name, value) = header.split_once(':').context("a header without a colon")?;
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = Some(value.trim().parse::<usize>()?),
                "transfer-encoding" => chunked = value.trim().eq_ignore_ascii_case("chunked"),
                _ => {}
            }
        }
        let body = match (length, chunked) {
            (Some(length), false) => {
                ensure!(length <= MAX_REPLY, "GET {path}: a reply of {length} bytes");
                let mut body = vec![0; length];
                self.reader.read_exact(&mut body)?;
                body
            }
            (None, true) => self.chunked_body()?,
            _ => bail!("GET {path}: neither Content-Length nor chunked"),
        };
        Ok((started.elapsed(), body))
    }

    fn chunked_body(&mut self) -> Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let mut size_line = String::new();
            self.reader.read_line(&mut size_line)?;
            let size = usize::from_str_radix(size_line.trim().split(';').next().unwrap_or_default(), 16)?;
            ensure!(body.len() + size <= MAX_REPLY, "a chunked reply over {MAX_REPLY} bytes");
            let start = body.len();
            body.resize(start + size, 0);
            self.reader.read_exact(&mut body[start..])?;
            let mut crlf = [0; 2];
            self.reader.read_exact(&mut crlf)?;
            if size == 0 {
                return Ok(body);
            }
        }
    }
}

/// p50, p99 and the largest of `samples`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Percentiles {
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Percentiles {
    /// Nearest-rank percentiles; `None` for no samples.
    pub fn of(samples: &[Duration]) -> Option<Self> {
        let mut sorted = samples.to_vec();
        sorted.sort();
        let rank = |percent: usize| sorted[(sorted.len() * percent).div_ceil(100).saturating_sub(1)];
        let max = *sorted.last()?;
        Some(Percentiles { p50: rank(50), p99: rank(99), max })
    }
}

/// `1.23 ms`.
pub fn millis(duration: Duration) -> String {
    format!("{:.2} ms", duration.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<Duration> = (1..=1000).rev().map(Duration::from_micros).collect();
        let percentiles = Percentiles::of(&samples).unwrap();
        assert_eq!(percentiles.p50, Duration::from_micros(500));
        assert_eq!(percentiles.p99, Duration::from_micros(990));
        assert_eq!(percentiles.max, Duration::from_micros(1000));
        assert_eq!(Percentiles::of(&[]), None);
        assert_eq!(millis(Duration::from_micros(1234)), "1.23 ms");
    }
}
