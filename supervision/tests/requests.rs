//! Requests through the handle against real containers: `restart` answers once the new run has started; `stop`
//! with a timeout (`docker stop -t`) uses it instead of the configured one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use keel_fixtures::containers::{supervise, wait_status, TestHost};
use keel_supervision::machine::State;

const CACHE: &str = env!("CARGO_TARGET_TMPDIR");

#[test]
fn restart_stops_then_starts_and_answers_once_started() {
    let host = TestHost::new(Path::new(CACHE));
    let handle = supervise(
        &host,
        "[containers.rst]\nimage = \"{image}\"\nrestart = \"no\"\nstop_timeout = 1\ncommand = [\"sleep\", \"1000\"]\n",
    );
    let before = wait_status(&handle, "rst", "running", |status| status.state == State::Running);
    handle.restart("rst", None).unwrap();
    let after = handle.container("rst").unwrap();
    assert_eq!((after.state, after.stopped_by_user, after.restart_count), (State::Running, false, 0));
    assert_ne!(after.pid, before.pid, "a new run");
    // Stopped by the user, a restart starts it again and clears the manual stop, as `docker restart` does.
    handle.stop("rst", None).unwrap();
    assert!(handle.container("rst").unwrap().stopped_by_user);
    handle.restart("rst", None).unwrap();
    let again = handle.container("rst").unwrap();
    assert_eq!((again.state, again.stopped_by_user), (State::Running, false));
    handle.shutdown();
}

#[test]
fn stop_with_a_timeout_overrides_the_containers_stop_timeout_once() {
    let host = TestHost::new(Path::new(CACHE));
    let handle = supervise(
        &host,
        "[containers.deaf]\nimage = \"{image}\"\nstop_timeout = 30\ncommand = [\"sleep\", \"100000\"]\n",
    );
    wait_status(&handle, "deaf", "running", |status| status.state == State::Running);
    let started = std::time::Instant::now();
    handle.stop("deaf", Some(Duration::from_secs(1))).unwrap();
    let took = started.elapsed();
    // `sleep` as PID 1 ignores SIGTERM: the kill comes after the 1 s asked for, not the configured 30 s.
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(10), "stop -t 1 took {took:?}");
    assert_eq!(handle.container("deaf").unwrap().exit_code, 137);
    handle.shutdown();
}
