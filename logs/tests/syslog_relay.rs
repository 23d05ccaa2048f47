//! The syslog relay against a real rsyslogd: delivery over TCP, UDP and a unix socket, reconnects when the
//! receiver comes (back), and a full queue that drops, counts and reports without blocking the caller.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use keel_config::{Facility, SyslogConfig, SyslogDestination, SyslogTarget};
use keel_fixtures::rsyslog::Rsyslog;
use keel_logs::syslog::{Record, Severity, SyslogRelay};

const LOCAL3: Facility = Facility(19);
const DAEMON: Facility = Facility(3);

fn relay(target: SyslogTarget, facility: Facility, queue: usize) -> SyslogRelay {
    let config = SyslogConfig { targets: vec![SyslogDestination::new(target)], facility, queue };
    SyslogRelay::start(&config, "keel-test".into()).unwrap().expect("a target was configured")
}

fn tcp(rsyslog: &Rsyslog) -> SyslogTarget {
    SyslogTarget::Tcp { host: "127.0.0.1".into(), port: rsyslog.port }
}

fn send_numbered(relay: &SyslogRelay, app: &str, range: std::ops::Range<usize>) {
    for n in range {
        relay.send(Record::now(app, Severity::Notice, format!("line {n}")));
    }
}

fn numbered(app: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|n| format!("local3.notice {app} line {n}")).collect()
}

#[test]
fn tcp_delivers_in_order_with_app_name_facility_and_severity() {
    let dir = tempfile::tempdir().unwrap();
    let rsyslog = Rsyslog::start(dir.path());
    let relay = relay(tcp(&rsyslog), LOCAL3, 100);
    let sent = [
        (Severity::Emergency, "first"),
        (Severity::Error, "second: with a colon"),
        (Severity::Warning, "third\n"),
        (Severity::Notice, "fourth"),
        (Severity::Informational, "fifth"),
        (Severity::Debug, "sixth  with  spaces"),
    ];
    for (severity, message) in sent {
        relay.send(Record::now("web-1", severity, message));
    }
    relay.send(Record::now("db", Severity::Critical, "other app"));
    assert_eq!(
        rsyslog.wait_for("web-1", 6),
        [
            "local3.emerg web-1 first",
            "local3.err web-1 second: with a colon",
            "local3.warning web-1 third",
            "local3.notice web-1 fourth",
            "local3.info web-1 fifth",
            "local3.debug web-1 sixth  with  spaces",
        ]
    );
    assert_eq!(rsyslog.wait_for("db", 1), ["local3.crit db other app"]);
    assert!(relay.flush(Duration::from_secs(5)));
    let stats = relay.stats();
    assert_eq!((stats.sent, stats.dropped, stats.queued, stats.reconnects), (7, 0, 0, 0), "{stats:?}");
}

#[test]
fn udp_delivers_one_datagram_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let rsyslog = Rsyslog::start(dir.path());
    let relay = relay(SyslogTarget::Udp { host: "127.0.0.1".into(), port: rsyslog.port }, DAEMON, 100);
    for n in 0..5 {
        relay.send(Record::now("udp-app", Severity::Warning, format!("datagram {n}")));
    }
    let lines = rsyslog.wait_for("udp-app", 5);
    assert_eq!(lines, (0..5).map(|n| format!("daemon.warning udp-app datagram {n}")).collect::<Vec<_>>());
    assert!(relay.flush(Duration::from_secs(5)));
    assert!(relay.stats().connected);
}

#[test]
fn unix_socket_delivers_one_datagram_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let rsyslog = Rsyslog::start(dir.path());
    let relay = relay(SyslogTarget::Unix(rsyslog.socket_path()), LOCAL3, 100);
    for n in 0..5 {
        relay.send(Record::now("unix-app", Severity::Error, format!("local {n}")));
    }
    // The BSD local form leaves the space after `TAG:` in rsyslog's %msg%.
    let lines = rsyslog.wait_for("unix-app", 5);
    assert_eq!(lines, (0..5).map(|n| format!("local3.err unix-app  local {n}")).collect::<Vec<_>>());
    assert!(relay.flush(Duration::from_secs(5)));
}

