//! `keel supervise` has no root slots: its API refuses an update and a rollback with 409 and says why, and its
//! status reports no slot, an untracked boot and no install. A second `keel supervise` on the same state dir or
//! cgroup root is refused, naming it.
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

/// `keel supervise` with no containers on `state_dir` and `cgroup_root`: its exit code and stderr once it exits,
/// or `None` when it still ran after 60 s (then it is killed).
fn second_supervise(host: &TestHost, state_dir: &Path, cgroup_root: &Path) -> (Option<i32>, String) {
    let config = host.temp.path().join("second.toml");
    std::fs::write(&config, "").unwrap();
    let stderr_path = host.temp.path().join("second.stderr");
    let mut child = std::process::Command::new(KEEL)
        .arg("supervise")
        .arg("--config")
        .arg(&config)
        .arg("--state-dir")
        .arg(state_dir)
        .arg("--cgroup-root")
        .arg(cgroup_root)
        .arg("--api-socket")
        .arg(host.temp.path().join("second.sock"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    (code, std::fs::read_to_string(&stderr_path).unwrap())
}

#[test]
fn a_second_keel_supervise_on_the_same_state_dir_or_cgroup_root_is_refused() {
    let host = TestHost::new(Path::new(CACHE));
    let Some(cgroup_root) = host.cgroup_root() else { return };
    let first = KeelSupervise::start(Path::new(KEEL), &host, "");
    let other_cgroup = host.temp.path().join("not-a-cgroup");
    let (code, stderr) = second_supervise(&host, &host.state_dir, &other_cgroup);
    assert_eq!(code, Some(111), "{stderr}");
    let expected = format!("the state dir {} is in use by another keel supervise", host.state_dir.display());
    assert!(stderr.contains(&expected), "{stderr}");

    let other_state = host.temp.path().join("other-state");
    let (code, stderr) = second_supervise(&host, &other_state, &cgroup_root);
    assert_eq!(code, Some(111), "{stderr}");
    let expected = format!("the cgroup root {}/keel is in use by another keel supervise", cgroup_root.display());
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(!host.temp.path().join("second.sock").exists(), "the refused one started its API");
    // The first one kept running and answering.
    assert!(exchange(&first.socket, "GET", "/_ping", "").ends_with("OK"));
}
