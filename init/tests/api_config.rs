//! keel's own endpoints against `keel supervise`: `PUT /keel/v1/config` that changes one container restarts that
//! one only; an invalid body changes nothing and gets every error with its line and column; POST validates;
//! status shows the generation; a body over the bound is refused unread; reboot and poweroff are refused (409)
//! where there is no host of keel's to take down; status carries the syslog relay's counters.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use keel_fixtures::containers::{wait_for, TestHost, BUSYBOX};
use keel_fixtures::rsyslog::Rsyslog;
use keel_fixtures::supervise::{api_request, KeelSupervise};
use serde_json::Value;

const CACHE: &str = env!("CARGO_TARGET_TMPDIR");
const KEEL: &str = env!("CARGO_BIN_EXE_keel");

fn config(syslog_port: u16, steady_command: &str, changing_command: &str) -> String {
    format!(
        "[syslog]\ntarget = \"tcp://127.0.0.1:{syslog_port}\"\n\n[containers.steady]\nimage = \"{BUSYBOX}\"\ncommand = [\"sh\", \"-c\", \"{steady_command}\"]\n\n\
         [containers.changing]\nimage = \"{BUSYBOX}\"\ncommand = [\"sh\", \"-c\", \"{changing_command}\"]\n"
    )
}

/// Now as Unix seconds with a fraction, as `since` and `until` take it.
fn unix_now() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    format!("{}.{:09}", now.as_secs(), now.subsec_nanos())
}

fn json_of(socket: &Path, method: &str, path: &str, body: &[u8]) -> (u16, Value) {
    let (status, body) = api_request(socket, method, path, body);
    (status, serde_json::from_str(&body).unwrap_or_else(|error| panic!("{method} {path}: {error}: {body:?}")))
}

/// (pid, StartedAt) of a running container.
fn run_of(socket: &Path, name: &str) -> (i64, String) {
    let (_, inspect) = json_of(socket, "GET", &format!("/containers/{name}/json"), b"");
    (inspect["State"]["Pid"].as_i64().unwrap(), inspect["State"]["StartedAt"].as_str().unwrap().to_owned())
}

fn running(socket: &Path, name: &str) -> bool {
    let (_, inspect) = json_of(socket, "GET", &format!("/containers/{name}/json"), b"");
    inspect["State"]["Running"] == true
}

