//! Relays the kernel's log to syslog: one thread reads `/dev/kmsg` from the oldest record the kernel still holds
//! and hands each record to the current relay, with the kernel's facility and severity and APP-NAME `kernel`.
//!
//! Until a relay exists the thread does not read: the kernel's own ring buffer (fixed size, oldest overwritten)
//! holds what was logged before the config named a receiver, so PID 1 keeps nothing of its own. The relay's
//! queue then holds records, bounded, until the network is up and the receiver answers. Records the kernel
//! overwrote before they were read show as gaps in the sequence numbers and are counted on the console.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::time::{Duration, Instant};

use keel_logs::error_chain;
use keel_logs::kmsg::{self, BootClock, RECORD_MAX};

use crate::logger;

const KMSG: &str = "/dev/kmsg";
/// How often the thread looks for a relay while there is none.
const RELAY_POLL: Duration = Duration::from_secs(1);
/// Lost records are reported at most this often, so that a kernel flood does not become a keel flood.
const LOSS_REPORT_EVERY: Duration = Duration::from_secs(60);

/// Starts the reader thread; a failure is logged and the host runs without its kernel log relayed.
pub fn start() {
    let file = match File::open(KMSG) {
        Ok(file) => file,
        Err(error) => {
            log::error!("cannot open {KMSG}; kernel messages are not relayed: {}", error_chain(&error));
            return;
        }
    };
    if let Err(error) = std::thread::Builder::new().name("keel-kmsg".into()).spawn(move || relay_kernel_log(file)) {
        log::error!("cannot start the kernel log reader: {}", error_chain(&error));
    }
}

fn relay_kernel_log(mut file: File) {
    let clock = BootClock::now();
    let mut buffer = vec![0; RECORD_MAX];
    let mut losses = Losses::default();
    loop {
        while logger::router().relay().is_none() {
            std::thread::sleep(RELAY_POLL);
        }
        let length = match file.read(&mut buffer) {
            Ok(0) => return,
            Ok(length) => length,
            // The ring overwrote the record this reader was at; the next read goes on at the oldest one left.
            Err(error) if error.raw_os_error() == Some(libc::EPIPE) => continue,
            Err(error) if error.kind() == ErrorKind::Interrupted => continue,
            Err(error) => {
                log::error!("reading {KMSG}; kernel messages are no longer relayed: {}", error_chain(&error));
                return;
            }
        };
        let record = match kmsg::parse(&buffer[..length]) {
            Ok(record) => record,
            Err(error) => {
                log::warn!("{error}");
                continue;
            }
        };
        losses.saw(record.sequence);
        if let Some(relay) = logger::router().relay() {
            relay.send(clock.record(record));
        }
        if let Some(lost) = losses.report_due(Instant::now()) {
            log::warn!("{lost} kernel log records were overwritten before they could be relayed");
        }
    }
}

/// Gaps in the kernel's sequence numbers: records overwritten before they were read.
#[derive(Debug, Default)]
struct Losses {
    next_sequence: Option<u64>,
    unreported: u64,
    last_report: Option<Instant>,
}

impl Losses {
    fn saw(&mut self, sequence: u64) {
        if let Some(expected) = self.next_sequence {
            self.unreported += sequence.saturating_sub(expected);
        }
        self.next_sequence = Some(sequence + 1);
    }

    /// The count to report now, if any and the last report is old enough.
    fn report_due(&mut self, now: Instant) -> Option<u64> {
        let quiet = self.last_report.is_none_or(|last| now.duration_since(last) >= LOSS_REPORT_EVERY);
        if self.unreported == 0 || !quiet {
            return None;
        }
        self.last_report = Some(now);
        Some(std::mem::take(&mut self.unreported))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_sequence_gaps_and_reports_them_at_most_once_a_minute() {
        let mut losses = Losses::default();
        let start = Instant::now();
        losses.saw(10);
        losses.saw(11);
        assert_eq!(losses.report_due(start), None);
        losses.saw(15);
        assert_eq!(losses.report_due(start), Some(3));
        losses.saw(20);
        assert_eq!(losses.report_due(start + Duration::from_secs(30)), None);
        assert_eq!(losses.report_due(start + LOSS_REPORT_EVERY), Some(4));
    }
}
