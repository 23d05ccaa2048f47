//! `docker logs` after a reboot: a container's json-file logs live on the data partition, so the API of the next
//! boot (through a forwarded TCP port) still shows the previous boot's lines, before the new boot's.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use keel_qemu_tests::artifacts;
use keel_qemu_tests::config_drive::{self, DriveSpec};
use keel_qemu_tests::disk::DiskFormat;
use keel_qemu_tests::timeouts;
use keel_qemu_tests::vm::{Vm, VmConfig};

/// `docker -H tcp://127.0.0.1:<port> logs <name>`'s stdout once it has `lines` lines (retried until `timeout`).
fn logs_with(port: u16, config_dir: &std::path::Path, name: &str, lines: usize) -> Result<String> {
    let deadline = Instant::now() + timeouts::CONTAINER;
    loop {
        let output = Command::new("docker")
            .arg("-H")
            .arg(format!("tcp://127.0.0.1:{port}"))
            .args(["logs", name])
            .env("DOCKER_CONFIG", config_dir)
            .output()?;
        let out = String::from_utf8_lossy(&output.stdout).into_owned();
        if output.status.success() && out.lines().count() >= lines {
            return Ok(out);
        }
        let err = String::from_utf8_lossy(&output.stderr);
        ensure!(Instant::now() < deadline, "docker logs {name} never had {lines} lines: {out}{err}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn docker_logs_shows_the_previous_boots_lines_after_a_reboot() -> Result<()> {
    let name = "docker_logs_shows_the_previous_boots_lines_after_a_reboot";
    let scratch = tempfile::tempdir()?;
    // One line a boot, naming the boot: the kernel's random boot id.
    let user_data = "[api]\ntcp = \"0.0.0.0:2375\"\n\n[containers.boots]\nimage = \"keel/busybox\"\n\
                     command = [\"sh\", \"-c\", \"echo boot $(cat /proc/sys/kernel/random/boot_id); exec sleep 100000\"]\n";
    let spec = DriveSpec { user_data, meta_data: None, format: "vfat", layout: "nocloud" };
    let drive = config_drive::build(scratch.path(), name, &spec)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let artifacts = artifacts::ensure_built()?;
    // Without -no-reboot, QEMU starts the guest again on the same disks (the overlay with the data partition).
    let config =
        VmConfig::pvh(name, &artifacts).forward_tcp(port, 2375).disk_file(&drive, DiskFormat::Raw).no_reboot(false);
    let vm = Vm::start(config)?;
    vm.wait_for_ready(timeouts::PVH_READY)?;
    vm.wait_for("boots: started", timeouts::CONTAINER)?;
    let docker_config = scratch.path().join("docker-config");
    std::fs::create_dir_all(&docker_config)?;
    let first = logs_with(port, &docker_config, "boots", 1)?;
    ensure!(first.lines().count() == 1 && first.starts_with("boot "), "first boot's logs: {first:?}");

    vm.ctrl_alt_del()?;
    vm.wait_for("keel: unmounted /var", timeouts::SHUTDOWN)?;
    vm.wait_for("keel: rebooting", timeouts::SHUTDOWN)?;
    vm.wait_for_ready(timeouts::PVH_READY)?;
    vm.wait_for("boots: started", timeouts::CONTAINER)?;
    let both = logs_with(port, &docker_config, "boots", 2)?;
    let lines: Vec<&str> = both.lines().collect();
    ensure!(lines.len() == 2, "two boots, one line each: {both:?}");
    ensure!(format!("{}\n", lines[0]) == first, "the first boot's line comes first: {both:?} after {first:?}");
    ensure!(lines[1].starts_with("boot ") && lines[1] != lines[0], "the second boot has its own id: {both:?}");
    vm.power_down()?;
    vm.wait_for_exit(timeouts::SHUTDOWN)?;
    Ok(())
}
