//! A full filesystem under a container's log files: the container keeps running, the lines that do not fit are
//! dropped and counted, and the file keeps only complete lines. The container's directory is a 256 KiB tmpfs.
//! Runs as root.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use keel_fixtures::containers::{supervise, wait_for, wait_status, TestHost};
use keel_logs::json_file::{LogFiles, LogQuery};
use keel_supervision::machine::State;
use nix::mount::{mount, umount2, MntFlags, MsFlags};

const CACHE: &str = env!("CARGO_TARGET_TMPDIR");

/// Unmounts the tmpfs when the test ends, also when it fails.
struct Mounted<'a>(&'a Path);

impl Drop for Mounted<'_> {
    fn drop(&mut self) {
        let _ = umount2(self.0, MntFlags::MNT_DETACH);
    }
}

#[test]
fn a_full_filesystem_drops_and_counts_lines_and_never_stops_the_container() {
    let host = TestHost::new(Path::new(CACHE));
    let dir = host.state_dir.join("containers/flood");
    std::fs::create_dir_all(&dir).unwrap();
    mount(Some("tmpfs"), &dir, Some("tmpfs"), MsFlags::MS_NOSUID | MsFlags::MS_NODEV, Some("size=256k")).unwrap();
    let _mounted = Mounted(&dir);
    let handle = supervise(
        &host,
        "[containers.flood]\nimage = \"{image}\"\nlog_max_size = \"100m\"\n\
         command = [\"sh\", \"-c\", \"i=0; while true; do i=$((i+1)); echo line $i; done\"]\n",
    );
    let running = wait_status(&handle, "flood", "running", |status| status.state == State::Running);
    wait_for("lines dropped on the full tmpfs", Duration::from_secs(120), || {
        (handle.log_counters().dropped_write_failed > 100).then_some(())
    });
    // Still the same run, still writing.
    let before = handle.log_counters();
    wait_for("more lines read and dropped", Duration::from_secs(60), || {
        let now = handle.log_counters();
        (now.dropped_write_failed + now.dropped_queue_full
            > before.dropped_write_failed + before.dropped_queue_full + 1000)
            .then_some(())
    });
    let status = handle.container("flood").unwrap();
    assert_eq!((status.state, status.pid, status.restart_count), (State::Running, running.pid, 0));
    // Read once the writer is done (the shutdown flushes the files): a read while a write is under way could see
    // the line being written.
    handle.shutdown();
    // The file holds only whole lines, in order from 1 (with gaps where lines were dropped): nothing half written
    // stays behind.
    let records = LogFiles::new(host.state_dir.join("containers"), "flood").read(&LogQuery::all()).0;
    assert!(records.len() > 1000, "{} lines", records.len());
    let numbers: Vec<u64> =
        records.iter().map(|record| record.line.strip_prefix("line ").unwrap().parse().unwrap()).collect();
    assert_eq!(numbers[0], 1);
    assert!(numbers.windows(2).all(|pair| pair[0] < pair[1]), "lines in order");
    let file = std::fs::read(dir.join("flood-json.log")).unwrap();
    assert_eq!(file.last(), Some(&b'\n'));
    assert_eq!(file.iter().filter(|&&byte| byte == b'\n').count(), records.len());
    eprintln!("written {}, counters {:?}", records.len(), handle.log_counters());
}
