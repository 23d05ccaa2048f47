//! Runs the relay: per receiver one queue and one thread that owns the transport, drains the queue, reconnects
//! with backoff and reports drops, so that a receiver that is away never holds back the others.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use keel_config::{SyslogConfig, SyslogDestination, SyslogTarget};

use super::format::{truncated, Formatter, Record, Severity};
use super::queue::{Next, Queue};
use super::timestamp::SecondStamp;
use super::tls::TlsTrust;
use super::transport::{describe, Frames, Transport};
use crate::batch::LogLines;
use crate::error_chain;

/// Longer messages are cut before they are queued.
const MESSAGE_MAX: usize = 8192;
/// The queue holds at most this much besides its `[syslog] queue` records bound: 1,000,000 records of 8 KiB would
/// be 8 GiB of PID 1's memory. 4 MiB is 512 lines of the longest kind, or tens of thousands of ordinary ones.
pub const QUEUE_MAX_BYTES: usize = 4 << 20;
/// The relay thread takes up to this many queued lines at once and writes them to a stream with one write.
const BATCH_LINES: usize = 256;
/// What the relay thread's buffer of formatted lines keeps between batches: a batch of short lines fits.
const FRAMES_KEEP: usize = 64 << 10;
/// How long a container's line waits for room in a full queue while the receiver is taking lines. Room comes
/// every batch the relay thread sends, so this is only reached when the relay thread made none for that long:
/// 50 ms was reached by a relay thread that was merely not scheduled on a loaded two-core machine, or by a
/// receiver's short pause, and lost lines (one in a million in the relay bench under perf) although the receiver
/// kept up. A receiver that is stuck is found by the write timeout (2 s), after which nobody waits.
const PUSH_WAIT: Duration = Duration::from_millis(500);
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("starting the syslog relay thread")]
    Spawn {
        #[source]
        source: std::io::Error,
    },
}

/// What the relay has done so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// Lines written to the receiver (drop reports included).
    pub sent: u64,
    /// Records lost: pushed out of a full queue, sent after `flush`, or still queued when `flush` gave up.
    pub dropped: u64,
    /// Records waiting.
    pub queued: usize,
    /// Connections opened after a failed attempt or a lost connection.
    pub reconnects: u64,
    /// Whether a connection is open and its last write succeeded.
    pub connected: bool,
    /// The last transport error, with its causes.
    pub last_error: Option<String>,
}

/// Relays log records to the configured syslog receivers without ever blocking the caller.
#[derive(Debug)]
pub struct SyslogRelay {
    receivers: Vec<Receiver>,
}

/// One receiver's queue, status and thread.
#[derive(Debug)]
struct Receiver {
    target: String,
    queue: Arc<Queue>,
    status: Arc<Status>,
    worker: Mutex<Option<JoinHandle<bool>>>,
}

/// Written by the relay thread, read by `stats`.
#[derive(Debug, Default)]
struct Status {
    sent: AtomicU64,
    reconnects: AtomicU64,
    connected: AtomicBool,
    last_error: Mutex<Option<String>>,
}

impl SyslogRelay {
    /// Starts one relay thread per receiver in `config.targets`; `None` when there is none. `hostname` goes into
    /// every line.
    pub fn start(config: &SyslogConfig, hostname: String) -> Result<Option<SyslogRelay>, RelayError> {
        if config.targets.is_empty() {
            return Ok(None);
        }
        let mut receivers = Vec::with_capacity(config.targets.len());
        for destination in &config.targets {
            // A thread that cannot start leaves the ones started to `Drop`, which stops them.
            receivers.push(Receiver::start(destination, config, &hostname)?);
        }
        Ok(Some(SyslogRelay { receivers }))
    }

    /// Queues a record for every receiver. Never blocks on a receiver; when a queue is full its oldest record is
    /// dropped and counted.
    pub fn send(&self, record: Record) {
        self.fan_out(record, |queue, record| queue.push(record));
    }

