//! The peer host: builds (once per recipe) and prepares the Debian 12 + systemd + Docker image, then boots it
//! under the same kernel and QEMU settings as keel and reads its figures from its console.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use sha2::{Digest as _, Sha256};

use super::keel::{time_shutdown, MemoryBoot};
use super::memory::{parse_sample, Sample};
use super::workload::Workload;
use crate::artifacts::{workspace_dir, Artifacts};
use crate::disk::DiskFormat;
use crate::timeline::Timeline;
use crate::vm::{Boot, Vm, VmConfig};

/// Prefix of the peer's timeline and report lines (keel's timeline format otherwise).
pub const PREFIX: &str = "peer: ";
/// The builder, and the files it puts into the image.
const SCRIPT: &str = "scripts/make-peer-image.sh";
const FILES: &str = "scripts/peer";
/// The builder's outputs; all present means built.
const OUTPUTS: [&str; 6] =
    ["root.img", "initrd.img", "cmdline", "rootfs-apparent-bytes", "rootfs-allocated-bytes", "packages"];
/// The preparation boot: Docker's first start, `docker load`, 21 `docker create`s (~2 min guest time idle).
const PREPARE_TIMEOUT: Duration = Duration::from_secs(1200);
/// A measured boot to its report (~45 s guest time idle; TCG on a shared machine can take several times that).
const BOOT_TIMEOUT: Duration = Duration::from_secs(900);
/// The memory boot: a boot, 20 `docker start`s, 30 s of settling, the report.
const MEMORY_TIMEOUT: Duration = Duration::from_secs(1500);
/// The guest's own shutdown after preparing (stops Docker and its container).
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(300);

/// A built and prepared peer image.
pub struct PeerImage {
    /// `build/bench/peer/<recipe key>/`.
    pub dir: PathBuf,
    /// The ext4 root as built (before the preparation boot).
    pub root: PathBuf,
    /// The root after the preparation boot; measured boots run on qcow2 overlays over it.
    pub prepared: PathBuf,
    pub initrd: PathBuf,
    pub cmdline: String,
    /// Userland as installed (before the bench's payload): apparent and allocated bytes.
    pub rootfs_apparent: u64,
    pub rootfs_allocated: u64,
    pub packages: usize,
    /// `docker.io` and `systemd` versions, for the description line.
    pub versions: String,
}

/// Builds the image with `scripts/make-peer-image.sh` unless this recipe's build is cached, then prepares it with
/// one boot unless that is cached too. The key covers the script, its files, the containers' commands, keel's
/// busybox image and the kernel: a change to any of them rebuilds.
pub fn ensure_image(artifacts: &Artifacts, workload: &Workload) -> Result<PeerImage> {
    let kernel_dir = kernel_cache_dir(artifacts)?;
    let busybox = artifacts.build_dir.join("images/busybox.tar");
    let containers_sh = workload.peer_containers_sh();
    let key = recipe_key(&kernel_dir, &busybox, &containers_sh)?;
    let parent = artifacts.build_dir.join("bench/peer");
    let dir = parent.join(&key);
    remove_stale(&parent, &key);
    if !OUTPUTS.iter().all(|name| dir.join(name).exists()) {
        eprintln!("keel-bench: building the peer image in {} (mmdebstrap, a few minutes)", dir.display());
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let containers_path = dir.join("containers.sh");
        std::fs::write(&containers_path, &containers_sh).context("writing containers.sh")?;
        let status = Command::new(workspace_dir().join(SCRIPT))
            .arg(&dir)
            .arg(&kernel_dir)
            .arg(&busybox)
            .arg(&containers_path)
            // The table is the bench's stdout; the builder's progress goes with the bench's own to stderr.
            .stdout(Stdio::from(std::io::stderr()))
            .status()
            .with_context(|| format!("running {SCRIPT}"))?;
        ensure!(status.success(), "{SCRIPT} failed ({status})");
        let _ = std::fs::remove_file(dir.join("prepared.img"));
    }
    let read = |name: &str| -> Result<String> {
        std::fs::read_to_string(dir.join(name)).with_context(|| format!("reading {name} in {}", dir.display()))
    };
    let number = |name: &str| -> Result<u64> { read(name)?.trim().parse().with_context(|| format!("parsing {name}")) };
    let package_list = read("packages")?;
    let version_of = |package: &str| {
        package_list
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{package} ")).map(|v| format!("{package} {v}")))
            .unwrap_or_else(|| format!("{package} ?"))
    };
    let image = PeerImage {
        root: dir.join("root.img"),
        prepared: dir.join("prepared.img"),
        initrd: dir.join("initrd.img"),
        cmdline: read("cmdline")?.trim().to_owned(),
        rootfs_apparent: number("rootfs-apparent-bytes")?,
        rootfs_allocated: number("rootfs-allocated-bytes")?,
        packages: package_list.lines().count(),
        versions: format!("{}, {}, {}", version_of("systemd"), version_of("docker.io"), version_of("containerd")),
        dir,
    };
    if !image.prepared.exists() {
        prepare(artifacts, &image)?;
    }
    Ok(image)
}

