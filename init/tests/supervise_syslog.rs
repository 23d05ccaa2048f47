//! `keel supervise` relays to syslog exactly as PID 1 does (issue 9): with a `[syslog] target`, a container's
//! stdout and stderr lines reach a real rsyslogd with the container's name as APP-NAME, stdout as info and stderr
//! as err, and keel's own lines with APP-NAME `keel`; at SIGTERM the containers stop and what was queued is sent.
//! Runs as root, like the supervisor's runtime tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use keel_fixtures::containers::{wait_for, TestHost, BUSYBOX};
use keel_fixtures::rsyslog::Rsyslog;

const CACHE: &str = env!("CARGO_TARGET_TMPDIR");
const KEEL: &str = env!("CARGO_BIN_EXE_keel");

#[test]
fn keel_supervise_relays_container_lines_to_rsyslog_as_pid_1_does() {
    let host = TestHost::new(Path::new(CACHE));
    let syslog_dir = tempfile::tempdir().unwrap();
    let rsyslog = Rsyslog::start(syslog_dir.path());
    let config = host.state_dir.join("user-data.toml");
    let script = "echo out 1; echo err 1 >&2; echo out 2; exec sleep 600";
    std::fs::write(
        &config,
        format!(
            "[syslog]\ntarget = \"tcp://127.0.0.1:{port}\"\nfacility = \"local4\"\n\n\
             [containers.relayed]\nimage = \"{BUSYBOX}\"\nnetwork = \"none\"\ncommand = [\"sh\", \"-c\", \"{script}\"]\n",
            port = rsyslog.port
        ),
    )
    .unwrap();
    let mut keel = Command::new(KEEL);
    keel.arg("supervise").arg("--config").arg(&config).arg("--state-dir").arg(&host.state_dir);
    if let Some(root) = host.cgroup_root() {
        keel.arg("--cgroup-root").arg(root);
    }
    let mut supervise = keel.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();

    let lines = rsyslog.wait_for("relayed", 3);
    // Each stream's order holds; the two pipes are read by two threads, so out and err may interleave.
    let outs: Vec<&String> = lines.iter().filter(|line| line.contains(" out ")).collect();
    assert_eq!(outs, ["local4.info relayed out 1", "local4.info relayed out 2"], "{lines:?}");
    assert!(lines.contains(&"local4.err relayed err 1".to_owned()), "{lines:?}");
    let keel_lines = rsyslog.wait_for("keel", 1);
    assert!(keel_lines.iter().all(|line| line.starts_with("local4.")), "{keel_lines:?}");
    // Each container line carries the container's id (as `docker ps` shows it) and image as structured data.
    let id = keel_config::containers::container_id("relayed");
    let labelled = format!(r#"relayed [keel@32473 container_id="{id}" image="{BUSYBOX}"]"#);
    let structured = rsyslog.structured_data_lines();
    let relayed: Vec<&String> = structured.iter().filter(|line| line.starts_with("relayed ")).collect();
    assert!(relayed.len() >= 3 && relayed.iter().all(|line| **line == labelled), "{structured:?}");
    assert!(structured.iter().filter(|line| line.starts_with("keel ")).all(|line| line == "keel -"), "{structured:?}");

    nix::sys::signal::kill(nix::unistd::Pid::from_raw(supervise.id() as i32), nix::sys::signal::SIGTERM).unwrap();
    let status = wait_for("keel supervise to exit", Duration::from_secs(60), || supervise.try_wait().unwrap());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut supervise.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "{status}; stderr:\n{stderr}");
    // The last line keel logs before it flushes the relay reaches the receiver too.
    let keel_lines = rsyslog.wait_for("keel", 1);
    assert!(
        wait_for("keel's last line in syslog", Duration::from_secs(30), || {
            rsyslog.lines().iter().any(|line| line == "local4.info keel every container stopped").then_some(true)
        }),
        "{keel_lines:?}"
    );
    // Without --echo-logs container lines stay off the console, as before; keel's own are there.
    assert!(!stderr.contains("relayed | out 1"), "{stderr}");
    assert!(stderr.contains("keel: every container stopped"), "{stderr}");
}