    /// Like `send`, for lines read together from one of a container's streams, each a record of `app_name` with
    /// `severity` and `structured_data`, queued under one lock per receiver: while a receiver is taking lines but
    /// its queue is full, each line waits (at most 500 ms) for room instead of being dropped, so that a container
    /// printing faster than the relay sends is slowed to the receiver's pace and loses nothing; a receiver that is
    /// away makes nobody wait, and one that is stuck only until the relay's write to it times out (2 s).
    pub fn send_lines_waiting(
        &self,
        app_name: &str,
        severity: Severity,
        structured_data: Option<Arc<str>>,
        lines: &LogLines,
    ) {
        let app_name: Arc<str> = Arc::from(app_name);
        for receiver in &self.receivers {
            let records = lines.iter().map(|line| Record {
                app_name: Arc::clone(&app_name),
                severity,
                message: truncated(line.line, MESSAGE_MAX).to_owned(),
                timestamp: line.time,
                facility: None,
                structured_data: structured_data.clone(),
            });
            receiver.queue.push_all_waiting(records, PUSH_WAIT);
        }
    }

    /// Cuts `record` to [`MESSAGE_MAX`] and hands it to every receiver's queue with `push`.
    fn fan_out(&self, mut record: Record, push: impl Fn(&Queue, Record)) {
        if record.message.len() > MESSAGE_MAX {
            let keep = truncated(&record.message, MESSAGE_MAX).len();
            record.message.truncate(keep);
            record.message.shrink_to_fit();
        }
        if let Some((last, others)) = self.receivers.split_last() {
            for receiver in others {
                push(&receiver.queue, record.clone());
            }
            push(&last.queue, record);
        }
    }

    /// All receivers together: counts summed, connected only when every one is, the first error.
    pub fn stats(&self) -> RelayStats {
        let mut total = RelayStats { connected: true, ..RelayStats::default() };
        for (_, stats) in self.receiver_stats() {
            total.sent += stats.sent;
            total.dropped += stats.dropped;
            total.queued += stats.queued;
            total.reconnects += stats.reconnects;
            total.connected &= stats.connected;
            total.last_error = total.last_error.or(stats.last_error);
        }
        total
    }

    /// Each receiver as the config names it (`tls://logs.example.com:6514`), with its own counts.
    pub fn receiver_stats(&self) -> Vec<(String, RelayStats)> {
        self.receivers.iter().map(|receiver| (receiver.target.clone(), receiver.stats())).collect()
    }

    /// Stops taking records, sends what is queued for up to `timeout` (plus at most one connect or write timeout,
    /// 2 s; the receivers in parallel), and ends the relay threads. Returns whether everything was sent; what was
    /// not is counted as dropped. Later calls return false at once.
    pub fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        for receiver in &self.receivers {
            receiver.queue.close(deadline);
        }
        let mut all_sent = true;
        for receiver in &self.receivers {
            let handle = receiver.worker.lock().unwrap_or_else(PoisonError::into_inner).take();
            all_sent &= handle.is_some_and(|handle| handle.join().unwrap_or(false));
        }
        all_sent
    }
}

impl Receiver {
    fn start(destination: &SyslogDestination, config: &SyslogConfig, hostname: &str) -> Result<Receiver, RelayError> {
        let queue = Arc::new(Queue::new(config.queue, QUEUE_MAX_BYTES));
        let status = Arc::new(Status::default());
        let worker = Worker {
            formatter: Formatter::new(destination, config.facility, hostname),
            target: destination.target.clone(),
            trust: TlsTrust::new(destination.ca.clone()),
            queue: queue.clone(),
            status: status.clone(),
        };
        let handle = std::thread::Builder::new()
            .name("keel-syslog".into())
            .spawn(move || worker.run())
            .map_err(|source| RelayError::Spawn { source })?;
        Ok(Receiver { target: describe(&destination.target), queue, status, worker: Mutex::new(Some(handle)) })
    }

    fn stats(&self) -> RelayStats {
        RelayStats {
            sent: self.status.sent.load(Ordering::Relaxed),
            dropped: self.queue.dropped(),
            queued: self.queue.len(),
            reconnects: self.status.reconnects.load(Ordering::Relaxed),
            connected: self.status.connected.load(Ordering::Relaxed),
            last_error: self.status.last_error.lock().unwrap_or_else(PoisonError::into_inner).clone(),
        }
    }
}

