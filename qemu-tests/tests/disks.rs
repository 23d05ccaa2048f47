//! Which disk's partitions keel uses: only the boot disk's. A second disk carrying partitions named like keel's
//! (a tenant's volume, a disk a container wrote) must not become `/var` or the root, whatever its order.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{ensure, Context, Result};
use keel_qemu_tests::artifacts::{self, Artifacts};
use keel_qemu_tests::disk::{self, DiskFormat};
use keel_qemu_tests::timeouts;
use keel_qemu_tests::vm::{Vm, VmConfig};
use sha2::{Digest, Sha256};

fn artifacts() -> Artifacts {
    artifacts::ensure_built().expect("keel artifacts (make image)")
}

/// A foreign disk: partition 1 (1 MiB, named `spare`, or what `first_name` says) and partition 2, an ext4 filesystem
/// holding a tenant's file, named `keel-data`.
fn foreign_disk(dir: &Path, first_name: Option<&str>) -> Result<std::path::PathBuf> {
    let content = dir.join("tenant");
    std::fs::create_dir_all(&content)?;
    std::fs::write(content.join("tenant-file"), "not keel's")?;
    let filesystem = dir.join("tenant.ext4");
    let status = Command::new("mke2fs")
        .args(["-q", "-F", "-t", "ext4", "-L", "tenant", "-d"])
        .arg(&content)
        .arg(&filesystem)
        .arg("16M")
        .stdout(Stdio::null())
        .status()
        .context("running mke2fs")?;
    ensure!(status.success(), "mke2fs failed: {status}");
    let disk = dir.join("foreign.img");
    disk::partitioned_disk(&filesystem, "keel-data", &disk)?;
    if let Some(name) = first_name {
        disk::set_partition_label(&disk, 1, name)?;
    }
    Ok(disk)
}

fn sha256_of(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(Sha256::digest(&bytes).iter().map(|byte| format!("{byte:02x}")).collect())
}

/// Boots, waits for `ready`, powers off, and checks the data partition came from `boot_disk` and the foreign disk
/// was never written (a mounted ext4 gets a new mount count and time in its superblock at once).
fn boot_and_check(vm: Vm, ready: std::time::Duration, boot_disk: &str, foreign: &Path, before: &str) -> Result<()> {
    let artifacts = artifacts();
    let data = disk::partition_number(&artifacts.image, "keel-data")?;
    vm.wait_for_ready(ready)?;
    vm.power_down()?;
    vm.wait_for_exit(timeouts::SHUTDOWN)?;
    let console = vm.console();
    let mounted = console.lines().find(|line| line.contains("data-mounted")).unwrap_or_default();
    ensure!(
        mounted.ends_with(&format!("data-mounted /dev/{boot_disk}{data}")),
        "/var is not the boot disk's keel-data ({boot_disk}{data}): {mounted:?}; console:\n{console}"
    );
    ensure!(
        console.contains("named \"keel-data\": it is not on the boot disk"),
        "the foreign keel-data partition is not reported as ignored; console:\n{console}"
    );
    ensure!(sha256_of(foreign)? == before, "the foreign disk was written to; console:\n{console}");
    Ok(())
}

/// The direct kernel boot has no loader to name the boot disk: the root slot's disk is it. The foreign disk comes
/// first (vda), so "the first keel-data the kernel lists" would be its.
#[test]
fn a_second_disk_with_keel_data_is_not_var_on_direct_kernel_boot() -> Result<()> {
    let scratch = tempfile::tempdir()?;
    let foreign = foreign_disk(scratch.path(), None)?;
    let before = sha256_of(&foreign)?;
    let artifacts = artifacts();
    let config = VmConfig::pvh("a_second_disk_with_keel_data_pvh", &artifacts)
        .no_disks()
        .disk_file(&foreign, DiskFormat::Raw)
        .disk_overlay(&artifacts.image);
    boot_and_check(Vm::start(config)?, timeouts::PVH_READY, "vdb", &foreign, &before)
}

/// Under UEFI the boot disk is the disk of the ESP systemd-boot names in LoaderDevicePartUUID: the foreign disk's
/// partitions named `keel-root-a` and `keel-data` are both ignored.
#[test]
fn a_second_disk_with_keel_root_and_data_is_ignored_under_uefi() -> Result<()> {
    let scratch = tempfile::tempdir()?;
    let foreign = foreign_disk(scratch.path(), Some("keel-root-a"))?;
    let before = sha256_of(&foreign)?;
    let artifacts = artifacts();
    let root_number = disk::partition_number(&artifacts.image, "keel-root-a")?;
    let config =
        VmConfig::ovmf("a_second_disk_with_keel_root_and_data_uefi", &artifacts).disk_file(&foreign, DiskFormat::Raw);
    let vm = Vm::start(config)?;
    let boot_disk = vm.wait_for("boot-disk", timeouts::OVMF_READY)?;
    ensure!(boot_disk.ends_with("boot-disk vda"), "the boot disk is not the ESP's: {boot_disk}");
    let root = vm.wait_for("root-mounted", timeouts::OVMF_READY)?;
    let expected = format!("root-mounted keel-root-a /dev/vda{root_number}");
    ensure!(root.ends_with(&expected), "the root slot is not the boot disk's ({expected}): {root}");
    boot_and_check(vm, timeouts::OVMF_READY, "vda", &foreign, &before)
}

/// Without a loader naming the boot disk, two partitions named like the root slot are refused loudly: keel does not
/// guess which one to run.
#[test]
fn two_root_slots_of_the_same_name_are_refused_on_direct_kernel_boot() -> Result<()> {
    let scratch = tempfile::tempdir()?;
    let foreign = foreign_disk(scratch.path(), Some("keel-root-a"))?;
    let config = VmConfig::pvh("two_root_slots_of_the_same_name_pvh", &artifacts())
        .disk_file(&foreign, DiskFormat::Raw)
        .no_reboot(true);
    let vm = Vm::start(config)?;
    let failure = vm.wait_for("stage 1 failed", timeouts::PVH_READY)?;
    vm.wait_for_exit(timeouts::SHUTDOWN).context("QEMU should exit by itself after the guest reboots")?;
    ensure!(
        failure.contains("keel-root-a") && failure.contains("refusing to guess") && failure.contains("vdb1"),
        "the failure does not name the duplicates: {failure}"
    );
    Ok(())
}
