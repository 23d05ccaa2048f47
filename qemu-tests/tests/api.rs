//! The stock `docker` CLI against a booted keel through a forwarded port: `[api] tcp` makes PID 1 serve the API
//! on the guest's network, and `docker ps` (with `-a --filter`), `info`, `inspect`, `events`, `logs` (with `-f
//! --tail`), `version`, `stats`, `top`, `restart`, `stop -t`, `kill -s`, `images`, `pull` (from the Debian
//! registry on the host, reached as 10.0.2.2) and `system df` answer for the declared containers, each with its
//! output checked.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use keel_fixtures::images::Layout;
use keel_fixtures::registry::Registry;
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
    // An image on the host's registry, which the guest reaches as 10.0.2.2 (QEMU's user network).
    let registry = Registry::start(&scratch.path().join("registry"));
    let layout = Layout::create(&scratch.path().join("build"));
    layout.new_image("v1");
    layout.add_layer("v1", |rootfs| std::fs::write(rootfs.join("hello.txt"), "hello from the registry\n").unwrap());
    layout.push("v1", &registry.host(), "keel/app:v1", None);
    let guest_registry = registry.host().replace("127.0.0.1", "10.0.2.2");
    let user_data = format!(
        "[api]\ntcp = \"0.0.0.0:2375\"\n\n[registries.\"{guest_registry}\"]\ninsecure = true\n\n\
         [containers.hello]\nimage = \"keel/busybox\"\n\
         command = [\"sh\", \"-c\", \"while true; do echo hello from keel; sleep 1; done\"]\n\n\
         [containers.idle]\nimage = \"keel/busybox\"\ncommand = [\"sleep\", \"100000\"]\nrestart = \"no\"\n"
    );
    let spec = DriveSpec { user_data: &user_data, meta_data: None, format: "vfat", layout: "nocloud" };
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
    ensure!(listing.lines().any(|line| line == "hello running keel/busybox"), "docker ps: {listing}");
    // The supervisor's events since the boot: hello made and started once.
    // Whole seconds, and the guest's clock may run a little ahead of the host's: until two seconds from now, so
    // that events of this very second are in (docker events waits until then).
    let until = (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() + 2).to_string();
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
    more_commands(port, &docker_config, &guest_registry)?;
    vm.power_down()?;
    vm.wait_for_exit(timeouts::SHUTDOWN)?;
    ensure!(vm.console().contains("keel: shutdown: closing the API: "), "the API step is not timed:\n{}", vm.console());
    Ok(())
}

/// The rest of the CLI's commands against the booted host.
fn more_commands(port: u16, config: &std::path::Path, registry: &str) -> Result<()> {
    let run = |args: &[&str]| -> Result<String> {
        let (ok, out, err) = docker(port, config, args);
        ensure!(ok, "docker {args:?} failed: {out}{err}");
        Ok(out)
    };
    let out = run(&["info", "--format", "{{.Containers}} {{.OperatingSystem}} {{.LoggingDriver}}"])?;
    ensure!(out.trim().starts_with("2 keel "), "docker info: {out}");
    let out = run(&["inspect", "hello", "--format", "{{.State.Running}} {{.Config.Image}} {{.Name}}"])?;
    ensure!(out.trim() == "true keel/busybox /hello", "docker inspect: {out}");
    let out = run(&["top", "idle"])?;
    ensure!(out.lines().next().is_some_and(|head| head.contains("PID")) && out.contains("sleep 100000"), "top: {out}");

    // stop -t with a container whose PID 1 (sleep) ignores SIGTERM: SIGKILL after the timeout, exit 137.
    let started = Instant::now();
    run(&["stop", "-t", "1", "idle"])?;
    ensure!(started.elapsed() >= Duration::from_secs(1), "stop -t 1 returned after {:?}", started.elapsed());
    let out =
        run(&["ps", "-a", "--filter", "name=idle", "--filter", "status=exited", "--format", "{{.Names}} {{.Status}}"])?;
    ensure!(out.trim().starts_with("idle Exited (137)"), "docker ps -a --filter: {out}");
    run(&["start", "idle"])?;
    run(&["kill", "-s", "SIGKILL", "idle"])?;
    let out = run(&["inspect", "idle", "--format", "{{.State.Status}} {{.State.ExitCode}}"])?;
    ensure!(out.trim() == "exited 137", "after kill -s SIGKILL: {out}");

    let before = run(&["inspect", "hello", "--format", "{{.State.StartedAt}}"])?;
    run(&["restart", "-t", "1", "hello"])?;
    let after = run(&["inspect", "hello", "--format", "{{.State.StartedAt}} {{.State.Running}}"])?;
    ensure!(after.trim().ends_with(" true") && !after.starts_with(before.trim()), "restart: {before} -> {after}");

    // logs -f --tail 1: the last line at once, then new ones as hello prints them each second.
    let mut follower = Command::new("docker")
        .arg("-H")
        .arg(format!("tcp://127.0.0.1:{port}"))
        .args(["logs", "-f", "--tail", "1", "hello"])
        .env("DOCKER_CONFIG", config)
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let stdout = follower.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        std::io::BufReader::new(stdout).lines().take(3).collect::<Result<Vec<_>, _>>()
    });
    let deadline = Instant::now() + timeouts::CONTAINER;
    while !reader.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = follower.kill();
    let _ = follower.wait();
    let lines = reader.join().map_err(|_| anyhow::anyhow!("the log reader panicked"))??;
    ensure!(lines.len() == 3 && lines.iter().all(|line| line == "hello from keel"), "logs -f --tail 1: {lines:?}");

    let image = format!("{registry}/keel/app:v1");
    let out = run(&["pull", &image])?;
    ensure!(out.contains(&format!("Status: Downloaded newer image for {image}")), "docker pull: {out}");
    let out = run(&["images", "--format", "{{.Repository}}:{{.Tag}}"])?;
    ensure!(out.lines().any(|line| line == image) && out.contains("keel/busybox:latest"), "docker images: {out}");
    let out = run(&["system", "df", "--format", "{{.Type}} {{.TotalCount}}"])?;
    ensure!(out.lines().any(|line| line == "Images 2") && out.lines().any(|line| line == "Containers 2"), "df: {out}");
    Ok(())
}