impl Drop for Receiver {
    /// Without a `flush`, the thread stops at its next step and the queued records are lost.
    fn drop(&mut self) {
        self.queue.close(Instant::now());
    }
}

/// The relay thread's side.
struct Worker {
    target: SyslogTarget,
    trust: TlsTrust,
    formatter: Formatter,
    queue: Arc<Queue>,
    status: Arc<Status>,
}

impl Worker {
    /// Sends until closed; returns whether everything queued was sent.
    fn run(mut self) -> bool {
        let mut transport: Option<Transport> = None;
        // Records taken from the queue for one write; a batch that could not be sent goes back to the queue's
        // front, so that the queue stays the one bound on what waits.
        let mut batch: Vec<Record> = Vec::with_capacity(BATCH_LINES);
        let mut frames = Frames::for_target(&self.target);
        let mut stamp = SecondStamp::default();
        let mut retry_at: Option<Instant> = None;
        let mut backoff = Backoff::default();
        let mut failed = false;
        loop {
            if let Some(at) = retry_at.take() {
                if self.queue.sleep_until(at) {
                    break;
                }
            }
            match self.queue.next(transport.is_some()) {
                Next::Record(record) => {
                    batch.push(record);
                    self.queue.take_more(&mut batch, BATCH_LINES);
                }
                Next::Dropped(count) => {
                    batch.push(Record::now("keel", Severity::Warning, format!("syslog relay dropped {count} messages")))
                }
                Next::Closed => return true,
            }
            frames.clear(FRAMES_KEEP);
            for record in &batch {
                frames.push(|out| self.formatter.write_line(record, &mut stamp, out));
            }
            let sent = match transport.as_mut() {
                Some(open) => open.send_all(&frames),
                None => Transport::connect(&self.target, &mut self.trust).and_then(|mut open| {
                    if std::mem::take(&mut failed) {
                        self.status.reconnects.fetch_add(1, Ordering::Relaxed);
                    }
                    let sent = open.send_all(&frames);
                    transport = Some(open);
                    sent
                }),
            };
            match sent {
                Ok(()) => {
                    self.status.sent.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    self.status.connected.store(true, Ordering::Relaxed);
                    self.queue.set_draining(true);
                    batch.clear();
                    backoff = Backoff::default();
                }
                Err(error) => {
                    *self.status.last_error.lock().unwrap_or_else(PoisonError::into_inner) = Some(error_chain(&error));
                    self.status.connected.store(false, Ordering::Relaxed);
                    self.queue.set_draining(false);
                    self.queue.put_back(&mut batch);
                    transport = None;
                    failed = true;
                    retry_at = Some(Instant::now() + backoff.next_delay());
                }
            }
            if self.queue.expired() {
                break;
            }
        }
        self.queue.abandon(0);
        self.status.connected.store(false, Ordering::Relaxed);
        self.queue.set_draining(false);
        false
    }
}

/// 100 ms, doubling up to 10 s; a fresh one after each success.
#[derive(Debug)]
struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff { next: BACKOFF_FIRST }
    }
}

impl Backoff {
    fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(BACKOFF_MAX);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_ten_seconds() {
        let mut backoff = Backoff::default();
        let delays: Vec<u64> = (0..10).map(|_| backoff.next_delay().as_millis() as u64).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000, 10_000]);
    }

    fn unix(path: &str) -> SyslogDestination {
        SyslogDestination::new(SyslogTarget::Unix(path.into()))
    }

    #[test]
    fn no_target_means_no_relay() {
        assert!(SyslogRelay::start(&SyslogConfig::default(), "h".into()).unwrap().is_none());
    }

    #[test]
    fn gives_up_at_the_flush_deadline_and_counts_what_was_left() {
        let config = SyslogConfig { targets: vec![unix("/nonexistent/log.sock")], ..Default::default() };
        let relay = SyslogRelay::start(&config, "h".into()).unwrap().unwrap();
        relay.send(Record::now("app", Severity::Notice, "x".repeat(1 << 20)));
        assert!(!relay.flush(Duration::ZERO));
        assert_eq!(relay.stats().dropped, 1);
    }
}
