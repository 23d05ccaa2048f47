//! `keel supervise` going down as a host does: every container stops at once under one deadline, a container
//! before those it depends on, and what ignores its stop signal is killed when its stop timeout (or the host's
//! `shutdown_timeout`) runs out. Runs as root, like the supervisor's runtime tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use keel_fixtures::containers::{wait_for, TestHost, BUSYBOX};

const CACHE: &str = env!("CARGO_TARGET_TMPDIR");
const KEEL: &str = env!("CARGO_BIN_EXE_keel");

/// Containers whose PID 1 is `sleep`: a PID 1 without a handler ignores SIGTERM, as many real entrypoints do.
const IGNORING: usize = 50;

/// Kills `keel supervise` if a test fails before it exits.
struct Supervise(Child);

impl Drop for Supervise {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn state(host: &TestHost, name: &str) -> serde_json::Value {
    let path = host.state_dir.join("containers").join(name).join("state.json");
    std::fs::read(&path).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok()).unwrap_or_default()
}

#[test]
fn fifty_containers_that_ignore_sigterm_stop_within_their_stop_timeout_and_chains_stop_in_order() {
    let host = TestHost::new(Path::new(CACHE));
    let shared = host.temp.path().join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    let mut config = String::from("[host]\nshutdown_timeout = 60\n");
    for index in 0..IGNORING {
        config.push_str(&format!(
            "[containers.sleeper{index}]\nimage = \"{BUSYBOX}\"\ncommand = [\"sleep\", \"100000\"]\nstop_timeout = 5\n"
        ));
    }
    // front depends on middle, middle on back: front must stop first, back last. Each notes its SIGTERM.
    for (name, depends_on) in [("front", "middle"), ("middle", "back"), ("back", "")] {
        let depends = if depends_on.is_empty() { String::new() } else { format!("depends_on = [\"{depends_on}\"]\n") };
        config.push_str(&format!(
            "[containers.{name}]\nimage = \"{BUSYBOX}\"\nvolumes = [\"{}:/shared\"]\n{depends}\
             command = [\"sh\", \"-c\", \"trap 'echo {name} >> /shared/order; exit 0' TERM; while true; do sleep 0.2; done\"]\n",
            shared.display()
        ));
    }
    let config_file = host.temp.path().join("config.toml");
    std::fs::write(&config_file, config).unwrap();
    let log = std::fs::File::create(host.temp.path().join("supervise.log")).unwrap();
    let mut keel = Command::new(KEEL);
    keel.arg("supervise").arg("--config").arg(&config_file).arg("--state-dir").arg(&host.state_dir);
    if let Some(root) = host.cgroup_root() {
        keel.arg("--cgroup-root").arg(root);
    }
    let mut supervise = Supervise(keel.stdout(Stdio::null()).stderr(log).spawn().unwrap());

    let names: Vec<String> = (0..IGNORING)
        .map(|index| format!("sleeper{index}"))
        .chain(["front", "middle", "back"].map(String::from))
        .collect();
    wait_for("every container running", Duration::from_secs(300), || {
        names.iter().all(|name| state(&host, name)["status"] == "running").then_some(())
    });

    let asked = Instant::now();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(supervise.0.id() as i32), nix::sys::signal::Signal::SIGTERM)
        .unwrap();
    let status = wait_for("keel supervise to exit", Duration::from_secs(120), || supervise.0.try_wait().unwrap());
    let took = asked.elapsed();
    let log = std::fs::read_to_string(host.temp.path().join("supervise.log")).unwrap();
    eprintln!("{IGNORING} containers ignoring SIGTERM (stop_timeout 5 s) and a chain of three: down in {took:?}");
    assert!(status.success(), "{status}; log:\n{log}");
    // One at a time this was 50 × 5 s; in parallel it is one stop timeout plus the chain's quick stops.
    assert!(took < Duration::from_secs(5 + 10), "took {took:?}; log:\n{log}");
    for index in 0..IGNORING {
        let state = state(&host, &format!("sleeper{index}"));
        assert_eq!(state["exit_code"], 137, "sleeper{index}: {state}");
    }
    for name in ["front", "middle", "back"] {
        assert_eq!(state(&host, name)["exit_code"], 0, "{name}");
    }
    assert_eq!(std::fs::read_to_string(shared.join("order")).unwrap(), "front\nmiddle\nback\n");
    let left = Command::new("pgrep").args(["-f", "sleep 100000"]).output().unwrap();
    assert!(left.stdout.is_empty(), "processes left: {}", String::from_utf8_lossy(&left.stdout));
}

#[test]
fn the_host_deadline_cuts_long_stop_timeouts() {
    let host = TestHost::new(Path::new(CACHE));
    let config = format!(
        "[host]\nshutdown_timeout = 2\n[containers.slow]\nimage = \"{BUSYBOX}\"\ncommand = [\"sleep\", \"100001\"]\n\
         stop_timeout = 600\n"
    );
    let config_file = host.temp.path().join("config.toml");
    std::fs::write(&config_file, config).unwrap();
    let mut keel = Command::new(KEEL);
    keel.arg("supervise").arg("--config").arg(&config_file).arg("--state-dir").arg(&host.state_dir);
    if let Some(root) = host.cgroup_root() {
        keel.arg("--cgroup-root").arg(root);
    }
    let mut supervise = Supervise(keel.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap());
    wait_for("slow running", Duration::from_secs(60), || (state(&host, "slow")["status"] == "running").then_some(()));
    let asked = Instant::now();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(supervise.0.id() as i32), nix::sys::signal::Signal::SIGTERM)
        .unwrap();
    let status = wait_for("keel supervise to exit", Duration::from_secs(120), || supervise.0.try_wait().unwrap());
    let took = asked.elapsed();
    eprintln!("stop_timeout 600 s under shutdown_timeout 2 s: down in {took:?}");
    assert!(status.success(), "{status}");
    assert!(took < Duration::from_secs(2 + 10), "took {took:?}");
    assert_eq!(state(&host, "slow")["exit_code"], 137);
}
