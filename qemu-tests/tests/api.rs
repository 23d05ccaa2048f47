//! The stock `docker` CLI against a booted keel through a forwarded port: `[api] tcp` makes PID 1 serve the API
//! on the guest's network, and `docker ps`, `events`, `logs`, `version` and `stats` answer for the declared
//! containers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use keel_qemu_tests::artifacts;
use keel_qemu_tests::config_drive::{self, DriveSpec};
use keel_qemu_tests::disk::DiskFormat;
use keel_qemu_tests::timeouts;
use keel_qemu_tests::vm::{Vm, VmConfig};

/// `docker -H tcp://127.0.0.1:<port> args`: (success, stdout, stderr).
fn docker(port: u16, config_dir: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let output = Command::new("docker")
        .arg("-H")
        .arg(format!("tcp://127.0.0.1:{port}"))
        .args(args)
        .env("DOCKER_CONFIG", config_dir)
        .output()
        .expect("the docker CLI runs");
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (output.status.success(), text(&output.stdout), text(&output.stderr))
}

#[test]
fn the_docker_cli_reaches_pid_1s_api_over_a_forwarded_port() -> Result<()> {
    let name = "the_docker_cli_reaches_pid_1s_api_over_a_forwarded_port";
    let scratch = tempfile::tempdir()?;
    let user_data = "[api]\ntcp = \"0.0.0.0:2375\"\n\n[containers.hello]\nimage = \"keel/busybox\"\n\
                     command = [\"sh\", \"-c\", \"while true; do echo hello from keel; sleep 1; done\"]\n";
    let spec = DriveSpec { user_data, meta_data: None, format: "vfat", layout: "nocloud" };
    let drive = config_drive::build(scratch.path(), name, &spec)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let artifacts = artifacts::ensure_built()?;
    let config = VmConfig::pvh(name, &artifacts).network().forward_tcp(port, 2375).disk_file(&drive, DiskFormat::Raw);
    let vm = Vm::start(config)?;
    vm.wait_for_ready(timeouts::PVH_READY)?;
    vm.wait_for("hello: started", timeouts::CONTAINER)?;
    let console_has_warning = vm.wait_for_anywhere("API on tcp://0.0.0.0:2375 too", timeouts::CONTAINER).is_ok();
    let docker_config = scratch.path().join("docker-config");
    std::fs::create_dir_all(&docker_config)?;
    let deadline = Instant::now() + timeouts::CONTAINER;
    let listing = loop {
        let (ok, out, err) = docker(port, &docker_config, &["ps", "--format", "{{.Names}} {{.State}} {{.Image}}"]);
        if ok && out.contains("hello running") {
            break out;
        }
        ensure!(Instant::now() < deadline, "docker ps never listed hello running: {out}{err}");
        std::thread::sleep(Duration::from_millis(500));
    };
    ensure!(listing.trim() == "hello running keel/busybox", "docker ps: {listing}");
    // The supervisor's events since the boot: hello made and started once.
    let until = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs().to_string();
    let (ok, out, err) = docker(
        port,
        &docker_config,
        &["events", "--since", "1", "--until", &until, "--filter", "container=hello", "--format", "{{.Action}}"],
    );
    ensure!(ok && out.lines().take(2).collect::<Vec<_>>() == ["create", "start"], "docker events: {out}{err}");
    let (ok, out, err) = docker(port, &docker_config, &["logs", "--tail", "1", "hello"]);
    ensure!(ok && out.trim() == "hello from keel", "docker logs: {out}{err}");
    let (ok, out, err) =
        docker(port, &docker_config, &["version", "--format", "{{.Server.Os}}/{{.Server.APIVersion}}"]);
    ensure!(ok && out.trim() == "linux/1.44", "docker version: {out}{err}");
    // stats from the container's cgroup2 files, which the guest's kernel fills (the host's hybrid cgroup cannot).
    let (ok, out, err) =
        docker(port, &docker_config, &["stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}} {{.PIDs}}"]);
    ensure!(ok && out.starts_with("hello "), "docker stats: {out}{err}");
    let fields: Vec<&str> = out.split_whitespace().collect();
    ensure!(fields.get(1).is_some_and(|usage| !usage.starts_with("0B")), "docker stats shows no memory use: {out}");
    ensure!(fields.last().is_some_and(|pids| pids.parse::<u32>().is_ok_and(|pids| pids >= 1)), "no pids: {out}");
    ensure!(console_has_warning, "no warning about the unauthenticated TCP API on the console:\n{}", vm.console());
    vm.power_down()?;
    vm.wait_for_exit(timeouts::SHUTDOWN)?;
    ensure!(vm.console().contains("keel: shutdown: closing the API: "), "the API step is not timed:\n{}", vm.console());
    Ok(())
}
