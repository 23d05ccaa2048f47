//! Readers never wait on writers: status, container and logs answer at once while `apply` or `shutdown` is
//! stopping a container that takes its whole stop timeout.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use keel_fixtures::containers::{supervise, user_data, wait_for, wait_status, TestHost};
use keel_supervision::machine::State;
use keel_supervision::SupervisorHandle;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const CACHE: &str = env!("CARGO_TARGET_TMPDIR");

/// A behavioural bound, not a benchmark: the wrong code answers after the 30 s stop timeout.
const READ_BOUND: Duration = Duration::from_millis(100);

/// Ignores SIGTERM, so stopping it takes the whole stop timeout.
const SLOW: &str = "[containers.slow]\nimage = \"{image}\"\nstop_timeout = 30\n\
                    command = [\"sh\", \"-c\", \"trap '' TERM; echo ready; while :; do sleep 1; done\"]\n";
const QUICK: &str = "[containers.quick]\nimage = \"{image}\"\nstop_timeout = 1\ncommand = [\"sleep\", \"1000\"]\n";

/// Runs every read the API will serve and returns the slowest one's time and `slow`'s state as `status()` saw it.
fn read_everything(handle: &SupervisorHandle) -> (Duration, Option<State>) {
    let started = Instant::now();
    let statuses = handle.status();
    let status_took = started.elapsed();
    let started = Instant::now();
    handle.container("quick");
    handle.logs("slow");
    let slowest = status_took.max(started.elapsed());
    (slowest, statuses.iter().find(|status| status.name == "slow").map(|status| status.state))
}

/// Starts `slow` and `quick`, and waits until `slow` has set its trap; returns `slow`'s pid.
fn start_slow(handle: &SupervisorHandle) -> Pid {
    wait_status(handle, "quick", "running", |status| status.state == State::Running);
    let slow = wait_status(handle, "slow", "running", |status| status.state == State::Running);
    wait_for("slow to set its trap", Duration::from_secs(30), || {
        handle.logs("slow").unwrap().iter().any(|record| record.line == "ready").then_some(())
    });
    Pid::from_raw(slow.pid.unwrap())
}

/// Reads while `slow` is stopping, asserting every read answers within the bound; then kills `slow` so that the
/// writer finishes now rather than after its 30 s. Returns the slowest read.
fn read_while_stopping(handle: &SupervisorHandle, slow: Pid) -> Duration {
    let mut slowest = Duration::ZERO;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (took, state) = read_everything(handle);
        assert!(took < READ_BOUND, "a read took {took:?} while a container was stopping");
        slowest = slowest.max(took);
        if state == Some(State::Stopping) {
            break;
        }
        assert!(Instant::now() < deadline, "slow never showed as stopping");
        std::thread::sleep(Duration::from_millis(10));
    }
    // The stop signal is out and ignored: keep reading a little while the writer waits on the stop timeout.
    for _ in 0..10 {
        let (took, state) = read_everything(handle);
        assert!(took < READ_BOUND, "a read took {took:?} while a container was stopping");
        assert_eq!(state, Some(State::Stopping));
        slowest = slowest.max(took);
        std::thread::sleep(Duration::from_millis(20));
    }
    kill(slow, Signal::SIGKILL).unwrap();
    slowest
}

#[test]
fn status_answers_at_once_while_apply_stops_a_container() {
    let host = TestHost::new(Path::new(CACHE));
    let handle = supervise(&host, &[SLOW, QUICK].concat());
    let slow = start_slow(&handle);
    std::thread::scope(|scope| {
        let applying = scope.spawn(|| handle.apply(&user_data(QUICK)).unwrap());
        let slowest = read_while_stopping(&handle, slow);
        eprintln!("slowest read while apply was stopping a container: {slowest:?}");
        let plan = applying.join().unwrap();
        assert_eq!((plan.remove, plan.keep), (vec!["slow".to_owned()], vec!["quick".to_owned()]));
    });
    assert!(handle.container("slow").is_none());
    assert_eq!(handle.container("quick").unwrap().state, State::Running);
    handle.shutdown();
}

#[test]
fn status_answers_at_once_during_shutdown() {
    let host = TestHost::new(Path::new(CACHE));
    let handle = supervise(&host, &[QUICK, SLOW].concat());
    let slow = start_slow(&handle);
    std::thread::scope(|scope| {
        let stopping = scope.spawn(|| handle.shutdown());
        let slowest = read_while_stopping(&handle, slow);
        eprintln!("slowest read during shutdown: {slowest:?}");
        stopping.join().unwrap();
    });
    assert!(handle.status().is_empty());
}