/// The preparation boot (not measured) on a copy of the root: `docker load`, `hello` run once, the loggers
/// created, the report armed; the guest powers itself off. Only a clean power-off makes the copy `prepared.img`.
fn prepare(artifacts: &Artifacts, image: &PeerImage) -> Result<()> {
    eprintln!("keel-bench: preparing the peer image (one boot, not measured)");
    let partial = image.dir.join("prepared.img.partial");
    // A sparse copy: the 2 GiB file holds ~0.5 GiB of data.
    let status = Command::new("cp").arg("--sparse=always").arg(&image.root).arg(&partial).status()?;
    ensure!(status.success(), "copying {} ({status})", image.root.display());
    let config = vm_config("bench-peer-prepare", artifacts, image).disk_file(&partial, DiskFormat::Raw);
    let vm = Vm::start(config)?;
    let line = vm.wait_for("peer: prepared", PREPARE_TIMEOUT)?;
    eprintln!("keel-bench: {}", &line[line.find(PREFIX).unwrap_or(0)..]);
    vm.wait_for_exit(SHUTDOWN_TIMEOUT)?;
    std::fs::rename(&partial, &image.prepared).context("keeping the prepared image")?;
    Ok(())
}

/// One measured boot from a fresh overlay over the prepared image; returns the peer's timeline.
pub fn boot(artifacts: &Artifacts, image: &PeerImage, name: &str) -> Result<Timeline> {
    let vm = Vm::start(vm_config(name, artifacts, image).disk_overlay(&image.prepared))?;
    vm.wait_for("peer: done", BOOT_TIMEOUT)?;
    // Dropping the VM kills QEMU: the overlay is thrown away, so there is nothing to shut down cleanly.
    Ok(Timeline::parse_prefixed(&vm.console(), PREFIX))
}

/// The memory boot: `hello` plus the loggers running, then PSS of every process from the report.
pub fn memory(artifacts: &Artifacts, image: &PeerImage) -> Result<MemoryBoot> {
    let started = Instant::now();
    let config =
        vm_config("bench-peer-memory", artifacts, image).disk_overlay(&image.prepared).kernel_arg("peer.memory");
    let vm = Vm::start(config)?;
    vm.wait_for("peer: done", MEMORY_TIMEOUT)?;
    let marker = format!("{PREFIX}pss ");
    let samples: Vec<Sample> = vm
        .console()
        .lines()
        .filter_map(|line| line.find(&marker).map(|at| &line[at + marker.len()..]))
        .filter_map(|words| parse_sample(words, false))
        .collect();
    ensure!(!samples.is_empty(), "the peer's memory report has no `pss` lines (after {:?})", started.elapsed());
    // Its loggers and hello still run: systemd stops dockerd, which stops them (they exit on SIGTERM).
    let shutdown = time_shutdown(&vm).map_err(|error| format!("{error:#}"));
    Ok(MemoryBoot { samples, shutdown })
}

/// Same kernel, machine, memory, CPU count, disk bus and NIC as keel's PVH VMs; only the initramfs, the command
/// line and the disk are the peer's.
fn vm_config(name: &str, artifacts: &Artifacts, image: &PeerImage) -> VmConfig {
    let boot =
        Boot::Pvh { kernel: artifacts.vmlinux.clone(), initrd: image.initrd.clone(), cmdline: image.cmdline.clone() };
    VmConfig::new(name, boot).network().log_dir(artifacts.log_dir())
}

/// keel-build's extracted kernel package whose `vmlinux` is the one keel boots.
fn kernel_cache_dir(artifacts: &Artifacts) -> Result<PathBuf> {
    let cache = artifacts.build_dir.join("cache");
    let booted =
        std::fs::read(&artifacts.vmlinux).with_context(|| format!("reading {}", artifacts.vmlinux.display()))?;
    for entry in std::fs::read_dir(&cache).with_context(|| format!("listing {}", cache.display()))? {
        let path = entry?.path();
        let mut vmlinux = path.clone().into_os_string();
        vmlinux.push(".vmlinux");
        let vmlinux = PathBuf::from(vmlinux);
        if path.is_dir() && vmlinux.exists() && std::fs::read(&vmlinux).is_ok_and(|bytes| bytes == booted) {
            return Ok(path);
        }
    }
    bail!("no kernel in {} matches {} (run `make image`)", cache.display(), artifacts.vmlinux.display())
}

fn recipe_key(kernel_dir: &Path, busybox: &Path, containers_sh: &str) -> Result<String> {
    let mut hasher = Sha256::new();
    let root = workspace_dir();
    let mut files = vec![root.join(SCRIPT)];
    let mut extra: Vec<PathBuf> =
        std::fs::read_dir(root.join(FILES))?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
    extra.sort();
    files.extend(extra);
    files.push(busybox.to_path_buf());
    for file in files {
        hasher.update(file.file_name().map(|n| n.as_encoded_bytes()).unwrap_or_default());
        hasher.update(std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?);
    }
    hasher.update(containers_sh.as_bytes());
    hasher.update(kernel_dir.file_name().map(|n| n.as_encoded_bytes()).unwrap_or_default());
    Ok(hasher.finalize().iter().take(8).map(|byte| format!("{byte:02x}")).collect())
}

/// Older recipes' images (each ~0.5 GiB of a sparse 2 GiB file) are removed.
fn remove_stale(parent: &Path, key: &str) {
    let Ok(entries) = std::fs::read_dir(parent) else { return };
    for entry in entries.flatten() {
        if entry.file_name() != key {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
