//! Reads the kernel's log records as `/dev/kmsg` hands them out, one record per `read`, and turns each into a
//! syslog [`Record`] with the kernel's own facility and severity and APP-NAME `kernel`.
//!
//! A record is `PRIORITY,SEQUENCE,MICROSECONDS,FLAGS[,…];MESSAGE\n` followed by optional ` KEY=value` lines. The
//! kernel has already escaped every byte of the message that is not printable (`\xNN`), so the text is relayed
//! as it is. The time is microseconds of the monotonic clock since boot; [`BootClock`] turns it into wall time.

use std::time::{Duration, SystemTime};

use keel_config::Facility;

use crate::syslog::{Record, Severity};

/// The APP-NAME of kernel records, as rsyslog's `imklog` and journald name them.
pub const KERNEL_APP_NAME: &str = "kernel";
/// The kernel never hands out a record longer than this (`CONSOLE_EXT_LOG_MAX`); a read into a smaller buffer
/// fails with `EINVAL`.
pub const RECORD_MAX: usize = 8192;

/// One record of the kernel's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelRecord {
    pub facility: Facility,
    pub severity: Severity,
    /// The kernel's sequence number: a gap means records were overwritten before they were read.
    pub sequence: u64,
    /// When it was logged, on the monotonic clock.
    pub since_boot: Duration,
    pub message: String,
}

/// Why a record could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("kernel log record {prefix:?} is not `priority,sequence,microseconds,flags;message`")]
pub struct KmsgFormatError {
    /// The start of the record, for the log line.
    pub prefix: String,
}

/// Parses one record as one `read` of `/dev/kmsg` returned it.
pub fn parse(bytes: &[u8]) -> Result<KernelRecord, KmsgFormatError> {
    let text = String::from_utf8_lossy(bytes);
    let malformed = || KmsgFormatError { prefix: text.chars().take(40).collect() };
    let (prefix, rest) = text.split_once(';').ok_or_else(malformed)?;
    let mut fields = prefix.split(',');
    let mut number = || fields.next().and_then(|field| field.parse::<u64>().ok());
    let (priority, sequence, micros) = match (number(), number(), number()) {
        (Some(priority), Some(sequence), Some(micros)) => (priority, sequence, micros),
        _ => return Err(malformed()),
    };
    let facility = u8::try_from(priority >> 3).ok().filter(|facility| *facility <= 23).ok_or_else(malformed)?;
    // The message ends at the first newline; the lines after it are the record's dictionary.
    let message = rest.split('\n').next().unwrap_or_default().to_owned();
    Ok(KernelRecord {
        facility: Facility(facility),
        severity: severity(priority & 7),
        sequence,
        since_boot: Duration::from_micros(micros),
        message,
    })
}

fn severity(level: u64) -> Severity {
    match level {
        0 => Severity::Emergency,
        1 => Severity::Alert,
        2 => Severity::Critical,
        3 => Severity::Error,
        4 => Severity::Warning,
        5 => Severity::Notice,
        6 => Severity::Informational,
        _ => Severity::Debug,
    }
}

/// Wall-clock time of a moment given on the monotonic clock: the boot's wall time read once, so that every record
/// of one reader is placed on the same line.
#[derive(Debug, Clone, Copy)]
pub struct BootClock {
    booted_at: SystemTime,
}

impl BootClock {
    /// Reads both clocks now.
    pub fn now() -> BootClock {
        let since_boot =
            nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).map(Duration::from).unwrap_or_default();
        BootClock::at(SystemTime::now(), since_boot)
    }

    /// The clock for a wall time `now` taken `since_boot` after boot.
    pub fn at(now: SystemTime, since_boot: Duration) -> BootClock {
        BootClock { booted_at: now.checked_sub(since_boot).unwrap_or(SystemTime::UNIX_EPOCH) }
    }

    /// `record` as a syslog record in its own facility.
    pub fn record(&self, record: KernelRecord) -> Record {
        Record {
            app_name: KERNEL_APP_NAME.into(),
            severity: record.severity,
            message: record.message,
            timestamp: self.booted_at + record.since_boot,
            facility: Some(record.facility),
            structured_data: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn reads_priority_sequence_time_and_message() {
        let record = parse(b"3,1042,5123456,-;Memory cgroup out of memory: Killed process 312 (sh)\n").unwrap();
        assert_eq!(record.facility, Facility(0));
        assert_eq!(record.severity, Severity::Error);
        assert_eq!(record.sequence, 1042);
        assert_eq!(record.since_boot, Duration::from_micros(5_123_456));
        assert_eq!(record.message, "Memory cgroup out of memory: Killed process 312 (sh)");
    }

    #[test]
    fn keeps_a_userspace_facility_and_drops_the_dictionary() {
        let record = parse(b"14,7,100,c,extra;hello \\x1b[0m\n SUBSYSTEM=net\n DEVICE=n2\n").unwrap();
        assert_eq!((record.facility, record.severity), (Facility(1), Severity::Informational));
        assert_eq!(record.message, "hello \\x1b[0m");
    }

    #[test]
    fn refuses_what_is_not_a_record() {
        for bad in [&b"no separator"[..], b"x,1,2,-;m", b"6,1;m", b"", b"1000,1,2,-;facility 125"] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn places_records_on_the_wall_clock_of_the_boot() {
        let clock = BootClock::at(UNIX_EPOCH + Duration::from_secs(1000), Duration::from_secs(100));
        let record = clock.record(parse(b"6,1,2500000,-;up\n").unwrap());
        assert_eq!(record.timestamp, UNIX_EPOCH + Duration::from_millis(902_500));
        assert_eq!((&*record.app_name, record.facility), ("kernel", Some(Facility(0))));
    }
}
