//! The router as PID 1 uses it: a console nobody drains never blocks a caller (lines are dropped, counted and the
//! count reported once the console drains), and the syslog relay, a real rsyslogd, can be replaced by another
//! while lines flow, keel's and containers' alike.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::File;
use std::io::Read;
use std::time::{Duration, Instant, SystemTime};

use keel_config::{Facility, SyslogConfig, SyslogDestination, SyslogTarget};
use keel_fixtures::rsyslog::Rsyslog;
use keel_logs::syslog::SyslogRelay;
use keel_logs::{Console, LogRecord, LogRouter, LogSink, LogStream};

#[test]
fn a_console_nobody_reads_never_blocks_the_callers_and_drops_are_counted_and_reported() {
    let (mut read_end, write_end) = nix::unistd::pipe().map(|(r, w)| (File::from(r), File::from(w))).unwrap();
    let router = LogRouter::new(Console::start(write_end), true);
    let started = Instant::now();
    for n in 0..5_000 {
        router.keel(log::Level::Info, format!("keel line {n} {}", "x".repeat(100)));
        let line = format!("container line {n} {}", "y".repeat(100));
        router.record("web", &LogRecord { stream: LogStream::Stdout, time: SystemTime::now(), line, partial: false });
    }
    let took = started.elapsed();
    let dropped = router.console_dropped();
    eprintln!("10,000 lines logged in {took:?} with the console stalled; {dropped} dropped");
    // The pipe holds 64 KiB and nobody reads it: a synchronous console would block on the first few hundred lines.
    assert!(took < Duration::from_secs(5), "logging 10,000 lines took {took:?}");
    assert!(dropped > 0);
    assert!(!router.flush_console(Duration::from_millis(100)), "a stalled console cannot have been flushed");

    // Once the console drains, what was queued comes out in order and the drops are reported.
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        read_end.read_to_string(&mut text).unwrap();
        text
    });
    assert!(router.flush_console(Duration::from_secs(30)));
    drop(router);
    let text = reader.join().unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("keel: keel line 0 "), "{:?}", lines[0]);
    assert!(lines[1].starts_with("web | container line 0 "), "{:?}", lines[1]);
    let reported: u64 = lines
        .iter()
        .filter_map(|line| line.strip_prefix("keel: console dropped ")?.strip_suffix(" lines")?.parse::<u64>().ok())
        .sum();
    assert_eq!(
        reported,
        dropped,
        "the drop reports in:\n{}",
        lines.iter().rev().take(5).cloned().collect::<Vec<_>>().join("\n")
    );
    assert_eq!(
        lines.len() as u64 + dropped,
        10_000 + lines.iter().filter(|l| l.starts_with("keel: console dropped")).count() as u64
    );
}

fn relay(rsyslog: &Rsyslog) -> SyslogRelay {
    let target = SyslogTarget::Tcp { host: "127.0.0.1".into(), port: rsyslog.port };
    let config = SyslogConfig { targets: vec![SyslogDestination::new(target)], facility: Facility(3), queue: 1000 };
    SyslogRelay::start(&config, "keel-test".into()).unwrap().expect("a target was configured")
}

fn container_line(router: &LogRouter, container: &str, stream: LogStream, line: &str) {
    router.record(container, &LogRecord { stream, time: SystemTime::now(), line: line.to_owned(), partial: false });
}

#[test]
fn a_new_config_generation_replaces_the_relay_while_lines_flow() {
    let (first_dir, second_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (first, second) = (Rsyslog::start(first_dir.path()), Rsyslog::start(second_dir.path()));
    let (_read_end, write_end) = nix::unistd::pipe().map(|(r, w)| (File::from(r), w)).unwrap();
    let router = LogRouter::new(Console::start(File::from(write_end)), true);

    router.replace_relay(Some(relay(&first)));
    router.keel(log::Level::Warn, "generation 1".into());
    container_line(&router, "web", LogStream::Stdout, "to the first");
    container_line(&router, "web", LogStream::Stderr, "an error to the first");
    let old = router.replace_relay(Some(relay(&second))).expect("the first relay");
    assert!(old.flush(Duration::from_secs(10)));
    router.keel(log::Level::Info, "generation 2".into());
    container_line(&router, "web", LogStream::Stdout, "to the second");

    assert_eq!(first.wait_for("keel", 1), ["daemon.warning keel generation 1"]);
    assert_eq!(first.wait_for("web", 2), ["daemon.info web to the first", "daemon.err web an error to the first"]);
    assert_eq!(second.wait_for("keel", 1), ["daemon.info keel generation 2"]);
    assert_eq!(second.wait_for("web", 1), ["daemon.info web to the second"]);
    assert!(router.flush_relay(Duration::from_secs(10)));
    assert!(first.lines().iter().all(|line| !line.contains("second") && !line.contains("generation 2")));
    assert!(router.replace_relay(None).is_some());
}
