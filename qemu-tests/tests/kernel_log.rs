//! The kernel's log reaches a real rsyslogd on the host, in facility `kern` with APP-NAME `kernel` and the
//! kernel's own severity: the boot's first lines, logged long before the network came up, and a message the
//! kernel logs after `ready` (a container killed by its memory cgroup's OOM killer). Container lines take the
//! same relay.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Result};
use keel_fixtures::rsyslog::Rsyslog;
use keel_qemu_tests::artifacts;
use keel_qemu_tests::config_drive::{self, DriveSpec};
use keel_qemu_tests::disk::DiskFormat;
use keel_qemu_tests::timeouts;
use keel_qemu_tests::vm::{Vm, VmConfig};

/// Waits until a line of rsyslog's output satisfies `wanted`.
fn wait_for_line(rsyslog: &Rsyslog, what: &str, wanted: impl Fn(&str) -> bool) -> Result<String> {
    let deadline = Instant::now() + timeouts::CONTAINER;
    loop {
        if let Some(line) = rsyslog.lines().into_iter().find(|line| wanted(line)) {
            return Ok(line);
        }
        if Instant::now() > deadline {
            bail!("no {what} in syslog; received:\n{}", rsyslog.lines().join("\n"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_kernel_log_from_boot_and_after_ready_reaches_syslog_as_kern() -> Result<()> {
    let name = "the_kernel_log_from_boot_and_after_ready_reaches_syslog_as_kern";
    let scratch = tempfile::tempdir()?;
    let rsyslog = Rsyslog::start(scratch.path());
    // The hog doubles a string until its 16 MiB cgroup's OOM killer stops it; `restart = "no"` keeps it dead.
    let user_data = format!(
        "[syslog]\ntarget = \"tcp://10.0.2.2:{port}\"\n\n\
         [containers.hello]\nimage = \"keel/busybox\"\ncommand = [\"sh\", \"-c\", \"echo hello from a container; sleep 100000\"]\n\n\
         [containers.hog]\nimage = \"keel/busybox\"\nmemory = \"16m\"\nrestart = \"no\"\n\
         command = [\"sh\", \"-c\", \"sleep 2; x=0123456789abcdef; while true; do x=$x$x; done\"]\n",
        port = rsyslog.port
    );
    let artifacts = artifacts::ensure_built()?;
    let spec = DriveSpec { user_data: &user_data, meta_data: None, format: "vfat", layout: "nocloud" };
    let drive = config_drive::build(scratch.path(), name, &spec)?;
    let vm = Vm::start(VmConfig::pvh(name, &artifacts).network().disk_file(&drive, DiskFormat::Raw))?;
    vm.wait_for_ready(timeouts::PVH_READY)?;

    // Logged by the kernel before PID 1 ran, held by the kernel's ring until the relay existed.
    let banner = wait_for_line(&rsyslog, "kernel banner", |line| {
        line.starts_with("kern.notice kernel ") && line.contains("Linux version")
    })?;
    // Logged after `ready`, at the kernel's error level.
    let oom = wait_for_line(&rsyslog, "OOM kill", |line| {
        line.starts_with("kern.err kernel ") && line.contains("Killed process") && line.contains("(sh)")
    })?;
    let hello = wait_for_line(&rsyslog, "container line", |line| {
        line.starts_with("daemon.info hello ") && line.ends_with("hello from a container")
    })?;
    eprintln!("relayed: {banner:?}, {oom:?}, {hello:?}");

    // keel's own lines keep their facility (daemon by default) and APP-NAME.
    let keel_lines = rsyslog.lines().into_iter().filter(|line| line.contains(" keel ")).count();
    ensure!(
        rsyslog.lines().iter().any(|line| line.starts_with("daemon.") && line.contains(" keel ")),
        "no keel line in facility daemon among {keel_lines}"
    );
    vm.power_down()?;
    let status = vm.wait_for_exit(timeouts::SHUTDOWN)?;
    ensure!(status.success(), "QEMU exited with {status}");
    Ok(())
}
