//! Restart policies against real containers: exact restart counts, the backoff between restarts, and manual
//! stops that survive a supervisor restart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use keel_fixtures::containers::{supervise, wait_status, TestHost};
use keel_logs::LogRecord;
use keel_supervision::machine::State;

const CACHE: &str = env!("CARGO_TARGET_TMPDIR");

/// The time between consecutive runs' first output lines, in milliseconds.
fn gaps_ms(records: &[LogRecord]) -> Vec<u128> {
    records.windows(2).map(|pair| pair[1].time.duration_since(pair[0].time).unwrap().as_millis()).collect()
}

#[test]
fn on_failure_3_restarts_exactly_three_times_with_backoff() {
    let host = TestHost::new(Path::new(CACHE));
    let handle = supervise(
        &host,
        "[containers.of3]\nimage = \"{image}\"\nrestart = \"on-failure:3\"\ncommand = [\"sh\", \"-c\", \"echo run; exit 1\"]\n",
    );
    let status = wait_status(&handle, "of3", "exited for good", |status| status.state == State::Exited);
    assert_eq!((status.restart_count, status.exit_code, status.status), (3, 1, "exited"));
    let runs = handle.logs("of3").unwrap();
    assert_eq!(runs.len(), 4, "one line per run: {runs:?}");
    let gaps = gaps_ms(&runs);
    for (gap, minimum) in gaps.iter().zip([100, 200, 400]) {
        assert!(*gap >= minimum, "restart gaps {gaps:?} follow 100, 200, 400 ms");
        assert!(*gap < minimum + 5000, "restart gaps {gaps:?} are not much longer than the backoff");
    }
    handle.shutdown();
}

#[test]
fn on_failure_ignores_success_and_no_never_restarts() {
    let host = TestHost::new(Path::new(CACHE));
    let handle = supervise(
        &host,
        "[containers.of0]\nimage = \"{image}\"\nrestart = \"on-failure\"\ncommand = [\"true\"]\n\
         [containers.no1]\nimage = \"{image}\"\nrestart = \"no\"\ncommand = [\"false\"]\n",
    );
    let success = wait_status(&handle, "of0", "exited", |status| status.state == State::Exited);
    assert_eq!((success.restart_count, success.exit_code), (0, 0));
    let failure = wait_status(&handle, "no1", "exited", |status| status.state == State::Exited);
    assert_eq!((failure.restart_count, failure.exit_code), (0, 1));
    assert_eq!(handle.logs("no1").unwrap().len(), 0);
    handle.shutdown();
}

#[test]
fn always_restarts_on_success_too() {
    let host = TestHost::new(Path::new(CACHE));
    let handle = supervise(
        &host,
        "[containers.alw]\nimage = \"{image}\"\nrestart = \"always\"\ncommand = [\"sh\", \"-c\", \"echo run\"]\n",
    );
    wait_status(&handle, "alw", "three restarts", |status| status.restart_count >= 3);
    let gaps = gaps_ms(&handle.logs("alw").unwrap());
    assert!(gaps[0] >= 100 && gaps[1] >= 200, "{gaps:?}");
    handle.shutdown();
    assert_eq!(handle.status().len(), 0, "shutdown forgets every container");
}

