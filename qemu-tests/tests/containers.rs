//! Containers under the real kernel, where cgroup limits work: an OOM kill reported as Docker does while the host
//! and the other containers go on, a fork bomb stopped at `pids.max`, `cpu.max` capping a busy loop, and a
//! crash-looping `always` container backing off as Docker does, and root in a container failing to read the host's
//! disk through a node it made (the device cgroup), and Docker's process defaults (rlimits, cpu.weight,
//! no_new_privs, oom_score_adj). Images come preloaded in the OS image; a `watch` container reads the cgroup files through a read-only bind of /sys/fs/cgroup and reports on the console.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use anyhow::{ensure, Context, Result};
use keel_qemu_tests::artifacts;
use keel_qemu_tests::config_drive::{self, DriveSpec};
use keel_qemu_tests::disk::DiskFormat;
use keel_qemu_tests::timeouts;
use keel_qemu_tests::vm::{Vm, VmConfig};

fn boot_with_user_data(name: &str, scratch: &Path, user_data: &str) -> Result<Vm> {
    let artifacts = artifacts::ensure_built()?;
    let spec = DriveSpec { user_data, meta_data: None, format: "vfat", layout: "nocloud" };
    let drive = config_drive::build(scratch, name, &spec)?;
    let vm = Vm::start(VmConfig::pvh(name, &artifacts).disk_file(&drive, DiskFormat::Raw))?;
    vm.wait_for_ready(timeouts::PVH_READY)?;
    Ok(vm)
}

/// The number after `prefix` in `line`, e.g. `tick 7` → 7.
fn number_after(line: &str, prefix: &str) -> Option<u64> {
    let rest = &line[line.find(prefix)? + prefix.len()..];
    rest.split(|c: char| !c.is_ascii_digit()).find(|part| !part.is_empty())?.parse().ok()
}

#[test]
fn oom_kill_fork_bomb_and_crash_loop_leave_the_host_and_other_containers_running() -> Result<()> {
    let scratch = tempfile::tempdir()?;
    let user_data = r#"
[containers.steady]
image = "keel/busybox"
command = ["sh", "-c", "i=0; while true; do i=$((i+1)); echo tick $i; sleep 1; done"]
init = true

[containers.hog]
image = "keel/busybox"
command = ["sh", "-c", "echo filling memory; head -c 300m /dev/zero | tail"]
memory = "32m"

[containers.bomb]
image = "keel/busybox"
# ash dies when a fork fails, so the forking happens in a subshell and the container's shell stays, then execs
# (no fork) into a sleep: the bomb's processes are alive while the watcher reads its cgroup.
command = ["sh", "-c", "(for i in $(seq 1 200); do sleep 600 & done) 2>/dev/null; echo forked; exec sleep 600"]
pids_limit = 20
init = true

[containers.watch]
image = "keel/busybox"
command = ["sh", "-c", "while true; do sleep 2; echo bomb pids $(cat /cg/keel/bomb/pids.current) $(cat /cg/keel/bomb/pids.events); done"]
volumes = ["/sys/fs/cgroup:/cg:ro"]
init = true

[containers.crash]
image = "keel/busybox"
command = ["sh", "-c", "exit 3"]
restart = "always"
"#;
    let vm = boot_with_user_data("containers_limits_and_crash_loop", scratch.path(), user_data)?;

    // The memory hog: killed by the kernel inside its cgroup, reported as Docker reports it.
    vm.wait_for("keel: hog: exited with 137 (OOM killed)", timeouts::CONTAINER)?;
    let tick = vm.wait_for("steady | tick", timeouts::CONTAINER)?;
    let after_oom = number_after(&tick, "tick").context("tick number")?;
    let later = vm.wait_for(&format!("steady | tick {}", after_oom + 2), timeouts::CONTAINER)?;
    ensure!(later.contains("tick"), "steady stopped after the OOM kill");

    // The fork bomb: it holds close to pids.max processes and no more, and the kernel counted the refused forks.
    // Read after the bomb has forked, while it still runs: a bomb that died would show 0 processes.
    // "forked" comes early, possibly before the lines waited for above.
    vm.wait_for_anywhere("bomb | forked", timeouts::CONTAINER)?;
    let report = vm.wait_for("watch | bomb pids", timeouts::CONTAINER)?;
    let current = number_after(&report, "bomb pids").context("pids.current")?;
    let refused = number_after(&report, " max").context("pids.events max")?;
    // pids.max 20 = keel's init + the shell + the sleeps (the forking subshell has exited, freeing one).
    ensure!((15..=20).contains(&current), "pids.current {current} is not just under pids.max 20: {report}");
    ensure!(refused > 0, "no fork was refused: {report}");
    ensure!(!vm.console().contains("keel: bomb: exited"), "the bomb died instead of being held:\n{}", vm.console());

    // The crash loop: Docker's backoff, 100 ms doubling. It has been looping since boot, so its lines are read
    // from the whole console rather than after the checks above.
    vm.wait_for_anywhere("keel: crash: restarting in 1.6s (restart 5)", timeouts::CONTAINER)?;
    let console = vm.console();
    let delays: Vec<&str> =
        console.lines().filter_map(|line| line.split("keel: crash: restarting in ").nth(1)).take(5).collect();
    let expected =
        ["100ms (restart 1)", "200ms (restart 2)", "400ms (restart 3)", "800ms (restart 4)", "1.6s (restart 5)"];
    ensure!(delays == expected, "backoff {delays:?}, expected {expected:?}");

    // Still responsive: the power button ends everything cleanly, bounded by the stop timeouts.
    vm.power_down()?;
    vm.wait_for_exit(timeouts::SHUTDOWN)?;
    let console = vm.console();
    ensure!(console.contains("keel: unmounted /var"), "no clean shutdown:\n{console}");
    ensure!(!console.contains("Kernel panic"), "kernel panic:\n{console}");
    Ok(())
}

