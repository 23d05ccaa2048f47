//! A container whose image is not in the store yet: the worker keeps answering while it pulls, and a start never
//! creates the container before the image is in.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use keel_fixtures::containers::{supervise, wait_status, TestHost, BUSYBOX};
use keel_fixtures::registry::free_port;
use keel_images::ImageReference;
use keel_supervision::machine::State;

const CACHE: &str = env!("CARGO_TARGET_TMPDIR");

/// The bug of issue 9: a stop during a pull, then a start, created the container with no image (exit 125).
#[test]
fn a_start_after_a_stop_during_a_pull_waits_for_the_image() {
    let host = TestHost::new(Path::new(CACHE));
    // Nothing listens there: every pull fails at once, and is retried with the backoff.
    let image = format!("127.0.0.1:{}/keel-test/absent:1", free_port());
    let text = format!(
        "[containers.late]\nimage = \"{image}\"\nrestart = \"always\"\nstop_timeout = 1\ncommand = [\"sleep\", \"1000\"]\n"
    );
    let handle = supervise(&host, &text);
    wait_status(&handle, "late", "a failed pull", |status| status.state == State::Pulling && !status.error.is_empty());

    let asked = Instant::now();
    handle.stop("late", None).unwrap();
    assert!(asked.elapsed() < Duration::from_secs(1), "a stop during a pull waited {:?}", asked.elapsed());
    let stopped = handle.container("late").unwrap();
    assert_eq!((stopped.state, stopped.status, stopped.stopped_by_user), (State::Created, "created", true));

    handle.start("late").unwrap();
    // The worker takes the start on its own thread; readers see it once it has.
    wait_status(&handle, "late", "the start taken", |status| !status.stopped_by_user);
    let deadline = Instant::now() + Duration::from_secs(1);
    while Instant::now() < deadline {
        let status = handle.container("late").unwrap();
        assert_eq!(status.state, State::Pulling, "started without its image: {status:?}");
        std::thread::sleep(Duration::from_millis(20));
    }

    // The image arrives (as a pull would leave it): the next attempt finds it and the container starts.
    let busybox = host.store.lookup(&BUSYBOX.parse::<ImageReference>().unwrap().to_string()).unwrap().unwrap();
    host.store.tag(&image.parse::<ImageReference>().unwrap().to_string(), &busybox).unwrap();
    let running = wait_status(&handle, "late", "running", |status| status.state == State::Running);
    assert_eq!((running.restart_count, running.stopped_by_user, running.error.as_str()), (0, false, ""));
    handle.shutdown();
}
