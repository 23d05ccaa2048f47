//! `keel supervise` has no root slots: its API refuses an update and a rollback with 409 and says why, and its
//! status reports no slot, an untracked boot and no install.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use keel_fixtures::containers::{wait_for, TestHost};
use keel_fixtures::supervise::KeelSupervise;

const CACHE: &str = env!("CARGO_TARGET_TMPDIR");
const KEEL: &str = env!("CARGO_BIN_EXE_keel");

/// Sends `request` and returns the whole answer (the server closes after it: `Connection: close`).
fn exchange(socket: &Path, method: &str, path: &str, body: &str) -> String {
    let mut stream = UnixStream::connect(socket).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: keel\r\nConnection: close\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn keel_supervise_refuses_updates_and_rollbacks_and_reports_no_slot() {
    let host = TestHost::new(Path::new(CACHE));
    let supervise = KeelSupervise::start(Path::new(KEEL), &host, "");
    let socket = supervise.socket.clone();
    let status = wait_for("the API", Duration::from_secs(60), || {
        let answer = exchange(&socket, "GET", "/keel/v1/status", "");
        answer.starts_with("HTTP/1.1 200").then_some(answer)
    });
    let body = status.split("\r\n\r\n").nth(1).unwrap();
    let status: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(status["slot"], serde_json::Value::Null, "{status}");
    assert_eq!(status["boot"], serde_json::json!({"state": "untracked", "rollback": null}), "{status}");
    assert_eq!(status["update"], serde_json::Value::Null, "{status}");

    let answer = exchange(&socket, "POST", "/keel/v1/update", r#"{"source": "http://127.0.0.1:1/b.bundle"}"#);
    assert!(answer.starts_with("HTTP/1.1 409") && answer.contains("no root slots"), "{answer}");
    let answer = exchange(&socket, "POST", "/keel/v1/rollback", "");
    assert!(answer.starts_with("HTTP/1.1 409") && answer.contains("no root slots"), "{answer}");
}
