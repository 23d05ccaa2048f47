//! keel's side of `make bench`: boots with the demo config drive and the memory boot with logging containers.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};

use super::memory::{parse_sample, Sample};
use super::workload::{Workload, HELLO, IMAGE, LOGGERS, METER};
use crate::artifacts::Artifacts;
use crate::config_drive::{self, DriveSpec};
use crate::disk::DiskFormat;
use crate::timeline::Timeline;
use crate::timeouts;
use crate::vm::{Vm, VmConfig};

/// The text of `line` after the output prefix of container `name` (`<name> | <line>`, PID 1's console format for
/// container output), if it is one of that container's lines.
pub fn container_output<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    line.strip_prefix(name)?.strip_prefix(crate::timeline::CONTAINER_SEPARATOR)
}

/// One boot: the timeline and the host wall time from QEMU start to the ready line.
pub struct KeelBoot {
    pub timeline: Timeline,
    pub wall_ms: u64,
}

/// Writes the demo's config drive (NoCloud, vfat, as `make run` attaches) into `dir`.
pub fn demo_drive(dir: &Path, workload: &Workload) -> Result<std::path::PathBuf> {
    let spec = DriveSpec { user_data: &workload.demo_user_data, meta_data: None, format: "vfat", layout: "nocloud" };
    Ok(config_drive::build(dir, "demo", &spec)?)
}

/// Boots with the demo config drive and a NIC until `hello`'s first output line and the DHCP lease are marked.
pub fn boot(artifacts: &Artifacts, drive: &Path, name: &str) -> Result<KeelBoot> {
    let started = Instant::now();
    let vm = Vm::start(VmConfig::pvh(name, artifacts).network().disk_file(drive, DiskFormat::Raw))?;
    vm.wait_for_ready(timeouts::PVH_READY)?;
    let wall_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let timeline = wait_for_stages(&vm, &[("container-output", HELLO), ("network", "eth0")], timeouts::CONTAINER)?;
    vm.power_down()?;
    vm.wait_for_exit(timeouts::SHUTDOWN)?;
    Ok(KeelBoot { timeline, wall_ms })
}

