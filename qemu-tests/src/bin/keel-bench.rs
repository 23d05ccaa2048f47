//! `make bench`: boots keel and the Debian 12 + systemd + Docker peer three times each under the same kernel and
//! QEMU (PVH, TCG), both with the demo container, then one memory boot each and keel's log-flood boot, and prints
//! one table of both sides.
//!
//! Exit codes: 0 figures printed, 1 a build, boot or measurement failed (the message says which step).

use std::process::ExitCode;

use anyhow::{Context, Result};
use keel_qemu_tests::bench::flood::{self, FLOOD_SECONDS};
use keel_qemu_tests::bench::memory::{keel_breakdown, mib, peer_breakdown};
use keel_qemu_tests::bench::workload::{Workload, DEMO_USER_DATA, HELLO, LOGGERS, LOGGER_CMD, METER};
use keel_qemu_tests::bench::{keel, peer, root_files};
use keel_qemu_tests::timeline::Timeline;
use keel_qemu_tests::{artifacts, disk};

const BOOTS: usize = 3;
const MIB: f64 = 1024.0 * 1024.0;

/// One row of the table: a figure, keel's value, its target and the peer's value.
struct Row {
    figure: &'static str,
    keel: String,
    target: &'static str,
    peer: String,
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
    let kernel = artifacts.kernel_description().context("the kernel the image was built with")?;
    let pid1 = artifacts::workspace_dir().join("target/x86_64-unknown-linux-musl/release/keel");
    let pid1_bytes = std::fs::metadata(&pid1).with_context(|| format!("the size of {}", pid1.display()))?.len();
    let workload = Workload::load()?;
    let scratch = tempfile::tempdir().context("creating a temp dir")?;
    let peer_image = peer::ensure_image(&artifacts, &workload).context("the peer image")?;

    // keel and the peer alternate, so that a change in the machine's load falls on both sides alike.
    let drive = keel::demo_drive(scratch.path(), &workload).context("the demo config drive")?;
    let mut keel_boots = Vec::new();
    let mut peer_boots = Vec::new();
    for n in 1..=BOOTS {
        eprintln!("keel-bench: keel boot {n}/{BOOTS}");
        keel_boots.push(
            keel::boot(&artifacts, &drive, &format!("bench-keel-{n}")).with_context(|| format!("keel boot {n}"))?,
        );
        eprintln!("keel-bench: peer boot {n}/{BOOTS}");
        peer_boots.push(
            peer::boot(&artifacts, &peer_image, &format!("bench-peer-{n}"))
                .with_context(|| format!("peer boot {n}"))?,
        );
    }
    eprintln!("keel-bench: memory boots ({LOGGERS} loggers beside {HELLO})");
    let keel_memory_boot = keel::memory(&artifacts, scratch.path(), &workload).context("keel's memory boot")?;
    let keel_memory = keel_breakdown(&keel_memory_boot.samples);
    let peer_memory_boot = peer::memory(&artifacts, &peer_image).context("the peer's memory boot")?;
    let peer_memory = peer_breakdown(&peer_memory_boot.samples);
    eprintln!("keel-bench: shutdown boot ({} containers that ignore SIGTERM)", keel::DEAF);
    let keel_deaf =
        keel::shutdown_with_deaf_containers(&artifacts, scratch.path()).map_err(|error| format!("{error:#}"));
    eprintln!("keel-bench: keel's log-flood boot ({FLOOD_SECONDS} s of /dev/zero on a container's stdout)");
    let flood = flood::run(&artifacts, scratch.path(), "bench-keel-flood").context("keel's log-flood boot")?;
    let flood_seconds = flood.flood_wall.as_secs_f64();

