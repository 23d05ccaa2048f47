//! Issue 11's acceptance under the real kernel: a container that writes `/dev/zero` to stdout for 60 s, beside
//! one that ticks once a second, neither grows PID 1 (VmHWM under 16 MiB, read by a container through the host's
//! /proc) nor silences the other container (its ticks keep reaching the console and syslog), and the host powers
//! off cleanly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use anyhow::{ensure, Result};
use keel_qemu_tests::artifacts;
use keel_qemu_tests::bench::flood::{self, FLOOD_SECONDS};

#[test]
fn a_container_writing_dev_zero_for_a_minute_leaves_pid_1_small_and_the_others_logging() -> Result<()> {
    let artifacts = artifacts::ensure_built()?;
    let scratch = tempfile::tempdir()?;
    let run = flood::run(&artifacts, scratch.path(), "logs_dev_zero_flood")?;
    eprintln!(
        "flood {:?}: PID 1 VmHWM {} KiB; console: {} ticks, {} flood lines, {} dropped; syslog: {} flood frames \
         ({} bytes), {} ticks",
        run.flood_wall,
        run.pid1_hwm_kib,
        run.ticks_on_console.len(),
        run.flood_lines_on_console,
        run.console_dropped,
        run.relayed_flood_frames,
        run.relayed_flood_bytes,
        run.relayed_ticks
    );
    ensure!(run.pid1_hwm_kib < 16 << 10, "PID 1's VmHWM reached {} KiB during the flood", run.pid1_hwm_kib);
    // The flood was real: it reached the console and syslog.
    ensure!(
        run.flood_lines_on_console > 0 && run.relayed_flood_frames > 0,
        "no flood seen: {} console lines, {} syslog frames",
        run.flood_lines_on_console,
        run.relayed_flood_frames
    );
    // One tick a second for a minute; a loaded TCG guest may fall well behind, but a silenced ticker shows none.
    let expected = FLOOD_SECONDS as usize / 4;
    ensure!(
        run.ticks_on_console.len() >= expected,
        "only {} ticks on the console during the {:?} flood (expected at least {expected}): {:?}",
        run.ticks_on_console.len(),
        run.flood_wall,
        run.ticks_on_console
    );
    ensure!(run.ticks_on_console.windows(2).all(|pair| pair[0] < pair[1]), "ticks out of order");
    // And in syslog: the relay's queue drops the flood's own lines first.
    ensure!(
        run.relayed_ticks >= expected as u64,
        "only {} ticks reached syslog during the flood (expected at least {expected})",
        run.relayed_ticks
    );
    Ok(())
}
