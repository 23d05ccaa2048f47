//! The host going down under a deadline: 20 containers that ignore SIGTERM (their PID 1 is `sleep`, which has no
//! handler) with a stop timeout longer than the host's `shutdown_timeout`; the power button must still give a clean
//! power-off (data unmounted) within `shutdown_timeout` plus a few seconds of guest time, each step timed on the
//! console.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use anyhow::{ensure, Context, Result};
use keel_qemu_tests::artifacts;
use keel_qemu_tests::config_drive::{self, DriveSpec};
use keel_qemu_tests::disk::DiskFormat;
use keel_qemu_tests::timeouts;
use keel_qemu_tests::vm::{Vm, VmConfig};

const CONTAINERS: usize = 20;
const SHUTDOWN_TIMEOUT: u64 = 8;

/// Seconds in a console line `keel: powering off (12.3 s after the request)`.
fn seconds_after_request(console: &str) -> Option<f64> {
    let line = console.lines().find(|line| line.contains("keel: powering off ("))?;
    line.split('(').nth(1)?.split(' ').next()?.parse().ok()
}

#[test]
fn twenty_containers_that_ignore_sigterm_power_off_within_the_shutdown_timeout() -> Result<()> {
    let name = "twenty_containers_that_ignore_sigterm_power_off_within_the_shutdown_timeout";
    let mut user_data = format!("[host]\nshutdown_timeout = {SHUTDOWN_TIMEOUT}\n");
    for index in 0..CONTAINERS {
        user_data.push_str(&format!(
            "[containers.sleeper{index}]\nimage = \"keel/busybox\"\ncommand = [\"sleep\", \"100000\"]\nstop_timeout = 60\n"
        ));
    }
    let scratch = tempfile::tempdir()?;
    let artifacts = artifacts::ensure_built()?;
    let spec = DriveSpec { user_data: &user_data, meta_data: None, format: "vfat", layout: "nocloud" };
    let drive = config_drive::build(scratch.path(), name, &spec)?;
    let vm = Vm::start(VmConfig::pvh(name, &artifacts).disk_file(&drive, DiskFormat::Raw))?;
    vm.wait_for_ready(timeouts::PVH_READY)?;
    for index in 0..CONTAINERS {
        vm.wait_for_anywhere(&format!("sleeper{index}: started"), timeouts::CONTAINER)?;
    }
    vm.power_down()?;
    let status = vm.wait_for_exit(timeouts::SHUTDOWN)?;
    let console = vm.console();
    ensure!(status.success(), "QEMU exited with {status}; console:\n{console}");
    ensure!(console.lines().any(|l| l.contains("keel: unmounted")), "no `keel: unmounted` line; console:\n{console}");
    for step in ["stopping the containers", "releasing the network", "unmounting"] {
        ensure!(console.contains(&format!("keel: shutdown: {step}: ")), "step {step:?} not timed; console:\n{console}");
    }
    let took = seconds_after_request(&console).context(format!("no `powering off (… s …)` line:\n{console}"))?;
    eprintln!("{CONTAINERS} containers ignoring SIGTERM (stop_timeout 60 s, shutdown_timeout {SHUTDOWN_TIMEOUT} s): powered off {took} s (guest) after the request");
    ensure!(took <= (SHUTDOWN_TIMEOUT + 10) as f64, "powered off {took} s after the request; console:\n{console}");
    Ok(())
}
