//! keel's side of `make bench`: boots with the demo config drive and the memory boot with logging containers.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};

use super::memory::{parse_sample, Sample};
use super::workload::{Workload, HELLO, LOGGERS, METER};
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

/// Boots with `hello`, [`LOGGERS`] loggers and the meter; once all run, takes the meter's second full report
/// (the first may have begun before the last container started) and returns its samples.
pub fn memory(artifacts: &Artifacts, scratch: &Path, workload: &Workload) -> Result<Vec<Sample>> {
    let user_data = workload.keel_memory_user_data();
    let spec = DriveSpec { user_data: &user_data, meta_data: None, format: "vfat", layout: "nocloud" };
    let drive = config_drive::build(scratch, "memory", &spec)?;
    let vm = Vm::start(VmConfig::pvh("bench-keel-memory", artifacts).network().disk_file(&drive, DiskFormat::Raw))?;
    vm.wait_for_ready(timeouts::PVH_READY)?;
    let names: Vec<String> =
        std::iter::once(HELLO.to_owned()).chain((1..=LOGGERS).map(|n| format!("log{n}"))).collect();
    let deadline = Instant::now() + timeouts::CONTAINER;
    loop {
        let timeline = Timeline::parse(&vm.console());
        if names.iter().all(|name| timeline.ms_of("container-started", name).is_some()) {
            break;
        }
        ensure!(Instant::now() < deadline, "not all {} containers started", names.len());
        std::thread::sleep(Duration::from_millis(250));
    }
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
    vm.power_down()?;
    vm.wait_for_exit(timeouts::SHUTDOWN)?;
    ensure!(samples.iter().any(|s| s.pid == 1), "the meter's report has no PID 1");
    Ok(samples)
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
