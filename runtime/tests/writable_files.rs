//! What a container leaves in its writable layer, read by PID 1 on the next start: a root container that turns
//! `/etc/passwd` into a sparse 20 GiB file and exits must make the next create fail fast with a clear error,
//! not grow the reader's memory. Its own test binary: it measures the process's peak RSS.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use keel_fixtures::containers::{reaper, TestHost};
use keel_logs::error_chain;

const CACHE: &str = env!("CARGO_TARGET_TMPDIR");

fn status_value(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|line| line.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

#[test]
fn a_sparse_20_gib_passwd_left_by_a_container_fails_the_next_create_fast() {
    let host = TestHost::new(Path::new(CACHE));
    let name = "passwd20g";
    let text = format!(
        "[containers.{name}]\nimage = \"{}\"\ncommand = [\"sh\", \"-c\", \"truncate -s 20G /etc/passwd && ls -l /etc/passwd\"]\n",
        host.busybox()
    );
    let config = keel_config::UserData::parse("test", &text).unwrap().containers.remove(name).unwrap();
    let stored = host.store.image(&host.busybox()).unwrap();
    let dirs = host.runtime_dirs();
    let run_config = host.run_config(&stored);
    let container = keel_runtime::Container::create(name, &config, &stored.layer_dirs, &run_config, &dirs).unwrap();
    let mut running = container.start(&reaper()).unwrap();
    let mut stdout = String::new();
    running.stdout.read_to_string(&mut stdout).unwrap();
    let status = running.exit.recv_timeout(Duration::from_secs(60)).unwrap();
    assert_eq!(status.code(), 0, "the container could not write its passwd: {stdout}");
    assert!(stdout.contains("21474836480"), "{stdout}");

    // The restart: the writable layer is kept, so its passwd is what the container sees.
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let rss_before = status_value("VmRSS:");
    let started = Instant::now();
    let result = keel_runtime::Container::create(name, &config, &stored.layer_dirs, &run_config, &dirs);
    let elapsed = started.elapsed();
    let growth = status_value("VmHWM:").saturating_sub(rss_before);
    let error = result.map(drop).expect_err("a 20 GiB passwd must be refused");
    let message = error_chain(&error);
    println!("refused in {elapsed:?}, peak RSS growth {} KiB: {message}", growth >> 10);
    keel_runtime::remove_container(&dirs.containers_dir, name, dirs.cgroup_root.as_deref()).unwrap();
    assert!(message.contains("/etc/passwd is larger than 1048576 bytes"), "{message}");
    assert!(growth < 16 << 20, "peak RSS grew by {growth} bytes");
    // Reading the file would take minutes; refusing it takes a stat. Generous for a loaded machine.
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
}