#[test]
fn unless_stopped_stays_stopped_after_a_manual_stop_across_supervisor_restarts() {
    let host = TestHost::new(Path::new(CACHE));
    let text = "[containers.uls]\nimage = \"{image}\"\nrestart = \"unless-stopped\"\nstop_timeout = 1\ncommand = [\"sleep\", \"1000\"]\n\
                [containers.alws]\nimage = \"{image}\"\nrestart = \"always\"\nstop_timeout = 1\ncommand = [\"sleep\", \"1000\"]\n";
    let handle = supervise(&host, text);
    for name in ["uls", "alws"] {
        wait_status(&handle, name, "running", |status| status.state == State::Running);
        handle.stop(name, None).unwrap();
        let status = handle.container(name).unwrap();
        assert_eq!((status.state, status.stopped_by_user, status.restart_count), (State::Exited, true, 0));
    }
    handle.shutdown();

    // A new supervisor on the same state dir: `always` starts again (Docker does at daemon start),
    // `unless-stopped` remembers the stop.
    let handle = supervise(&host, text);
    wait_status(&handle, "alws", "running again", |status| status.state == State::Running);
    let status = handle.container("uls").unwrap();
    assert!(status.stopped_by_user);
    // Give the worker every chance to (wrongly) start it.
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    while std::time::Instant::now() < deadline {
        assert_ne!(
            handle.container("uls").unwrap().state,
            State::Running,
            "unless-stopped started after a manual stop"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // A manual start clears the stop.
    handle.start("uls").unwrap();
    let status = wait_status(&handle, "uls", "running", |status| status.state == State::Running);
    assert!(!status.stopped_by_user);
    handle.shutdown();
}

/// Docker's `MaximumRetryCount` 0 is no limit: `on-failure:0` restarts like `on-failure`, not never.
#[test]
fn on_failure_0_means_no_retry_limit() {
    let host = TestHost::new(Path::new(CACHE));
    let handle = supervise(
        &host,
        "[containers.of0n]\nimage = \"{image}\"\nrestart = \"on-failure:0\"\ncommand = [\"sh\", \"-c\", \"echo run; exit 3\"]\n",
    );
    let status = wait_status(&handle, "of0n", "three restarts", |status| status.restart_count >= 3);
    assert_eq!(status.exit_code, 3);
    assert_ne!(status.state, State::Exited, "still restarting");
    handle.shutdown();
}

/// A boot (a new supervisor on the same state dir) starts every declared container, keel's rule, and resets the
/// restart count as Docker does when it starts containers at daemon start: an `on-failure:2` container that used
/// its retries before the reboot gets two again.
#[test]
fn restart_count_resets_at_boot_and_on_failure_retries_again() {
    let host = TestHost::new(Path::new(CACHE));
    let text = "[containers.of2]\nimage = \"{image}\"\nrestart = \"on-failure:2\"\ncommand = [\"sh\", \"-c\", \"echo run; exit 1\"]\n";
    let handle = supervise(&host, text);
    let status = wait_status(&handle, "of2", "out of retries", |status| status.state == State::Exited);
    assert_eq!((status.restart_count, status.exit_code, handle.logs("of2").unwrap().len()), (2, 1, 3));
    handle.shutdown();

    // The container's log files keep the runs before the boot too (Docker's json-file): three more after it.
    let handle = supervise(&host, text);
    let status = wait_status(&handle, "of2", "exited after the boot", |status| {
        status.state == State::Exited && handle.logs("of2").unwrap().len() > 3
    });
    let runs = handle.logs("of2").unwrap().len();
    assert_eq!((status.restart_count, status.exit_code, runs), (2, 1, 6), "two retries again after the boot");
    handle.shutdown();
}

/// Docker's `ExitCode` is the last run's only while the container is down: a start, here a restart by policy, sets
/// it back to 0 (and `OOMKilled` to false).
#[test]
fn exit_code_resets_to_0_when_it_starts_again() {
    let host = TestHost::new(Path::new(CACHE));
    let handle = supervise(
        &host,
        "[containers.ec]\nimage = \"{image}\"\nrestart = \"on-failure\"\nstop_timeout = 1\n\
         command = [\"sh\", \"-c\", \"test -f /ran && exec sleep 1000; touch /ran; exit 3\"]\n",
    );
    let status = wait_status(&handle, "ec", "running again", |status| {
        status.state == State::Running && status.restart_count == 1
    });
    assert_eq!((status.exit_code, status.oom_killed), (0, false));
    handle.shutdown();
}

/// `docker run` of a command that is not there: exit code 127, no restart, and the container stays `created`
/// because it never ran.
#[test]
fn a_first_start_that_fails_leaves_it_created() {
    let host = TestHost::new(Path::new(CACHE));
    let handle = supervise(
        &host,
        "[containers.nocmd]\nimage = \"{image}\"\nrestart = \"always\"\ncommand = [\"/no/such/program\"]\n",
    );
    let status = wait_status(&handle, "nocmd", "failed to start", |status| status.exit_code == 127);
    assert_eq!((status.state, status.status, status.restart_count), (State::Created, "created", 0));
    assert!(!status.error.is_empty(), "the start error is reported");
    handle.shutdown();
}

/// As under runc, a command that is there and executable but whose execve fails (here a missing interpreter)
/// started: it exits 255, with the reason on its stderr, and the restart policy counts that exit.
#[test]
fn an_exec_that_fails_after_the_program_was_found_exits_255_and_is_restarted() {
    use std::os::unix::fs::PermissionsExt;
    let host = TestHost::new(Path::new(CACHE));
    let dir = host.temp.path().join("bad-program");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("bad"), "#!/no/such/interpreter\n").unwrap();
    std::fs::set_permissions(dir.join("bad"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let text = format!(
        "[containers.bad]\nimage = \"{{image}}\"\nrestart = \"on-failure:2\"\nvolumes = [\"{}:/opt:ro\"]\n\
         command = [\"/opt/bad\"]\n",
        dir.display()
    );
    let handle = supervise(&host, &text);
    let status = wait_status(&handle, "bad", "out of retries", |status| status.state == State::Exited);
    assert_eq!((status.exit_code, status.restart_count, status.status), (255, 2, "exited"));
    let lines: Vec<String> = handle.logs("bad").unwrap().into_iter().map(|record| record.line).collect();
    assert_eq!(lines.first().map(String::as_str), Some("exec /opt/bad: errno 2"), "{lines:?}");
    handle.shutdown();
}
