//! Docker's OOM reporting under the real kernel's memory cgroup: a container whose child process is killed by the
//! OOM killer keeps running, and `docker inspect` shows `OOMKilled: true` and `docker events` an `oom` at once, not
//! only when the container exits; a restart sets `OOMKilled` back to false.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use keel_qemu_tests::artifacts;
use keel_qemu_tests::config_drive::{self, DriveSpec};
use keel_qemu_tests::disk::DiskFormat;
use keel_qemu_tests::timeouts;
use keel_qemu_tests::vm::{Vm, VmConfig};

fn docker(port: u16, config: &std::path::Path, args: &[&str]) -> Result<String> {
    let output = Command::new("docker")
        .arg("-H")
        .arg(format!("tcp://127.0.0.1:{port}"))
        .args(args)
        .env("DOCKER_CONFIG", config)
        .output()?;
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    ensure!(output.status.success(), "docker {args:?}: {}", text(&output.stderr));
    Ok(text(&output.stdout))
}

#[test]
fn an_oom_kill_of_a_child_sets_oomkilled_and_sends_an_oom_event_while_the_container_runs() -> Result<()> {
    let name = "an_oom_kill_of_a_child_sets_oomkilled_and_sends_an_oom_event_while_the_container_runs";
    let scratch = tempfile::tempdir()?;
    // The child shell doubles a string until the 16 MiB cgroup's OOM killer takes it; its parent, the container's
    // init, goes on. A restart (the writable layer is kept) only sleeps.
    let user_data =
        "[api]\ntcp = \"0.0.0.0:2375\"\n\n[containers.partial]\nimage = \"keel/busybox\"\nmemory = \"16m\"\n\
                     command = [\"sh\", \"-c\", \"[ -e /ran ] && exec sleep 100000; touch /ran; sleep 2; \
                     sh -c 'x=0123456789abcdef; while true; do x=$x$x; done'; echo survived; exec sleep 100000\"]\n";
    let spec = DriveSpec { user_data, meta_data: None, format: "vfat", layout: "nocloud" };
    let drive = config_drive::build(scratch.path(), name, &spec)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let artifacts = artifacts::ensure_built()?;
    let config = VmConfig::pvh(name, &artifacts).network().forward_tcp(port, 2375).disk_file(&drive, DiskFormat::Raw);
    let vm = Vm::start(config)?;
    vm.wait_for_ready(timeouts::PVH_READY)?;
    vm.wait_for_anywhere("partial | survived", timeouts::CONTAINER)?;
    let docker_config = scratch.path().join("docker-config");
    std::fs::create_dir_all(&docker_config)?;

    let deadline = Instant::now() + timeouts::CONTAINER;
    let state = loop {
        let state = docker(
            port,
            &docker_config,
            &["inspect", "partial", "--format", "{{.State.Running}} {{.State.OOMKilled}}"],
        );
        match state {
            Ok(state) if state.trim() == "true true" => break state,
            _ if Instant::now() > deadline => break state.unwrap_or_default(),
            _ => std::thread::sleep(Duration::from_millis(500)),
        }
    };
    ensure!(state.trim() == "true true", "docker inspect after the OOM kill: {state:?}; console:\n{}", vm.console());
    // Whole seconds, and the guest's clock may run a little ahead of the host's.
    let until = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() + 2;
    let events = docker(
        port,
        &docker_config,
        &[
            "events",
            "--since",
            "1",
            "--until",
            &until.to_string(),
            "--filter",
            "container=partial",
            "--format",
            "{{.Action}}",
        ],
    )?;
    let actions: Vec<&str> = events.lines().collect();
    ensure!(actions.starts_with(&["create", "start", "oom"]) && !actions.contains(&"die"), "events: {actions:?}");

    docker(port, &docker_config, &["restart", "-t", "1", "partial"])?;
    let state =
        docker(port, &docker_config, &["inspect", "partial", "--format", "{{.State.Running}} {{.State.OOMKilled}}"])?;
    ensure!(state.trim() == "true false", "after a restart: {state:?}");
    vm.power_down()?;
    vm.wait_for_exit(timeouts::SHUTDOWN)?;
    Ok(())
}
