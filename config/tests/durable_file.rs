//! A writer killed at random moments in the middle of `write_durably` never leaves a torn file: every read gives
//! one of the complete contents it was writing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use keel_config::durable_file::write_durably;

/// Set in the child: the file it rewrites in a loop.
const CHILD_TARGET: &str = "KEEL_DURABLE_FILE_CHILD_TARGET";

/// Two contents of different sizes, large enough that each write takes many pages and a kill lands inside one.
fn contents() -> [Vec<u8>; 2] {
    [vec![b'a'; 300 * 1024], vec![b'b'; 200 * 1024 + 17]]
}

/// The child's body: rewrite the target forever, alternating between the two contents.
#[test]
#[ignore = "run as the writer child of kill_during_writes_leaves_old_or_new_content"]
fn child_writes_in_a_loop() {
    let Some(target) = std::env::var_os(CHILD_TARGET) else { return };
    let contents = contents();
    for index in 0usize.. {
        write_durably(Path::new(&target), &contents[index % 2]).unwrap();
    }
}

#[test]
fn kill_during_writes_leaves_old_or_new_content() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("state.json");
    let contents = contents();
    write_durably(&target, &contents[0]).unwrap();
    let mut killed_mid_write = 0;
    for round in 0..40u64 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child_writes_in_a_loop", "--ignored", "--nocapture"])
            .env(CHILD_TARGET, &target)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Let it get into its loop, then kill it at a moment that varies from round to round.
        std::thread::sleep(Duration::from_millis(30 + (round * 7919) % 70));
        child.kill().unwrap();
        child.wait().unwrap();
        let read = std::fs::read(&target).unwrap();
        assert!(read == contents[0] || read == contents[1], "round {round}: a torn file of {} bytes", read.len());
        if dir.path().join(".state.json.tmp").exists() {
            killed_mid_write += 1;
        }
    }
    // The rounds must really have interrupted writes, or the test shows nothing.
    assert!(killed_mid_write > 0, "no kill landed inside a write");
    // The next write after a crash replaces the leftover temporary file.
    write_durably(&target, b"after").unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), b"after");
    assert!(!dir.path().join(".state.json.tmp").exists());
}