    let keel_timelines: Vec<&Timeline> = keel_boots.iter().map(|b| &b.timeline).collect();
    let k = |f: &dyn Fn(&Timeline) -> Option<u64>, what: &str| figure(&keel_timelines, f, "keel", what);
    let p = |f: &dyn Fn(&Timeline) -> Option<u64>, what: &str| {
        figure(&peer_boots.iter().collect::<Vec<_>>(), f, "peer", what)
    };
    let started = |t: &Timeline| t.ms_of("container-started", HELLO);
    let output = |t: &Timeline| t.ms_of("container-output", HELLO);
    let network = |t: &Timeline| t.ms_of("network", "eth0");
    let wall: Vec<u64> = keel_boots.iter().map(|b| b.wall_ms).collect();

    let scratch_qcow2 = |name: &str| scratch.path().join(name);
    let keel_qcow2 = scratch_qcow2("keel.qcow2");
    disk::convert_to_qcow2(&artifacts.image, &keel_qcow2)?;
    let peer_qcow2 = scratch_qcow2("peer.qcow2");
    disk::convert_to_qcow2(&peer_image.root, &peer_qcow2)?;
    let keel_root = root_files::keel_root_files(&artifacts.image, scratch.path()).context("keel's root files")?;
    let used = |path: &std::path::Path| -> Result<String> {
        let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        Ok(format!("{:.1} MiB (of {:.0} MiB)", disk::allocated_bytes(path)? as f64 / MIB, len as f64 / MIB))
    };

