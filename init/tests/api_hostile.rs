//! Hostile clients of `keel supervise`'s API socket, written as the attack: a 1 MiB header, a request line that is
//! not HTTP, unknown endpoints and ids, more connections than the server serves at once, and a follower that goes
//! away mid-stream. Each gets a proper error or is dropped, and the server keeps answering the next client.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use keel_fixtures::containers::{wait_for, TestHost, BUSYBOX};
use keel_fixtures::supervise::KeelSupervise;

const CACHE: &str = env!("CARGO_TARGET_TMPDIR");
const KEEL: &str = env!("CARGO_BIN_EXE_keel");

/// Sends `request` and returns what the server answered before closing (or within 10 s).
fn exchange(socket: &Path, request: &[u8]) -> String {
    let mut stream = UnixStream::connect(socket).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // The server may close before taking all of a huge request: what it answered still counts.
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

fn get(socket: &Path, path: &str) -> String {
    exchange(socket, format!("GET {path} HTTP/1.1\r\nHost: keel\r\nConnection: close\r\n\r\n").as_bytes())
}

/// VmRSS of `pid` in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|line| line.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn hostile_requests_get_errors_and_the_server_keeps_serving() {
    let host = TestHost::new(Path::new(CACHE));
    let config = format!(
        "[containers.chatty]\nimage = \"{BUSYBOX}\"\n\
         command = [\"sh\", \"-c\", \"while true; do echo chatter; sleep 0.05; done\"]\n"
    );
    let supervise = KeelSupervise::start(Path::new(KEEL), &host, &config);
    let socket = supervise.socket.clone();
    wait_for("chatty running", Duration::from_secs(60), || {
        get(&socket, "/containers/json").contains("\"/chatty\"").then_some(())
    });
    let rss_before = rss_kib(supervise.child.id());

    // 1 MiB of header: refused (431) without being read whole.
    let huge = format!("GET /_ping HTTP/1.1\r\nHost: keel\r\nX-Junk: {}\r\n\r\n", "a".repeat(1 << 20));
    let answer = exchange(&socket, huge.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 431"), "a 1 MiB header got: {:?}", &answer[..answer.len().min(200)]);

    // Not HTTP at all: 400.
    let answer = exchange(&socket, b"\x16\x03\x01 hello, this is not http\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 400"), "garbage got: {answer:?}");

    // Unknown endpoints and ids: Docker's JSON errors.
    let answer = get(&socket, "/v1.44/no/such/endpoint");
    assert!(answer.starts_with("HTTP/1.1 404") && answer.contains("{\"message\":\"page not found"), "{answer}");
    let answer = get(&socket, "/containers/nosuch/json");
    assert!(answer.starts_with("HTTP/1.1 404") && answer.contains("No such container: nosuch"), "{answer}");
    let answer = get(&socket, "/containers/json?filters=%7Bnot%20json");
    assert!(answer.starts_with("HTTP/1.1 400") && answer.contains("invalid filter"), "{answer}");

    // More idle connections than the server serves at once: the excess is closed at once, and once the idle ones
    // go, the next client is served.
    let idle: Vec<UnixStream> = (0..1000).map(|_| UnixStream::connect(&socket).unwrap()).collect();
    let mut closed_at_once = 0;
    for stream in &idle[300..] {
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut byte = [0u8; 1];
        if matches!((&*stream).read(&mut byte), Ok(0)) {
            closed_at_once += 1;
        }
    }
    assert!(closed_at_once >= 690, "connections beyond the limit are closed: {closed_at_once} of 700");
    drop(idle);
    let answered = wait_for("an answer after the idle connections", Duration::from_secs(30), || {
        let answer = get(&socket, "/_ping");
        answer.starts_with("HTTP/1.1 200").then_some(answer)
    });
    assert!(answered.ends_with("OK"), "{answered}");

    // Followers that go away mid-stream cost nothing once gone.
    for _ in 0..50 {
        let mut stream = UnixStream::connect(&socket).unwrap();
        stream.write_all(b"GET /containers/chatty/logs?follow=1&stdout=1 HTTP/1.1\r\nHost: keel\r\n\r\n").unwrap();
        let mut first = [0u8; 64];
        stream.read_exact(&mut first).unwrap();
    }
    std::thread::sleep(Duration::from_secs(2));
    let rss_after = rss_kib(supervise.child.id());
    eprintln!("keel supervise VmRSS: {rss_before} KiB before, {rss_after} KiB after the hostile clients");
    assert!(rss_after < rss_before + 16 * 1024, "RSS grew from {rss_before} to {rss_after} KiB");
    let started = Instant::now();
    assert!(get(&socket, "/containers/json").contains("\"/chatty\""));
    assert!(started.elapsed() < Duration::from_secs(5));
}