#[test]
fn cpu_max_caps_a_busy_loop() -> Result<()> {
    let scratch = tempfile::tempdir()?;
    let user_data = r#"
[containers.busy]
image = "keel/busybox"
command = ["sh", "-c", "while :; do :; done"]
cpus = 0.5

[containers.watch]
image = "keel/busybox"
command = ["sh", "-c", "sleep 3; a=$(grep usage_usec /cg/keel/busy/cpu.stat | cut -d' ' -f2); sleep 10; b=$(grep usage_usec /cg/keel/busy/cpu.stat | cut -d' ' -f2); echo busy share percent $(( (b - a) / 100000 ))"]
volumes = ["/sys/fs/cgroup:/cg:ro"]
"#;
    let vm = boot_with_user_data("cpu_max_caps_a_busy_loop", scratch.path(), user_data)?;
    let line = vm.wait_for("watch | busy share percent", timeouts::CONTAINER)?;
    let percent = number_after(&line, "percent").context("share")?;
    // cpus = 0.5 is cpu.max "50000 100000": half a CPU, within ±20 % of it.
    ensure!((40..=60).contains(&percent), "busy loop got {percent} % of a CPU, not 50 ± 10: {line}");
    Ok(())
}

#[test]
fn a_root_container_cannot_read_the_host_disk() -> Result<()> {
    let scratch = tempfile::tempdir()?;
    // The raw-disk attack: root (with Docker's CAP_MKNOD) reads the host disk's numbers from sysfs, creates a
    // node for it and reads its first sector. The device cgroup lets the node be made and refuses the open.
    let user_data = r#"
[containers.steady]
image = "keel/busybox"
command = ["sh", "-c", "i=0; while true; do i=$((i+1)); echo tick $i; sleep 1; done"]
init = true

[containers.raw]
image = "keel/busybox"
command = ["sh", "-c", "d=$(cat /sys/class/block/vda/dev); echo vda is $d; mknod /tmp/vda b ${d%:*} ${d#*:} && echo mknod done; head -c 512 /tmp/vda > /tmp/sector 2> /tmp/error; echo read status $? bytes $(wc -c < /tmp/sector): $(cat /tmp/error)"]
"#;
    let vm = boot_with_user_data("a_root_container_cannot_read_the_host_disk", scratch.path(), user_data)?;
    vm.wait_for_anywhere("raw | vda is", timeouts::CONTAINER)?;
    vm.wait_for_anywhere("raw | mknod done", timeouts::CONTAINER)?;
    let line = vm.wait_for_anywhere("raw | read status", timeouts::CONTAINER)?;
    ensure!(line.contains("read status 1 bytes 0:"), "the container read the host disk: {line}");
    ensure!(line.contains("Operation not permitted"), "not refused by the device cgroup: {line}");

    // The host goes on: the other container still ticks, and the power button ends everything cleanly.
    let tick = vm.wait_for("steady | tick", timeouts::CONTAINER)?;
    let now = number_after(&tick, "tick").context("tick number")?;
    vm.wait_for(&format!("steady | tick {}", now + 2), timeouts::CONTAINER)?;
    vm.power_down()?;
    vm.wait_for_exit(timeouts::SHUTDOWN)?;
    let console = vm.console();
    ensure!(console.contains("keel: unmounted /var"), "no clean shutdown:\n{console}");
    ensure!(!console.contains("Kernel panic"), "kernel panic:\n{console}");
    Ok(())
}

/// What `docker run` gives a container's process, checked under PID 1 (which, unlike a development host's
/// supervisor, may raise hard limits): containerd's rlimits rather than PID 1's own (`nofile` 1024:4096),
/// `cpu_shares = 1024` as cgroup2's default weight 100 (runc ≥ 1.3.2), `no_new_privs` off, `oom_score_adj` 0.
#[test]
fn docker_process_defaults_under_pid_1() -> Result<()> {
    let scratch = tempfile::tempdir()?;
    let user_data = r#"
[containers.defaults]
image = "keel/busybox"
cpu_shares = 1024
command = ["sh", "-c", "l() { grep \"^$1\" /proc/self/limits | awk '{ print $(NF-2), $(NF-1) }'; }; echo \"limits nofile $(l 'Max open files') nproc $(l 'Max processes') core $(l 'Max core file size')\"; echo \"weight $(cat /sys/fs/cgroup/cpu.weight) nnp $(awk '/^NoNewPrivs/ { print $2 }' /proc/self/status) oom_score_adj $(cat /proc/self/oom_score_adj)\""]
"#;
    let vm = boot_with_user_data("docker_process_defaults_under_pid_1", scratch.path(), user_data)?;
    let limits = vm.wait_for("defaults | limits", timeouts::CONTAINER)?;
    ensure!(
        limits.ends_with("limits nofile 1048576 1048576 nproc unlimited unlimited core unlimited unlimited"),
        "not containerd's rlimits: {limits}"
    );
    let rest = vm.wait_for("defaults | weight", timeouts::CONTAINER)?;
    ensure!(rest.ends_with("weight 100 nnp 0 oom_score_adj 0"), "{rest:?}");
    Ok(())
}