/// Polls the console until every (stage, first word of detail) is in the timeline; marks arrive in any order.
fn wait_for_stages(vm: &Vm, stages: &[(&str, &str)], timeout: Duration) -> Result<Timeline> {
    let deadline = Instant::now() + timeout;
    loop {
        let timeline = Timeline::parse(&vm.console());
        let missing: Vec<_> = stages.iter().filter(|(stage, word)| timeline.ms_of(stage, word).is_none()).collect();
        if missing.is_empty() {
            return Ok(timeline);
        }
        ensure!(Instant::now() < deadline, "no {missing:?} in keel's timeline after {timeout:?}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// What a memory boot measured: the meter's samples, and how long the power button took to power the host off
/// with its containers running.
pub struct MemoryBoot {
    pub samples: Vec<Sample>,
    /// An error (as text) leaves the other figures standing.
    pub shutdown: Result<Shutdown, String>,
}

/// From Ctrl-Alt-Del to the VM's exit, with every container still running.
pub struct Shutdown {
    /// Host wall time from the key press to QEMU's exit.
    pub wall_ms: u64,
    /// keel's own figure (`keel: rebooting (<s> s after the request)`), guest time; `None` for the peer.
    pub guest_ms: Option<u64>,
}

/// How long a bench VM may take from the power button to its exit (the peer stops dockerd's containers first).
const BENCH_SHUTDOWN: Duration = Duration::from_secs(300);

/// Presses Ctrl-Alt-Del and times the way down (every container stopped, filesystems unmounted, reset; QEMU runs
/// with `-no-reboot`), up to [`BENCH_SHUTDOWN`]. The same key for both sides: the peer's minimal Debian has no
/// ACPI power-button handling, and both turn the key into an orderly reboot.
pub fn time_shutdown(vm: &Vm) -> Result<Shutdown> {
    let asked = Instant::now();
    vm.ctrl_alt_del()?;
    let status = vm.wait_for_exit(BENCH_SHUTDOWN)?;
    let wall_ms = u64::try_from(asked.elapsed().as_millis()).unwrap_or(u64::MAX);
    ensure!(status.success(), "{} exited with {status} after Ctrl-Alt-Del", vm.name());
    let guest_ms = vm.console().lines().find_map(|line| {
        let seconds: f64 = line.split("keel: rebooting (").nth(1)?.split(' ').next()?.parse().ok()?;
        Some((seconds * 1000.0) as u64)
    });
    Ok(Shutdown { wall_ms, guest_ms })
}

/// Containers whose PID 1 is `sleep` (no handler: SIGTERM is ignored), with Docker's default stop timeout.
pub const DEAF: usize = 20;

/// Boots with [`DEAF`] containers that ignore SIGTERM (defaults: `stop_timeout` 10 s, `shutdown_timeout` 15 s) and
/// times Ctrl-Alt-Del once all run.
pub fn shutdown_with_deaf_containers(artifacts: &Artifacts, scratch: &Path) -> Result<Shutdown> {
    let mut user_data = String::new();
    for n in 1..=DEAF {
        user_data.push_str(&format!("[containers.deaf{n}]\nimage = \"{IMAGE}\"\ncommand = [\"sleep\", \"100000\"]\n"));
    }
    let spec = DriveSpec { user_data: &user_data, meta_data: None, format: "vfat", layout: "nocloud" };
    let drive = config_drive::build(scratch, "deaf", &spec)?;
    let vm = Vm::start(VmConfig::pvh("bench-keel-deaf", artifacts).network().disk_file(&drive, DiskFormat::Raw))?;
    vm.wait_for_ready(timeouts::PVH_READY)?;
    let names: Vec<String> = (1..=DEAF).map(|n| format!("deaf{n}")).collect();
    wait_until_started(&vm, &names)?;
    time_shutdown(&vm)
}

/// Waits until every container of `names` has its `container-started` mark.
fn wait_until_started(vm: &Vm, names: &[String]) -> Result<()> {
    let deadline = Instant::now() + timeouts::CONTAINER;
    loop {
        let timeline = Timeline::parse(&vm.console());
        if names.iter().all(|name| timeline.ms_of("container-started", name).is_some()) {
            return Ok(());
        }
        ensure!(Instant::now() < deadline, "not all {} containers started", names.len());
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Boots with `hello`, [`LOGGERS`] loggers and the meter; once all run, takes the meter's second full report
/// (the first may have begun before the last container started), then times Ctrl-Alt-Del.
pub fn memory(artifacts: &Artifacts, scratch: &Path, workload: &Workload) -> Result<MemoryBoot> {
    let user_data = workload.keel_memory_user_data();
    let spec = DriveSpec { user_data: &user_data, meta_data: None, format: "vfat", layout: "nocloud" };
    let drive = config_drive::build(scratch, "memory", &spec)?;
    let vm = Vm::start(VmConfig::pvh("bench-keel-memory", artifacts).network().disk_file(&drive, DiskFormat::Raw))?;
    vm.wait_for_ready(timeouts::PVH_READY)?;
    let names: Vec<String> =
        std::iter::once(HELLO.to_owned()).chain((1..=LOGGERS).map(|n| format!("log{n}"))).collect();
    wait_until_started(&vm, &names)?;
    for marker in ["pss-end", "pss-begin"] {
        let what = format!("the meter's `{marker}`");
        vm.wait_for_line(&what, timeouts::CONTAINER, |line| container_output(line, METER) == Some(marker))?;
    }
    let mut samples = Vec::new();
    loop {
        let line = vm.wait_for_line("the meter's report", timeouts::CONTAINER, |line| {
            container_output(line, METER).is_some_and(|text| text == "pss-end" || text.starts_with("pss "))
        })?;
        match container_output(&line, METER).and_then(|text| text.strip_prefix("pss ")) {
            Some(words) => samples.push(parse_sample(words, true).with_context(|| format!("bad line {line:?}"))?),
            None => break,
        }
    }
    let shutdown = time_shutdown(&vm).map_err(|error| format!("{error:#}"));
    ensure!(samples.iter().any(|s| s.pid == 1), "the meter's report has no PID 1");
    Ok(MemoryBoot { samples, shutdown })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_container_output() {
        assert_eq!(container_output("meter | pss 1 0 9000 0::/ init", METER), Some("pss 1 0 9000 0::/ init"));
        assert_eq!(container_output("meter2 | pss", METER), None);
        assert_eq!(container_output("keel: meter: pss", METER), None);
        assert_eq!(container_output("keel: 12ms ready", METER), None);
    }
}
