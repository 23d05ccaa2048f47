//! `make bench`: boots keel three times (PVH, TCG), then prints boot-stage medians and the image size.
//!
//! Exit codes: 0 figures printed, 1 a boot or measurement failed (the message says which step).

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use keel_qemu_tests::config_drive::{self, DriveSpec};
use keel_qemu_tests::disk::DiskFormat;
use keel_qemu_tests::timeline::Timeline;
use keel_qemu_tests::vm::{Vm, VmConfig};
use keel_qemu_tests::{artifacts, disk, timeouts};

const BOOTS: usize = 3;
const MIB: f64 = 1024.0 * 1024.0;

/// One row of the table: a figure, keel's value, its target and the peer host's value.
struct Row {
    figure: &'static str,
    keel: String,
    target: &'static str,
    peer: &'static str,
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keel-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let artifacts = artifacts::ensure_built().context("locating the keel artifacts")?;
    let mut boots = Vec::new();
    for n in 1..=BOOTS {
        eprintln!("keel-bench: boot {n}/{BOOTS}");
        let config = VmConfig::pvh(format!("bench-{n}"), &artifacts).network();
        boots.push(boot_once(&config).with_context(|| format!("boot {n}"))?);
    }
    let stage = |f: &dyn Fn(&Timeline) -> Option<u64>, what: &str| -> Result<Vec<u64>> {
        boots.iter().map(|b| f(&b.timeline).with_context(|| format!("no {what} in the timeline"))).collect()
    };
    let init = stage(&|t| t.ms("init-started"), "`init-started`")?;
    let root = stage(&|t| t.between("init-started", "root-mounted"), "`init-started`..`root-mounted`")?;
    let ready_after_root = stage(&|t| t.between("root-mounted", "ready"), "`root-mounted`..`ready`")?;
    let init_to_ready = stage(&|t| t.between("init-started", "ready"), "`init-started`..`ready`")?;
    let root_abs = stage(&|t| t.ms("root-mounted"), "`root-mounted`")?;
    let ready_abs = stage(&|t| t.ms("ready"), "`ready`")?;
    let wall: Vec<u64> = boots.iter().map(|b| b.wall_ms).collect();
    let init_to_network = stage(&|t| t.between("init-started", "network"), "`init-started`..`network`")?;
    let link_to_network = stage(&|t| t.between("link", "network"), "`link`..`network`")?;

    let scratch = tempfile::tempdir().context("creating a temp dir for the qcow2 copy")?;
    eprintln!("keel-bench: boot with {RSS_CONTAINERS} containers");
    let pid1_rss_kib = pid1_rss_with_containers(&artifacts, scratch.path()).context("PID 1 RSS with containers")?;
    let qcow2 = scratch.path().join("keel.qcow2");
    disk::convert_to_qcow2(&artifacts.image, &qcow2)?;
    let raw_used = disk::allocated_bytes(&artifacts.image)?;
    let qcow2_used = disk::allocated_bytes(&qcow2)?;
    let raw_len = std::fs::metadata(&artifacts.image).map(|m| m.len()).unwrap_or(0);

    let rows = [
        Row { figure: "kernel start → /init", keel: ms_stats(&init), target: "", peer: "" },
        Row { figure: "/init → root mounted", keel: ms_stats(&root), target: "", peer: "" },
        Row { figure: "root mounted → ready", keel: ms_stats(&ready_after_root), target: "", peer: "" },
        Row { figure: "/init → ready", keel: ms_stats(&init_to_ready), target: "≤ 900 ms", peer: "" },
        Row {
            figure: "kernel start → root mounted (stage 2 starts)",
            keel: ms_stats(&root_abs),
            target: "",
            peer: "4990 ms (stage-1 init execs /sbin/init)",
        },
        Row {
            figure: "kernel start → ready",
            keel: ms_stats(&ready_abs),
            target: "",
            peer: "34120 ms (systemd `Startup finished`)",
        },
        Row {
            figure: "/init → network configured (DHCP, QEMU user net)",
            keel: ms_stats(&init_to_network),
            target: "",
            peer: "",
        },
        Row {
            figure: "link up → DHCP lease applied", keel: ms_stats(&link_to_network), target: "≤ 300 ms", peer: ""
        },
        Row { figure: "QEMU start → ready line (host wall)", keel: ms_stats(&wall), target: "", peer: "" },
        Row {
            figure: "PID 1 RSS, 20 containers running (VmRSS)",
            keel: format!("{:.1} MiB", pid1_rss_kib as f64 / 1024.0),
            target: "≤ 12 MiB",
            peer: "11.6 MiB systemd + 148 MiB dockerd, containerd, shim",
        },
        Row {
            figure: "raw image, used (of its length)",
            keel: format!("{:.1} MiB (of {:.0} MiB)", raw_used as f64 / MIB, raw_len as f64 / MIB),
            target: "≤ 40 MiB",
            peer: "401 MiB (root fs files, userland only)",
        },
        Row {
            figure: "qcow2 image, used",
            keel: format!("{:.1} MiB", qcow2_used as f64 / MIB),
            target: "≤ 40 MiB",
            peer: "",
        },
    ];
    print_table(&rows, artifacts.image.as_path());
    Ok(())
}

