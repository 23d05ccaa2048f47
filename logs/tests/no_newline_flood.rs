//! The attack of a container that writes without `\n` (`cat /dev/zero`): 256 MiB in one "line" reaches the sinks in
//! pieces of at most 16 KiB while it is still being written, and the reader's process grows by far less than it.
//! A test binary of its own: its peak RSS (VmHWM) must be this test's alone.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use keel_logs::timeline::FirstEvents;
use keel_logs::{spawn_reader, LogLines, LogSink, LogStream};

const FLOOD: usize = 256 << 20;
const MAX_LINE: usize = 16 << 10;

#[derive(Default)]
struct Counting {
    records: AtomicU64,
    bytes: AtomicU64,
    longest: AtomicUsize,
    whole_lines: AtomicU64,
}

impl LogSink for Counting {
    fn lines(&self, _container: &str, lines: &LogLines) {
        for record in lines.iter() {
            self.records.fetch_add(1, Ordering::SeqCst);
            self.bytes.fetch_add(record.line.len() as u64, Ordering::SeqCst);
            self.longest.fetch_max(record.line.len(), Ordering::SeqCst);
            if !record.partial {
                self.whole_lines.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
}

/// VmHWM of this process, in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|line| line.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn a_stream_without_newlines_is_passed_on_in_16_kib_pieces_as_it_arrives_in_bounded_memory() {
    let before = peak_rss_kib();
    let (reading, mut writing) = UnixStream::pair().unwrap();
    let sink = Arc::new(Counting::default());
    let sinks: Arc<Vec<Arc<dyn LogSink>>> = Arc::new(vec![sink.clone()]);
    let reader = spawn_reader(
        "flood".into(),
        LogStream::Stdout,
        File::from(OwnedFd::from(reading)),
        sinks,
        Arc::new(FirstEvents::default()),
    )
    .unwrap();

    let zeros = vec![0u8; 64 << 10];
    for _ in 0..FLOOD / zeros.len() {
        writing.write_all(&zeros).unwrap();
    }
    // Everything is written; at most the socket's buffers and one piece are not yet passed on.
    let delivered_before_eof = sink.bytes.load(Ordering::SeqCst);
    drop(writing);
    reader.join().unwrap();

    let grown_kib = peak_rss_kib().saturating_sub(before);
    eprintln!(
        "{} records, {} bytes before EOF, longest {}, peak RSS grew {grown_kib} KiB",
        sink.records.load(Ordering::SeqCst),
        delivered_before_eof,
        sink.longest.load(Ordering::SeqCst)
    );
    assert_eq!(sink.bytes.load(Ordering::SeqCst), FLOOD as u64);
    assert_eq!(sink.records.load(Ordering::SeqCst), (FLOOD / MAX_LINE) as u64);
    assert_eq!(sink.longest.load(Ordering::SeqCst), MAX_LINE);
    assert!(
        delivered_before_eof >= (FLOOD - (8 << 20)) as u64,
        "only {delivered_before_eof} of {FLOOD} bytes reached the sinks before the end of the stream"
    );
    assert!(grown_kib < 32 << 10, "peak RSS grew by {grown_kib} KiB reading a {FLOOD}-byte line");
    assert_eq!(sink.whole_lines.load(Ordering::SeqCst), 0, "every piece of an endless line is partial");
}
