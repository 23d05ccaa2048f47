//! `keel run` from the outside, as a user runs it: the container's exit code and output pass through, and nothing
//! is left behind (no mount, no cgroup, no container directory). Runs as root, like the supervisor's runtime tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use keel_fixtures::containers::{cgroup_root, wait_for, TestHost, BUSYBOX};

const CACHE: &str = env!("CARGO_TARGET_TMPDIR");
const KEEL: &str = env!("CARGO_BIN_EXE_keel");

/// `keel run --state-dir <host> --name <name> <flags> <image> <command>`.
fn keel_run(host: &TestHost, name: &str, flags: &[&str], image: &str, command: &[&str]) -> Output {
    let mut keel = Command::new(KEEL);
    keel.arg("run").arg("--state-dir").arg(&host.state_dir).args(["--name", name]);
    if let Some(root) = cgroup_root() {
        keel.arg("--cgroup-root").arg(root);
    }
    keel.args(flags).arg(image).args(command).output().unwrap()
}

/// Asserts that container `name` left nothing on the host.
fn assert_nothing_left(host: &TestHost, name: &str) {
    let container_dir = host.state_dir.join("containers").join(name);
    assert!(!container_dir.exists(), "{} is left", container_dir.display());
    if let Some(root) = cgroup_root() {
        let cgroup = root.join("keel").join(name);
        assert!(!cgroup.exists(), "cgroup {} is left", cgroup.display());
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let state = host.state_dir.display().to_string();
    assert!(!mounts.contains(&state), "a mount under {state} is left:\n{mounts}");
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn exit_code_and_output_pass_through_and_nothing_is_left() {
    let host = TestHost::new(Path::new(CACHE));
    let script = "echo out; echo err >&2; hostname; exit 7";
    let output = keel_run(&host, "run-exit", &["--network", "none", "--read-only"], BUSYBOX, &["sh", "-c", script]);
    assert_eq!(output.status.code(), Some(7), "stderr: {}", text(&output.stderr));
    assert_eq!(text(&output.stdout), "out\nrun-exit\n");
    assert_eq!(text(&output.stderr), "err\n");
    assert_nothing_left(&host, "run-exit");

    // A clean exit; the same name is free again, and while it ran the container was in its own cgroup.
    let mut keel = Command::new(KEEL);
    keel.arg("run").arg("--state-dir").arg(&host.state_dir).args(["--name", "run-exit"]);
    if let Some(root) = cgroup_root() {
        keel.arg("--cgroup-root").arg(root);
    }
    let mut running = keel.args([BUSYBOX, "sleep", "1"]).spawn().unwrap();
    if let Some(root) = cgroup_root() {
        let procs = root.join("keel/run-exit/cgroup.procs");
        wait_for("the container in its cgroup", Duration::from_secs(10), || {
            std::fs::read_to_string(&procs).ok().filter(|pids| !pids.trim().is_empty())
        });
    }
    assert_eq!(running.wait().unwrap().code(), Some(0));
    assert_nothing_left(&host, "run-exit");
}

#[test]
fn failures_have_dockers_exit_codes_and_leave_nothing() {
    let host = TestHost::new(Path::new(CACHE));
    let output = keel_run(&host, "run-missing", &[], BUSYBOX, &["/no/such/command"]);
    assert_eq!(output.status.code(), Some(127), "stderr: {}", text(&output.stderr));
    assert_nothing_left(&host, "run-missing");

    let output = keel_run(&host, "run-noimage", &[], "keel-test/absent:1", &["true"]);
    assert_eq!(output.status.code(), Some(125), "stderr: {}", text(&output.stderr));
    assert!(text(&output.stderr).contains("not in the store"), "{}", text(&output.stderr));
    assert_nothing_left(&host, "run-noimage");

    let output = Command::new(KEEL).args(["run", "--network", "bridge", BUSYBOX]).output().unwrap();
    assert_eq!(output.status.code(), Some(125));
    assert!(text(&output.stderr).contains("usage: keel run"), "{}", text(&output.stderr));
}

#[test]
fn sigint_is_passed_on_to_the_container() {
    let host = TestHost::new(Path::new(CACHE));
    let mut keel = Command::new(KEEL);
    keel.arg("run").arg("--state-dir").arg(&host.state_dir).args(["--name", "run-signal"]);
    if let Some(root) = cgroup_root() {
        keel.arg("--cgroup-root").arg(root);
    }
    let script = "trap 'echo got INT; exit 3' INT; sleep 30 & wait";
    let running = keel.args([BUSYBOX, "sh", "-c", script]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    // The trap is set once sh has started `sleep`: two processes in the container's cgroup.
    match cgroup_root() {
        Some(root) => {
            let procs = root.join("keel/run-signal/cgroup.procs");
            wait_for("sh and sleep in the container", Duration::from_secs(10), || {
                std::fs::read_to_string(&procs).ok().filter(|pids| pids.lines().count() >= 2)
            });
        }
        None => std::thread::sleep(Duration::from_secs(1)),
    }
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(running.id() as i32), nix::sys::signal::Signal::SIGINT).unwrap();
    let output = running.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(3));
    assert_eq!(text(&output.stdout), "got INT\n");
    assert_nothing_left(&host, "run-signal");
}
