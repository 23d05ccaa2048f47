//! What a `keel supervise` that was killed leaves running: its containers (nothing stops them). The next one on
//! the same state dir and cgroup root kills them before it starts its own, so that one instance of each runs; and
//! `keel run` does not join or empty a running container's cgroup. Runs as root, like the supervisor's runtime
//! tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use keel_fixtures::containers::{wait_for, TestHost, BUSYBOX};
use keel_fixtures::supervise::KeelSupervise;

const CACHE: &str = env!("CARGO_TARGET_TMPDIR");
const KEEL: &str = env!("CARGO_BIN_EXE_keel");

/// Starting busybox from the store, on a loaded machine.
const START: Duration = Duration::from_secs(60);

fn sleeper_config() -> String {
    format!("[containers.sleeper]\nimage = \"{BUSYBOX}\"\ncommand = [\"sleep\", \"100002\"]\nrestart = \"always\"\n")
}

/// The pids in container `name`'s cgroup under `root`.
fn cgroup_pids(root: &Path, name: &str) -> Vec<i32> {
    let procs = std::fs::read_to_string(root.join("keel").join(name).join("cgroup.procs")).unwrap_or_default();
    procs.lines().filter_map(|line| line.trim().parse().ok()).collect()
}

/// Kills whatever is left in a container's cgroup when dropped, the test passed or not: a killed supervisor's
/// container outlives it.
struct KillsLeftovers(std::path::PathBuf);

impl Drop for KillsLeftovers {
    fn drop(&mut self) {
        let _ = std::fs::write(self.0.join("cgroup.kill"), "1");
    }
}

/// Whether `pid` runs (a zombie, dead but not reaped, does not).
fn is_running(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command's closing parenthesis.
        Ok(stat) => stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

#[test]
fn a_killed_supervisors_containers_are_killed_before_the_next_one_starts_its_own() {
    let host = TestHost::new(Path::new(CACHE));
    let Some(cgroup_root) = host.cgroup_root() else { return };
    let _cleanup = KillsLeftovers(cgroup_root.join("keel").join("sleeper"));
    let mut first = KeelSupervise::start(Path::new(KEEL), &host, &sleeper_config());
    let left = wait_for("the first sleeper", START, || match cgroup_pids(&cgroup_root, "sleeper")[..] {
        [pid] => Some(pid),
        _ => None,
    });
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    assert!(is_running(left), "the container died with its supervisor: nothing to test");
    // The killed one could not remove its socket.
    std::fs::remove_file(&first.socket).unwrap();

    let _second = KeelSupervise::start(Path::new(KEEL), &host, &sleeper_config());
    let started =
        wait_for("the second sleeper alone in the cgroup", START, || match cgroup_pids(&cgroup_root, "sleeper")[..] {
            [pid] if pid != left => Some(pid),
            _ => None,
        });
    assert!(!is_running(left), "the first supervisor's sleeper {left} still runs beside {started}");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(cgroup_pids(&cgroup_root, "sleeper"), [started], "the sleeper's cgroup changed");
}

#[test]
fn keel_run_does_not_join_the_cgroup_of_a_running_container_of_its_name() {
    let host = TestHost::new(Path::new(CACHE));
    let Some(cgroup_root) = host.cgroup_root() else { return };
    let _cleanup = KillsLeftovers(cgroup_root.join("keel").join("sleeper"));
    let _supervise = KeelSupervise::start(Path::new(KEEL), &host, &sleeper_config());
    let running = wait_for("the sleeper", START, || match cgroup_pids(&cgroup_root, "sleeper")[..] {
        [pid] => Some(pid),
        _ => None,
    });
    // Another state dir with the image (the supervisor's own is refused by name already), the same cgroup root.
    let other = TestHost::new(Path::new(CACHE));
    let output = Command::new(KEEL)
        .arg("run")
        .arg("--state-dir")
        .arg(&other.state_dir)
        .arg("--cgroup-root")
        .arg(&cgroup_root)
        .args(["--name", "sleeper", BUSYBOX, "true"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(125), "{stderr}");
    let expected = format!("cgroup {}/keel/sleeper holds running processes", cgroup_root.display());
    assert!(stderr.contains(&expected), "{stderr}");
    assert_eq!(cgroup_pids(&cgroup_root, "sleeper"), [running], "the supervised sleeper's cgroup changed");
    assert!(is_running(running));
}