/// Containers running while PID 1's memory is read.
const RSS_CONTAINERS: usize = 20;

/// Boots with [`RSS_CONTAINERS`] idle containers plus one that reads the host's `/proc/1/status` through a
/// read-only bind of the host's /proc, and returns PID 1's VmRSS in KiB once all of them run.
fn pid1_rss_with_containers(artifacts: &artifacts::Artifacts, scratch: &Path) -> Result<u64> {
    let mut user_data = String::new();
    for n in 1..=RSS_CONTAINERS {
        user_data.push_str(&format!(
            "[containers.idle{n}]\nimage = \"keel/busybox\"\ncommand = [\"sleep\", \"3600\"]\ninit = true\n\n"
        ));
    }
    let reader = "while true; do sleep 5; echo pid1 $(grep VmRSS /hostproc/1/status); done";
    user_data.push_str(&format!(
        "[containers.meter]\nimage = \"keel/busybox\"\ncommand = [\"sh\", \"-c\", \"{reader}\"]\n\
         volumes = [\"/proc:/hostproc:ro\"]\ninit = true\n"
    ));
    let spec = DriveSpec { user_data: &user_data, meta_data: None, format: "vfat", layout: "nocloud" };
    let drive = config_drive::build(scratch, "rss", &spec)?;
    let vm = Vm::start(VmConfig::pvh("bench-rss", artifacts).disk_file(&drive, DiskFormat::Raw))?;
    vm.wait_for_ready(timeouts::PVH_READY)?;
    // Workers start containers on their own threads, so the start lines come in any order.
    let deadline = Instant::now() + timeouts::CONTAINER;
    while (1..=RSS_CONTAINERS).any(|n| !vm.console().contains(&format!("keel: idle{n}: started"))) {
        anyhow::ensure!(Instant::now() < deadline, "not all {RSS_CONTAINERS} containers started");
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    // The first report may predate the last start; the second comes after all of them.
    vm.wait_for("keel: meter: pid1 VmRSS", timeouts::CONTAINER)?;
    let line = vm.wait_for("keel: meter: pid1 VmRSS", timeouts::CONTAINER)?;
    let kib = line
        .split_whitespace()
        .find_map(|word| word.parse::<u64>().ok())
        .with_context(|| format!("no number in {line:?}"))?;
    vm.power_down()?;
    vm.wait_for_exit(timeouts::SHUTDOWN)?;
    Ok(kib)
}

/// What one boot yields: the parsed timeline and the host wall time from QEMU start to the ready line.
struct Boot {
    timeline: Timeline,
    wall_ms: u64,
}

fn boot_once(config: &VmConfig) -> Result<Boot> {
    let started = Instant::now();
    let vm = Vm::start(config.clone())?;
    vm.wait_for_ready(timeouts::PVH_READY)?;
    let wall_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    vm.wait_for("network eth0", timeouts::PVH_READY)?;
    vm.power_down()?;
    vm.wait_for_exit(timeouts::SHUTDOWN)?;
    Ok(Boot { timeline: Timeline::parse(&vm.console()), wall_ms })
}

/// `median ms [min–max]`.
fn ms_stats(values: &[u64]) -> String {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    match (sorted.first(), sorted.last()) {
        (Some(min), Some(max)) => format!("{} ms [{min}–{max}]", sorted[sorted.len() / 2]),
        _ => "n/a".to_owned(),
    }
}

fn print_table(rows: &[Row], image: &Path) {
    let header = ["figure", "keel: median [min–max]", "target", "peer (from notes)"];
    let cells: Vec<[&str; 4]> = rows.iter().map(|r| [r.figure, r.keel.as_str(), r.target, r.peer]).collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| cells.iter().map(|c| c[i]).chain([header[i]]).map(|s| s.chars().count()).max().unwrap_or(0))
        .collect();
    let line = |cells: [&str; 4]| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        println!("| {} |", padded.join(" | "));
    };
    println!("keel boot figures: {BOOTS} PVH boots under TCG, guest CLOCK_BOOTTIME; image {}", image.display());
    println!("peer: Debian 12 + systemd + Docker, same kernel and QEMU (notes/peer-systemd-docker.md)\n");
    line(header);
    let rules: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    line([&rules[0], &rules[1], &rules[2], &rules[3]]);
    for row in cells {
        line(row);
    }
}
