//! keel's own endpoints on a booted keel through a forwarded port: `GET /keel/v1/config` returns the config
//! drive's user-data, status shows its generation, and `POST /keel/v1/reboot` and `/keel/v1/poweroff` answer 202
//! and take the machine down through PID 1's one shutdown path (QEMU sees the guest reboot, or exits on the
//! power-off).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use keel_qemu_tests::artifacts;
use keel_qemu_tests::config_drive::{self, DriveSpec};
use keel_qemu_tests::disk::DiskFormat;
use keel_qemu_tests::timeouts;
use keel_qemu_tests::vm::{Vm, VmConfig};

const USER_DATA: &str = "[api]\ntcp = \"0.0.0.0:2375\"\n";

/// One request to the forwarded API: (status, body).
fn request(port: u16, method: &str, path: &str) -> Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(stream, "{method} {path} HTTP/1.1\r\nHost: keel\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    let (head, body) = answer.split_once("\r\n\r\n").context("no HTTP head")?;
    let status = head.split_whitespace().nth(1).and_then(|code| code.parse().ok()).context("no status")?;
    Ok((status, body.to_owned()))
}

/// Boots keel with the API on a forwarded port, waits for the API to answer; (vm, port).
fn boot(name: &str, scratch: &std::path::Path) -> Result<(Vm, u16)> {
    let spec = DriveSpec { user_data: USER_DATA, meta_data: None, format: "vfat", layout: "nocloud" };
    let drive = config_drive::build(scratch, name, &spec)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let artifacts = artifacts::ensure_built()?;
    // A reboot makes QEMU exit rather than boot again, so that the test sees it.
    let config = VmConfig::pvh(name, &artifacts)
        .network()
        .forward_tcp(port, 2375)
        .disk_file(&drive, DiskFormat::Raw)
        .no_reboot(true);
    let vm = Vm::start(config)?;
    vm.wait_for_ready(timeouts::PVH_READY)?;
    let deadline = Instant::now() + timeouts::CONTAINER;
    while !request(port, "GET", "/_ping").is_ok_and(|(status, _)| status == 200) {
        ensure!(Instant::now() < deadline, "the API never answered on the forwarded port:\n{}", vm.console());
        std::thread::sleep(Duration::from_millis(500));
    }
    Ok((vm, port))
}

#[test]
fn the_api_reboots_the_machine_through_pid_1s_shutdown() -> Result<()> {
    let scratch = tempfile::tempdir()?;
    let (vm, port) = boot("the_api_reboots_the_machine_through_pid_1s_shutdown", scratch.path())?;
    let (status, config) = request(port, "GET", "/keel/v1/config")?;
    ensure!(status == 200 && config == USER_DATA, "GET /keel/v1/config: {status} {config:?}");
    let (status, body) = request(port, "GET", "/keel/v1/status")?;
    let keel_status: serde_json::Value = serde_json::from_str(&body)?;
    ensure!(status == 200 && keel_status["config"]["generation"].as_u64().is_some_and(|n| n >= 1), "{body}");
    ensure!(keel_status["config"]["errors"] == serde_json::json!([]), "{body}");

    let (status, body) = request(port, "POST", "/keel/v1/reboot")?;
    ensure!(status == 202 && body == r#"{"message":"rebooting"}"#, "POST /keel/v1/reboot: {status} {body}");
    vm.wait_for_exit(timeouts::SHUTDOWN).context("QEMU should exit when the guest reboots")?;
    let console = vm.console();
    ensure!(console.contains("shutdown: reboot (asked through the API)"), "no shutdown line:\n{console}");
    ensure!(console.contains("keel: shutdown: closing the API: "), "the shutdown path was not taken:\n{console}");
    ensure!(console.contains("reboot: Restarting system"), "the kernel did not restart:\n{console}");
    Ok(())
}

#[test]
fn the_api_powers_the_machine_off_through_pid_1s_shutdown() -> Result<()> {
    let scratch = tempfile::tempdir()?;
    let (vm, port) = boot("the_api_powers_the_machine_off_through_pid_1s_shutdown", scratch.path())?;
    let (status, body) = request(port, "POST", "/keel/v1/poweroff")?;
    ensure!(status == 202 && body == r#"{"message":"powering off"}"#, "POST /keel/v1/poweroff: {status} {body}");
    let exit = vm.wait_for_exit(timeouts::SHUTDOWN).context("QEMU should exit when the guest powers off")?;
    let console = vm.console();
    ensure!(exit.success(), "QEMU exited with {exit}:\n{console}");
    ensure!(console.contains("shutdown: power off (asked through the API)"), "no shutdown line:\n{console}");
    ensure!(console.contains("reboot: Power down"), "the kernel did not power down:\n{console}");
    ensure!(!console.contains("Restarting system"), "it rebooted instead:\n{console}");
    Ok(())
}