#[test]
fn queues_until_the_receiver_starts() {
    let dir = tempfile::tempdir().unwrap();
    let mut rsyslog = Rsyslog::configure(dir.path());
    let relay = relay(tcp(&rsyslog), LOCAL3, 100);
    send_numbered(&relay, "early", 0..20);
    std::thread::sleep(Duration::from_millis(300));
    let stats = relay.stats();
    assert!(!stats.connected && stats.sent == 0, "{stats:?}");
    assert!(stats.last_error.as_deref().unwrap_or_default().contains("connecting to tcp://127.0.0.1"), "{stats:?}");

    rsyslog.launch();
    assert_eq!(rsyslog.wait_for("early", 20), numbered("early", 0..20));
    let stats = relay.stats();
    assert!(stats.connected && stats.reconnects == 1 && stats.dropped == 0, "{stats:?}");
}

#[test]
fn reconnects_when_the_receiver_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut rsyslog = Rsyslog::start(dir.path());
    let relay = relay(tcp(&rsyslog), LOCAL3, 100);
    send_numbered(&relay, "before", 0..5);
    assert_eq!(rsyslog.wait_for("before", 5), numbered("before", 0..5));

    rsyslog.kill();
    rsyslog.launch();
    send_numbered(&relay, "after", 0..5);
    assert_eq!(rsyslog.wait_for("after", 5), numbered("after", 0..5));

    // Down for a while this time, with lines sent into the gap: they wait in the queue.
    rsyslog.kill();
    send_numbered(&relay, "gap", 0..5);
    std::thread::sleep(Duration::from_millis(500));
    rsyslog.launch();
    assert_eq!(rsyslog.wait_for("gap", 5), numbered("gap", 0..5));
    let stats = relay.stats();
    assert!(stats.reconnects >= 2 && stats.dropped == 0 && stats.connected, "{stats:?}");
}

#[test]
fn a_full_queue_drops_without_blocking_and_reports_the_count_once_connected() {
    let dir = tempfile::tempdir().unwrap();
    let mut rsyslog = Rsyslog::configure(dir.path());
    let bound = 10;
    let relay = relay(tcp(&rsyslog), LOCAL3, bound);

    let started = Instant::now();
    send_numbered(&relay, "flood", 0..10_000);
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(1), "10 000 sends took {elapsed:?}");
    let stats = relay.stats();
    assert!(stats.queued <= bound, "{stats:?}");
    // The relay thread may hold one record of its own while it retries.
    assert!(stats.dropped >= (10_000 - bound - 1) as u64, "{stats:?}");
    let dropped = stats.dropped;

    rsyslog.launch();
    let report = rsyslog.wait_for("keel", 1);
    assert_eq!(report, [format!("local3.warning keel syslog relay dropped {dropped} messages")]);
    // The newest records survived, in order (plus possibly the one the thread held from the start).
    let flood = rsyslog.wait_for("flood", bound);
    assert!(flood.ends_with(&numbered("flood", 10_000 - bound..10_000)), "{flood:?}");
    assert!(flood.len() <= bound + 1, "{flood:?}");
    assert!(relay.flush(Duration::from_secs(5)));
    let stats = relay.stats();
    assert_eq!(stats.dropped, dropped, "{stats:?}");
    assert_eq!(stats.sent, flood.len() as u64 + 1, "{stats:?}");
}

#[test]
fn flush_gives_up_at_its_deadline_when_nobody_listens() {
    let dir = tempfile::tempdir().unwrap();
    let rsyslog = Rsyslog::configure(dir.path());
    let relay = relay(tcp(&rsyslog), LOCAL3, 100);
    send_numbered(&relay, "lost", 0..3);
    let started = Instant::now();
    assert!(!relay.flush(Duration::from_millis(500)));
    assert!(started.elapsed() < Duration::from_secs(5), "flush took {:?}", started.elapsed());
    relay.send(Record::now("late", Severity::Notice, "after flush"));
    let stats = relay.stats();
    assert_eq!((stats.sent, stats.dropped, stats.queued), (0, 4, 0), "{stats:?}");
}
