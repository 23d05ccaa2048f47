//! Health-check timings as Docker's: probes every start interval (5 s by default) during the start period, and a
//! partial `healthcheck` table that keeps the image's HEALTHCHECK timings.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use keel_fixtures::containers::{busybox_archive, supervise, wait_status, TestHost};
use keel_fixtures::devices::image_with_layer;
use keel_fixtures::images::raw_tar;
use keel_supervision::health::HealthState;

const CACHE: &str = env!("CARGO_TARGET_TMPDIR");

fn healthy(status: &keel_supervision::ContainerStatus) -> bool {
    status.health.as_ref().is_some_and(|health| health.status == HealthState::Healthy)
}

#[test]
fn probes_every_start_interval_during_the_start_period() {
    let host = TestHost::new(Path::new(CACHE));
    let started = Instant::now();
    // interval 30 s: without Docker's 5 s start interval the first probe would come after 30 s.
    let handle = supervise(
        &host,
        "[containers.si]\nimage = \"{image}\"\ncommand = [\"sleep\", \"1000\"]\nstop_timeout = 1\n\
         healthcheck = { test = \"true\", interval = \"30s\", start_period = \"60s\" }\n",
    );
    wait_status(&handle, "si", "healthy", healthy);
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(4500), "the first probe comes one start interval (5 s) in: {took:?}");
    assert!(took < Duration::from_secs(25), "probed at the 5 s start interval, not the 30 s interval: {took:?}");
    handle.shutdown();
}

#[test]
fn a_partial_healthcheck_keeps_the_images_timings() {
    let host = TestHost::new(Path::new(CACHE));
    let layer = raw_tar(&[]);
    let archive =
        image_with_layer(&busybox_archive(Path::new(CACHE)), host.temp.path(), "keel-test/hc:1", &layer, |config| {
            config["config"]["Healthcheck"] =
                serde_json::json!({ "Test": ["CMD", "true"], "Interval": 1_000_000_000u64 });
        });
    host.store.import_archive(&archive).unwrap();
    let started = Instant::now();
    // Only `retries` here: the test and the 1 s interval stay the image's (Docker's default interval is 30 s).
    let handle = supervise(
        &host,
        "[containers.hc]\nimage = \"keel-test/hc:1\"\ncommand = [\"sleep\", \"1000\"]\nstop_timeout = 1\n\
         healthcheck = { retries = 2 }\n",
    );
    wait_status(&handle, "hc", "healthy", healthy);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(20), "the image's 1 s interval, not 30 s: {took:?}");
    handle.shutdown();
}
