//! `depends_on` with Compose's conditions: the short list waits for `started`, `healthy` for the first healthy
//! probe, `completed_successfully` for an exit 0; a dependency that fails its condition is reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use keel_fixtures::containers::{supervise, wait_status, TestHost};
use keel_supervision::health::HealthState;
use keel_supervision::machine::State;

const CACHE: &str = env!("CARGO_TARGET_TMPDIR");

#[test]
fn depends_on_as_a_list_waits_for_started_not_healthy() {
    let host = TestHost::new(Path::new(CACHE));
    // db's first probe is 30 s away: a dependent that waited for health would not run for 30 s.
    let handle = supervise(
        &host,
        "[containers.sdb]\nimage = \"{image}\"\nstop_timeout = 1\ncommand = [\"sleep\", \"1000\"]\n\
         healthcheck = { test = \"true\", interval = \"30s\" }\n\
         [containers.sweb]\nimage = \"{image}\"\ndepends_on = [\"sdb\"]\nstop_timeout = 1\ncommand = [\"sleep\", \"1000\"]\n",
    );
    wait_status(&handle, "sweb", "running", |status| status.state == State::Running);
    let db = handle.container("sdb").unwrap();
    assert_eq!(db.health.map(|health| health.status), Some(HealthState::Starting), "web did not wait for health");
    assert!(db.started_at <= handle.container("sweb").unwrap().started_at);
    handle.shutdown();
}

#[test]
fn completed_successfully_waits_for_a_zero_exit() {
    let host = TestHost::new(Path::new(CACHE));
    let handle = supervise(
        &host,
        "[containers.migrate]\nimage = \"{image}\"\ncommand = [\"sh\", \"-c\", \"sleep 1; exit 0\"]\n\
         [containers.app]\nimage = \"{image}\"\ndepends_on = { migrate = \"completed_successfully\" }\nstop_timeout = 1\n\
         command = [\"sleep\", \"1000\"]\n",
    );
    let app = wait_status(&handle, "app", "running", |status| status.state == State::Running);
    let migrate = handle.container("migrate").unwrap();
    assert_eq!((migrate.state, migrate.exit_code), (State::Exited, 0));
    assert!(app.started_at.unwrap() >= migrate.finished_at.unwrap(), "app started after migrate finished");
    handle.shutdown();
}

#[test]
fn a_dependency_that_fails_its_condition_is_reported() {
    let host = TestHost::new(Path::new(CACHE));
    let handle = supervise(
        &host,
        "[containers.fmigrate]\nimage = \"{image}\"\ncommand = [\"sh\", \"-c\", \"exit 3\"]\n\
         [containers.fapp]\nimage = \"{image}\"\ndepends_on = { fmigrate = \"completed_successfully\" }\n\
         command = [\"sleep\", \"1000\"]\n",
    );
    let app = wait_status(&handle, "fapp", "the failed dependency reported", |status| !status.error.is_empty());
    assert_eq!(app.error, "dependency fmigrate exited with 3 (waiting for completed_successfully)");
    assert_eq!((app.state, app.status), (State::Waiting, "created"), "not started");
    handle.shutdown();
}