    let rows = [
        Row {
            figure: "kernel start → first container running",
            keel: k(&started, "container-started")?,
            target: "",
            peer: p(&started, "container-started")?,
        },
        Row {
            figure: "kernel start → its first output line",
            keel: k(&output, "container-output")?,
            target: "",
            peer: p(&output, "container-output")?,
        },
        Row {
            figure: "kernel start → /init",
            keel: k(&|t| t.ms("init-started"), "init-started")?,
            target: "",
            peer: p(&|t| t.ms("init-started"), "init-started")?,
        },
        Row {
            figure: "/init → root mounted",
            keel: k(&|t| t.between("init-started", "root-mounted"), "root-mounted")?,
            target: "",
            peer: p(&|t| t.between("init-started", "root-mounted"), "root-mounted")?,
        },
        Row {
            figure: "root mounted → ready",
            keel: k(&|t| t.between("root-mounted", "ready"), "ready")?,
            target: "",
            peer: p(&|t| t.between("root-mounted", "ready"), "ready")?,
        },
        Row {
            figure: "/init → ready",
            keel: k(&|t| t.between("init-started", "ready"), "ready")?,
            target: "≤ 900 ms",
            peer: p(&|t| t.between("init-started", "ready"), "ready")?,
        },
        Row {
            figure: "kernel start → root mounted (stage 2 starts)",
            keel: k(&|t| t.ms("root-mounted"), "root-mounted")?,
            target: "",
            peer: p(&|t| t.ms("root-mounted"), "root-mounted")?,
        },
        Row {
            figure: "kernel start → ready",
            keel: k(&|t| t.ms("ready"), "ready")?,
            target: "",
            peer: p(&|t| t.ms("ready"), "ready")?,
        },
        Row {
            figure: "/init → network configured (DHCP, QEMU user net)",
            keel: k(&|t| network(t)?.checked_sub(t.ms("init-started")?), "network")?,
            target: "",
            peer: p(&|t| network(t)?.checked_sub(t.ms("init-started")?), "network")?,
        },
        Row {
            figure: "link up → DHCP lease applied",
            keel: k(&|t| t.between("link", "network"), "link")?,
            target: "≤ 300 ms",
            peer: String::new(),
        },
        Row { figure: "QEMU start → ready line (host wall)", keel: ms_stats(&wall), target: "", peer: String::new() },
        Row {
            figure: "memory: PSS of the host's processes (below)",
            keel: mib(keel_memory.total_kib),
            target: "≤ 12 MiB",
            peer: mib(peer_memory.total_kib),
        },
        Row {
            figure: "PID 1 peak RSS (VmHWM) after a 60 s /dev/zero flood",
            keel: mib(flood.pid1_hwm_kib),
            target: "< 16 MiB",
            peer: String::new(),
        },
        Row {
            figure: "syslog relay during the flood (TCP to the host)",
            keel: format!(
                "{:.0} lines/s, {:.1} MiB/s",
                flood.relayed_flood_frames as f64 / flood_seconds,
                flood.relayed_flood_bytes as f64 / MIB / flood_seconds
            ),
            target: "",
            peer: String::new(),
        },
        Row {
            figure: "raw image, used (of its length)",
            keel: used(&artifacts.image)?,
            target: "≤ 40 MiB",
            peer: used(&peer_image.root)?,
        },
        Row {
            figure: "qcow2 image, used",
            keel: format!("{:.1} MiB", disk::allocated_bytes(&keel_qcow2)? as f64 / MIB),
            target: "≤ 40 MiB",
            peer: format!("{:.1} MiB", disk::allocated_bytes(&peer_qcow2)? as f64 / MIB),
        },
        Row {
            figure: "root fs files, userland (apparent / allocated)",
            keel: format!("{:.1} / {:.1} MiB", keel_root.0 as f64 / MIB, keel_root.1 as f64 / MIB),
            target: "",
            peer: format!(
                "{:.0} / {:.0} MiB, {} packages",
                peer_image.rootfs_apparent as f64 / MIB,
                peer_image.rootfs_allocated as f64 / MIB,
                peer_image.packages
            ),
        },
        Row {
            figure: "Ctrl-Alt-Del → reset, hello + 20 loggers (+ keel's meter) running, exit on SIGTERM (host wall)",
            keel: shutdown_figure(&keel_memory_boot.shutdown),
            target: "",
            peer: shutdown_figure(&peer_memory_boot.shutdown),
        },
        Row {
            figure: "Ctrl-Alt-Del → reset, 20 containers ignoring SIGTERM (stop_timeout 10 s; host wall)",
            keel: shutdown_figure(&keel_deaf),
            target: "≤ shutdown_timeout (15 s) + 10 s",
            peer: String::new(),
        },
        Row {
            figure: "PID 1 binary (static musl, stripped)",
            keel: format!("{pid1_bytes} bytes ({:.2} MiB)", pid1_bytes as f64 / MIB),
            target: "",
            peer: String::new(),
        },
    ];
    print_table(&rows);
    println!();
    println!(
        "keel: Debian kernel {kernel}, PVH `-kernel vmlinux`, QEMU q35/TCG/1 vCPU/512 MiB, qcow2 overlay over keel.img on \
         virtio-blk, user-net NIC; keel's initramfs (the keel binary as /init) → erofs root slot a; demo config drive ({DEMO_USER_DATA}, NoCloud vfat) attached; `{HELLO}` from the preloaded keel/busybox \
         (imported at boot); DHCP on eth0; figures from PID 1's `keel: <ms>ms <stage>` console lines \
         (CLOCK_BOOTTIME): container-started when the start returned after the command's exec, container-output \
         when PID 1's log reader read the first line."
    );
    println!(
        "peer: same kernel, QEMU q35/TCG/1 vCPU/512 MiB, virtio-blk, user-net NIC; busybox initramfs (/init shell \
         script: insmod of the disk, ext4, NIC and Docker modules, mount /dev/vda ext4 rw, switch_root) → Debian 12 \
         minbase (mmdebstrap) + {}, apparmor, ifupdown+dhclient (DHCP on eth0), serial-getty and getty-static masked; \
         prepared once by a boot that `docker load`s the same busybox image (as docker-archive) and runs `{HELLO}` \
         with `docker run -d --restart always --memory 32m --init keel/busybox sh -c <the demo's script>`, so that \
         dockerd restarts it at boot; each boot from a fresh qcow2 overlay; figures printed on its console after the \
         boot from systemd's monotonic stamps (ready = `Startup finished`, network = networking.service active), \
         Docker's StartedAt and the json-file time of the first line of this boot (wall clock → uptime, offset read \
         to ±50 ms), /init and root mounted from the initramfs's /proc/uptime.",
        peer_image.versions
    );
    println!(
        "images: keel.img is the whole disk (ESP with kernel and initramfs, two erofs root slots, data partition); \
         the peer's root.img is its ext4 root alone, as built (its kernel and initramfs come from QEMU's -kernel and \
         -initrd). Root fs files: keel's slot a extracted from keel.img (PID 1, its late modules, the preloaded \
         image); the peer's tree as mmdebstrap left it, before the bench's payload (no kernel modules: those are in \
         its initramfs)."
    );
    println!(
        "memory: one boot per side with `{HELLO}` and {LOGGERS} loggers (`sh -c '{LOGGER_CMD}'`, memory 32m, init), \
         PSS from /proc/<pid>/smaps_rollup after all run ≥ 30 s; keel starts them from its config drive and reads \
         PSS through the `{METER}` container (host /proc bound read-only, SYS_PTRACE); the peer's loggers were \
         created in the preparation boot and are started with one `docker start` after boot, PSS read by its report \
         unit."
    );
    println!(
        "  keel: {} (PID 1 and all its children; not counted: {}; nor the containers' own processes)",
        keel_memory.summary(),
        keel_memory.excluded()
    );
    println!(
        "  peer: {} (not counted: {}; nor the containers' own processes)",
        peer_memory.summary(),
        peer_memory.excluded()
    );
    println!(
        "flood: keel only; `{}` writes /dev/zero to stdout for {FLOOD_SECONDS} s (`timeout {FLOOD_SECONDS} cat \
         /dev/zero`) beside `{}` ticking once a second, relayed over TCP to a counting receiver on the host \
         (10.0.2.2, QEMU user net); PID 1's VmHWM from /proc/1/status read by a container (host /proc bound \
         read-only) after the flood; relay figures: octet-counted frames (≤ 8 KiB each) received while the flood ran \
         ({:.0} s host wall), over that time. During it the console showed {} ticks and {} flood lines and dropped {} \
         lines; syslog got {} ticks.",
        flood::FLOOD,
        flood::TICK,
        flood_seconds,
        flood.ticks_on_console.len(),
        flood.flood_lines_on_console,
        flood.console_dropped,
        flood.relayed_ticks
    );
    Ok(())
}

