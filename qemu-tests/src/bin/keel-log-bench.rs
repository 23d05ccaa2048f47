//! `make bench` for the container log files: the json-file writer's lines/s against `cat` of the same bytes into
//! a file, in the same run, on the same filesystem.
//!
//! keel's side: 1,000,000 lines of `tick NNNNNNN` handed to [`JsonFileSink`] as a container's reader thread hands
//! them on from a pipe full of short lines: [`BATCH_LINES`] lines at a time in one `LogLines` (encoding included,
//! on the handing thread), with a flush after every 8192 lines so the bounded queue never drops (dropped lines are
//! reported all the same), rotation at the default 10m × 3 files. The peer: `cat`
//! of a file holding the same encoded bytes into a file (one process, plain `read`/`write`), after the source was
//! read once so both sides start from the page cache. Each side three times, interleaved; the best run shown.
//!
//! `KEEL_BENCH_LINES` sets the line count. Runs anywhere (no root). Exit codes: 0 done, 111 a step failed.

use std::error::Error;
use std::fs;
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant, SystemTime};

use keel_logs::json_file::{encode, JsonFileSink, LogLimits};
use keel_logs::output::BATCH_LINES;
use keel_logs::{LogLines, LogRecord, LogSink, LogStream};

const DEFAULT_LINES: usize = 1_000_000;
const BATCH: usize = 8192;
const ROUNDS: usize = 3;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("keel-log-bench: {error}");
            ExitCode::from(111)
        }
    }
}

/// Removes the scratch directory, also when a step fails.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn run() -> Result<(), Box<dyn Error>> {
    let lines = std::env::var("KEEL_BENCH_LINES").ok().and_then(|lines| lines.parse().ok()).unwrap_or(DEFAULT_LINES);
    let build = keel_qemu_tests::bench::bench_dir()?;
    let scratch = Scratch(build.join(format!("logs-{}", std::process::id())));
    fs::create_dir_all(&scratch.0)?;
    let records: Vec<LogRecord> = (0..lines)
        .map(|n| LogRecord {
            stream: LogStream::Stdout,
            time: SystemTime::now(),
            line: format!("tick {n:07}"),
            partial: false,
        })
        .collect();
    let source = scratch.0.join("source.json.log");
    let mut bytes = Vec::new();
    for record in &records {
        encode(record, &mut bytes);
    }
    fs::write(&source, &bytes)?;
    let _ = fs::read(&source)?;

    let mut keel_best = Duration::MAX;
    let mut cat_best = Duration::MAX;
    let mut dropped = 0;
    for round in 0..ROUNDS {
        let containers = scratch.0.join(format!("containers-{round}"));
        let started = Instant::now();
        let sink = JsonFileSink::start(&containers, LogLimits::default())?;
        let mut read = LogLines::new(LogStream::Stdout);
        for batch in records.chunks(BATCH) {
            for lines in batch.chunks(BATCH_LINES) {
                read.clear(usize::MAX);
                for record in lines {
                    read.push(record.time, record.line.as_bytes(), record.partial);
                }
                sink.lines("bench", &read);
            }
            if !sink.flush(Duration::from_secs(60)) {
                return Err("the writer did not catch up within 60 s".into());
            }
        }
        let counters = sink.counters();
        drop(sink);
        keel_best = keel_best.min(started.elapsed());
        dropped += counters.dropped_queue_full + counters.dropped_write_failed;
        fs::remove_dir_all(&containers)?;

        let target = scratch.0.join(format!("cat-{round}"));
        let started = Instant::now();
        let status = Command::new("cat").arg(&source).stdout(Stdio::from(fs::File::create(&target)?)).status()?;
        cat_best = cat_best.min(started.elapsed());
        if !status.success() {
            return Err(format!("cat {}: {status}", source.display()).into());
        }
        fs::remove_file(&target)?;
    }
    let per_second = |time: Duration| lines as f64 / time.as_secs_f64();
    println!("json-file writer: {lines} lines, {} bytes, best of {ROUNDS}", bytes.len());
    println!("{:<28} {:>12} {:>16} {:>10}", "side", "time", "lines/s", "dropped");
    println!("{:<28} {:>9.1} ms {:>16.0} {:>10}", "keel JsonFileSink", ms(keel_best), per_second(keel_best), dropped);
    println!("{:<28} {:>9.1} ms {:>16.0} {:>10}", "cat of the same bytes", ms(cat_best), per_second(cat_best), "-");
    println!("keel: encode + queue + write with rotation (10m x 3), from the first push to the writer's join");
    println!("cat: spawn to exit, the encoded file (page cache) into a new file on the same filesystem");
    Ok(())
}

fn ms(time: Duration) -> f64 {
    time.as_secs_f64() * 1000.0
}
