//! The reaper against real children: every exit code and signal death reaches its spawner, and orphans are
//! collected. This file holds a single test because `waitpid(-1)` takes any child of the test process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use keel_runtime::{ExitStatus, Reaper};
use nix::unistd::Pid;

fn spawn_shell(reaper: &Reaper, script: &str) -> std::sync::mpsc::Receiver<ExitStatus> {
    let (_pid, exit) = reaper
        .spawn_with(|| {
            let child = Command::new("/bin/sh").args(["-c", script]).spawn()?;
            Ok(Pid::from_raw(child.id() as i32))
        })
        .unwrap();
    exit
}

#[test]
fn routes_every_exit_to_its_spawner_and_collects_orphans() {
    nix::sys::prctl::set_child_subreaper(true).unwrap();
    let reaper = Reaper::new();

    let mut expected = Vec::new();
    for code in [0, 1, 42, 255] {
        expected.push((spawn_shell(&reaper, &format!("exit {code}")), ExitStatus::Exited(code)));
    }
    expected.push((spawn_shell(&reaper, "kill -9 $$"), ExitStatus::Signaled(9)));
    expected.push((spawn_shell(&reaper, "kill -TERM $$"), ExitStatus::Signaled(15)));
    // The grandchild outlives its parent and is re-parented to us, the subreaper: nobody claims its exit.
    let orphan_parent = spawn_shell(&reaper, "sleep 0.2 & exit 7");
    expected.push((orphan_parent, ExitStatus::Exited(7)));

    let deadline = Instant::now() + Duration::from_secs(30);
    let mut reaped = 0;
    let mut results = Vec::new();
    for (exit, want) in expected {
        loop {
            reaped += reaper.reap_all();
            if let Ok(status) = exit.try_recv() {
                results.push((status, want));
                break;
            }
            assert!(Instant::now() < deadline, "a child exit never arrived");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    // 7 routed children plus the orphaned `sleep`.
    while reaped < 8 {
        assert!(Instant::now() < deadline, "the orphan was never reaped");
        std::thread::sleep(Duration::from_millis(10));
        reaped += reaper.reap_all();
    }
    for (status, want) in results {
        assert_eq!(status, want);
    }
    assert_eq!(reaper.reap_all(), 0, "no children are left");

    // Work that waits for a child's exit, run while the caller reaps: as PID 1 stops containers at shutdown.
    let reaper = std::sync::Arc::new(reaper);
    let shared = std::sync::Arc::clone(&reaper);
    let waited = reaper.reap_while("wait-for-child", move || {
        spawn_shell(&shared, "sleep 0.1; exit 9").recv_timeout(Duration::from_secs(30)).ok()
    });
    assert_eq!(waited, Some(Some(ExitStatus::Exited(9))));
}