/// `<wall> ms (guest <ms> ms)`, or why there is no figure.
fn shutdown_figure(shutdown: &Result<keel::Shutdown, String>) -> String {
    match shutdown {
        Ok(keel::Shutdown { wall_ms, guest_ms: Some(guest_ms) }) => format!("{wall_ms} ms (guest {guest_ms} ms)"),
        Ok(keel::Shutdown { wall_ms, guest_ms: None }) => format!("{wall_ms} ms"),
        // The first line: a VM error carries the console's last lines after it.
        Err(error) => format!("n/a: {}", error.lines().next().unwrap_or_default()),
    }
}

/// `median ms [min–max]` of `f` over the boots; an error names the side and the missing stage.
fn figure(timelines: &[&Timeline], f: &dyn Fn(&Timeline) -> Option<u64>, side: &str, what: &str) -> Result<String> {
    let values: Vec<u64> = timelines
        .iter()
        .enumerate()
        .map(|(n, t)| f(t).with_context(|| format!("{side} boot {}: no `{what}` in its timeline", n + 1)))
        .collect::<Result<_>>()?;
    Ok(ms_stats(&values))
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

fn print_table(rows: &[Row]) {
    let header = ["figure", "keel: median [min–max]", "target", "peer (same run): median [min–max]"];
    let cells: Vec<[&str; 4]> = rows.iter().map(|r| [r.figure, r.keel.as_str(), r.target, r.peer.as_str()]).collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| cells.iter().map(|c| c[i]).chain([header[i]]).map(|s| s.chars().count()).max().unwrap_or(0))
        .collect();
    let line = |cells: [&str; 4]| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        println!("| {} |", padded.join(" | "));
    };
    println!("{BOOTS} boots per side, alternating, PVH under TCG; times in guest ms since kernel start\n");
    line(header);
    let rules: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    line([&rules[0], &rules[1], &rules[2], &rules[3]]);
    for row in cells {
        line(row);
    }
}
