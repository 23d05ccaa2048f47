//! The relay's receivers beyond plain TCP and UDP, against a real rsyslogd: TLS (RFC 5425) with a CA given in the
//! config, a receiver whose certificate does not chain to it, the RFC 3164 form for old receivers, and several
//! receivers at once where one is away.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::time::{Duration, Instant};

use keel_config::{CaSource, Facility, SyslogConfig, SyslogDestination, SyslogFormat, SyslogTarget};
use keel_fixtures::rsyslog::Rsyslog;
use keel_logs::syslog::{Record, Severity, SyslogRelay};

const LOCAL3: Facility = Facility(19);

fn relay(targets: Vec<SyslogDestination>) -> SyslogRelay {
    let config = SyslogConfig { targets, facility: LOCAL3, queue: 100 };
    SyslogRelay::start(&config, "keel-test".into()).unwrap().expect("targets were configured")
}

fn tls(rsyslog: &Rsyslog, host: &str, ca: Option<CaSource>) -> SyslogDestination {
    let port = rsyslog.tls_port.expect("rsyslog listens on TLS");
    SyslogDestination { ca, ..SyslogDestination::new(SyslogTarget::Tls { host: host.into(), port }) }
}

fn send_numbered(relay: &SyslogRelay, app: &str, count: usize) {
    for n in 0..count {
        relay.send(Record::now(app, Severity::Notice, format!("line {n}")));
    }
}

fn numbered(app: &str, count: usize) -> Vec<String> {
    (0..count).map(|n| format!("local3.notice {app} line {n}")).collect()
}

#[test]
fn tls_delivers_in_order_to_a_receiver_whose_certificate_chains_to_the_configured_ca() {
    let dir = tempfile::tempdir().unwrap();
    let rsyslog = Rsyslog::start_with_tls(dir.path());
    let relay = relay(vec![tls(&rsyslog, "localhost", Some(CaSource::Pem(rsyslog.ca_pem())))]);
    send_numbered(&relay, "secure", 20);
    assert_eq!(rsyslog.wait_for("secure", 20), numbered("secure", 20));
    assert!(relay.flush(Duration::from_secs(5)));
    let stats = relay.stats();
    assert_eq!((stats.sent, stats.dropped), (20, 0), "{stats:?}");
}

#[test]
fn tls_with_the_ca_in_a_file_names_the_receiver_by_its_address_too() {
    let dir = tempfile::tempdir().unwrap();
    let rsyslog = Rsyslog::start_with_tls(dir.path());
    let ca_file = dir.path().join("given-ca.pem");
    std::fs::write(&ca_file, rsyslog.ca_pem()).unwrap();
    let relay = relay(vec![tls(&rsyslog, "127.0.0.1", Some(CaSource::File(ca_file)))]);
    send_numbered(&relay, "by-ip", 3);
    assert_eq!(rsyslog.wait_for("by-ip", 3), numbered("by-ip", 3));
}

#[test]
fn tls_sends_nothing_to_a_receiver_whose_certificate_the_ca_did_not_sign() {
    let dir = tempfile::tempdir().unwrap();
    let rsyslog = Rsyslog::start_with_tls(&dir.path().join("receiver"));
    let other_dir = dir.path().join("other");
    let other = Rsyslog::start_with_tls(&other_dir);
    // Another CA, and Mozilla's roots (the default): neither signed the test receiver's certificate.
    for ca in [Some(CaSource::Pem(other.ca_pem())), None] {
        let relay = relay(vec![tls(&rsyslog, "localhost", ca)]);
        send_numbered(&relay, "spoofed", 3);
        let deadline = Instant::now() + Duration::from_secs(20);
        let stats = loop {
            let stats = relay.stats();
            if stats.last_error.is_some() || Instant::now() > deadline {
                break stats;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let error = stats.last_error.clone().unwrap_or_default();
        assert!(error.contains("tls://localhost") && error.contains("certificate"), "{stats:?}");
        assert!(!stats.connected && stats.sent == 0, "{stats:?}");
        assert!(!relay.flush(Duration::from_millis(200)));
    }
    assert!(rsyslog.lines().iter().all(|line| !line.contains("spoofed")), "{:?}", rsyslog.lines());
}

#[test]
fn rfc3164_reaches_an_old_style_receiver_with_app_name_and_severity() {
    let dir = tempfile::tempdir().unwrap();
    let rsyslog = Rsyslog::start(dir.path());
    let udp = SyslogTarget::Udp { host: "127.0.0.1".into(), port: rsyslog.port };
    let relay = relay(vec![SyslogDestination { format: SyslogFormat::Rfc3164, ..SyslogDestination::new(udp) }]);
    relay.send(Record::now("web-1", Severity::Error, "boom"));
    relay.send(Record::now("web-1", Severity::Informational, "second line"));
    // The BSD form leaves the space after `TAG:` in rsyslog's %msg%.
    assert_eq!(rsyslog.wait_for("web-1", 2), ["local3.err web-1  boom", "local3.info web-1  second line"]);
}

#[test]
fn several_receivers_each_get_every_line_and_one_away_holds_back_none() {
    let dir = tempfile::tempdir().unwrap();
    let first = Rsyslog::start(&dir.path().join("first"));
    let second = Rsyslog::start_with_tls(&dir.path().join("second"));
    // A port nobody listens on.
    let away = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let relay = relay(vec![
        SyslogDestination::new(SyslogTarget::Tcp { host: "127.0.0.1".into(), port: first.port }),
        SyslogDestination::new(SyslogTarget::Tcp { host: "127.0.0.1".into(), port: away }),
        tls(&second, "localhost", Some(CaSource::Pem(second.ca_pem()))),
    ]);
    send_numbered(&relay, "fan", 10);
    assert_eq!(first.wait_for("fan", 10), numbered("fan", 10));
    assert_eq!(second.wait_for("fan", 10), numbered("fan", 10));
    let receivers = relay.receiver_stats();
    let targets: Vec<&str> = receivers.iter().map(|(target, _)| target.as_str()).collect();
    assert_eq!(
        targets,
        [
            format!("tcp://127.0.0.1:{}", first.port),
            format!("tcp://127.0.0.1:{away}"),
            format!("tls://localhost:{}", second.tls_port.unwrap())
        ]
    );
    let (_, away_stats) = &receivers[1];
    assert!(!away_stats.connected && away_stats.sent == 0 && away_stats.queued >= 9, "{away_stats:?}");
    let total = relay.stats();
    assert!(!total.connected && total.sent == 20, "{total:?}");
}
