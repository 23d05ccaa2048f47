//! Requests through the handle against real containers: `restart` answers once the new run has started.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

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
    handle.restart("rst").unwrap();
    let after = handle.container("rst").unwrap();
    assert_eq!((after.state, after.stopped_by_user, after.restart_count), (State::Running, false, 0));
    assert_ne!(after.pid, before.pid, "a new run");
    // Stopped by the user, a restart starts it again and clears the manual stop, as `docker restart` does.
    handle.stop("rst").unwrap();
    assert!(handle.container("rst").unwrap().stopped_by_user);
    handle.restart("rst").unwrap();
    let again = handle.container("rst").unwrap();
    assert_eq!((again.state, again.stopped_by_user), (State::Running, false));
    handle.shutdown();
}