#[test]
fn a_config_put_restarts_only_what_changed_and_an_invalid_one_changes_nothing() {
    let host = TestHost::new(Path::new(CACHE));
    let rsyslog = Rsyslog::start(&host.temp.path().join("rsyslog"));
    let first = config(rsyslog.port, "sleep 100000", "sleep 100001");
    let supervise = KeelSupervise::start(Path::new(KEEL), &host, &first);
    let socket = supervise.socket.clone();
    wait_for("both running", Duration::from_secs(60), || {
        (running(&socket, "steady") && running(&socket, "changing")).then_some(())
    });
    let (steady_before, changing_before) = (run_of(&socket, "steady"), run_of(&socket, "changing"));

    let (status, text) = api_request(&socket, "GET", "/keel/v1/config", b"");
    assert_eq!((status, text.as_str()), (200, first.as_str()));
    let (_, keel_status) = json_of(&socket, "GET", "/keel/v1/status", b"");
    let generation = keel_status["config"]["generation"].as_u64().unwrap();
    assert!(generation >= 1, "{keel_status}");
    assert_eq!(keel_status["config"]["errors"], serde_json::json!([]));
    // The relay's counters: keel's own lines reach the receiver.
    let relayed = rsyslog.wait_for("keel", 1);
    let syslog = wait_for("the relay's counters", Duration::from_secs(30), || {
        let (_, keel_status) = json_of(&socket, "GET", "/keel/v1/status", b"");
        let syslog = keel_status["syslog"].clone();
        (syslog["sent"].as_u64()? >= relayed.len() as u64 && syslog["connected"] == true).then_some(syslog)
    });
    assert_eq!((syslog["dropped"].as_u64(), syslog["last_error"].is_null()), (Some(0), true), "{syslog}");

    // Valid: POST says so and changes nothing.
    let second = config(rsyslog.port, "sleep 100000", "sleep 100002");
    assert_eq!(
        json_of(&socket, "POST", "/keel/v1/config", second.as_bytes()),
        (200, serde_json::json!({"valid": true}))
    );
    assert_eq!(api_request(&socket, "GET", "/keel/v1/config", b"").1, first);

    // Invalid: two errors, each with its line and column; nothing changes.
    let invalid = format!("{}restart = \"sometimes\"\nmemory = \"lots\"\n[bogus]\n", second);
    let lines_before = second.lines().count();
    for method in ["POST", "PUT"] {
        let (status, reply) = json_of(&socket, method, "/keel/v1/config", invalid.as_bytes());
        assert_eq!(status, 400, "{method}: {reply}");
        let errors = reply["errors"].as_array().unwrap();
        let positions: Vec<(u64, u64)> =
            errors.iter().map(|error| (error["line"].as_u64().unwrap(), error["column"].as_u64().unwrap())).collect();
        let line = lines_before as u64;
        assert_eq!(positions, [(line + 1, 11), (line + 2, 10), (line + 3, 2)], "{method}: {reply}");
        assert!(errors[0]["message"].as_str().unwrap().contains("sometimes"), "{reply}");
        assert!(errors[2]["message"].as_str().unwrap().contains("bogus"), "{reply}");
        assert!(reply["message"].as_str().unwrap().contains("3 errors"), "{reply}");
    }
    assert_eq!(api_request(&socket, "GET", "/keel/v1/config", b"").1, first);
    let (_, keel_status) = json_of(&socket, "GET", "/keel/v1/status", b"");
    assert_eq!(keel_status["config"]["generation"].as_u64().unwrap(), generation);
    assert_eq!(run_of(&socket, "changing"), changing_before, "an invalid PUT restarted a container");

    // Valid PUT: a new generation, and only the changed container restarts.
    let before_put = unix_now();
    let (status, reply) = json_of(&socket, "PUT", "/keel/v1/config", second.as_bytes());
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply, serde_json::json!({"generation": generation + 1, "changed": ["changing"]}));
    wait_for("changing running again", Duration::from_secs(60), || running(&socket, "changing").then_some(()));
    let changing_after = run_of(&socket, "changing");
    assert_ne!(changing_after.0, changing_before.0, "the changed container kept its process");
    assert_eq!(run_of(&socket, "steady"), steady_before, "the unchanged container was restarted");
    // Its events: the old one stopped (`sleep` as PID 1 ignores SIGTERM: a second kill, SIGKILL, at the stop
    // timeout) and destroyed, the new one created and started; none for the other.
    let (_, events) = api_request(&socket, "GET", &format!("/events?since={before_put}&until={}", unix_now()), b"");
    let actions: Vec<&str> = events.split("\"Action\":\"").skip(1).filter_map(|rest| rest.split('"').next()).collect();
    assert_eq!(actions, ["kill", "kill", "die", "stop", "destroy", "create", "start"], "{events}");
    assert!(!events.contains("\"name\":\"steady\""), "{events}");
    assert_eq!(api_request(&socket, "GET", "/keel/v1/config", b"").1, second);
    let (_, keel_status) = json_of(&socket, "GET", "/keel/v1/status", b"");
    assert_eq!(keel_status["config"]["generation"].as_u64().unwrap(), generation + 1);
    let kept = std::fs::read_dir(host.state_dir.join("config")).unwrap().count();
    assert!(kept >= 2, "the generations are kept under the state dir ({kept})");

    // A body over the bound is refused before it is read; no host to reboot here.
    let huge = vec![b'#'; 2 << 20];
    assert_eq!(api_request(&socket, "PUT", "/keel/v1/config", &huge).0, 413);
    for action in ["reboot", "poweroff"] {
        let (status, reply) = json_of(&socket, "POST", &format!("/keel/v1/{action}"), b"");
        assert_eq!(status, 409, "{reply}");
        assert!(reply["message"].as_str().unwrap().contains("keel supervise has no host"), "{reply}");
    }
    assert_eq!(run_of(&socket, "steady"), steady_before);
}
