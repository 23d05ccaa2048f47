//! Boot-path tests: PVH and OVMF boots to ready, ACPI power-off, and the stage 1 failure path.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use anyhow::{ensure, Context, Result};
use keel_qemu_tests::artifacts::{self, Artifacts};
use keel_qemu_tests::disk::{self, DiskFormat};
use keel_qemu_tests::timeouts;
use keel_qemu_tests::vm::{Vm, VmConfig};

fn artifacts() -> Artifacts {
    artifacts::ensure_built().expect("keel artifacts (make image)")
}

#[test]
fn boots_to_ready_by_direct_kernel_boot() -> Result<()> {
    let vm = Vm::start(VmConfig::pvh("boots_to_ready_by_direct_kernel_boot", &artifacts()))?;
    vm.wait_for_ready(timeouts::PVH_READY)?;
    // No loader, no boot counter: nothing for the health gate to decide.
    vm.wait_for("keel: boot assessment: not a trial boot: no UEFI", timeouts::CONTAINER)?;
    Ok(())
}

#[test]
fn boots_to_ready_through_ovmf_and_systemd_boot() -> Result<()> {
    let vm = Vm::start(VmConfig::ovmf("boots_to_ready_through_ovmf_and_systemd_boot", &artifacts()))?;
    vm.wait_for_ready(timeouts::OVMF_READY)?;
    // The image's entry is blessed (no counter): systemd-boot names it, and there is nothing to assess.
    let line = vm.wait_for("keel: boot assessment: not a trial boot: entry keel-", timeouts::CONTAINER)?;
    ensure!(line.contains("-a.conf has no boot counter"), "not slot a's blessed entry: {line}");
    Ok(())
}

#[test]
fn acpi_power_down_powers_off_cleanly() -> Result<()> {
    let vm = Vm::start(VmConfig::pvh("acpi_power_down_powers_off_cleanly", &artifacts()))?;
    vm.wait_for_ready(timeouts::PVH_READY)?;
    vm.power_down()?;
    let status = vm.wait_for_exit(timeouts::SHUTDOWN)?;
    let console = vm.console();
    ensure!(status.success(), "QEMU exited with {status}; console:\n{console}");
    ensure!(console.lines().any(|l| l.contains("keel: unmounted")), "no `keel: unmounted` line; console:\n{console}");
    ensure!(!console.contains("Kernel panic"), "kernel panic during power-off; console:\n{console}");
    Ok(())
}

#[test]
fn missing_root_partition_gives_message_and_reboot() -> Result<()> {
    let artifacts = artifacts();
    let scratch = tempfile::tempdir()?;
    let image = scratch.path().join("keel-no-root.img");
    disk::sparse_copy(&artifacts.image, &image)?;
    let root = disk::partition_number(&image, "keel-root-a")?;
    disk::set_partition_label(&image, root, "not-keel-root")?;

    let config = VmConfig::pvh("missing_root_partition_gives_message_and_reboot", &artifacts)
        .no_disks()
        .disk_file(&image, DiskFormat::Raw)
        .kernel_arg("keel.rootwait=5")
        .no_reboot(true);
    let vm = Vm::start(config)?;
    let failure = vm.wait_for("stage 1 failed", timeouts::PVH_READY)?;
    vm.wait_for_exit(timeouts::SHUTDOWN).context("QEMU should exit by itself after the guest reboots")?;
    let console = vm.console();
    ensure!(failure.contains("keel-root-a"), "the failure line does not name keel-root-a: {failure}");
    let keel_lines = console.lines().skip_while(|l| !l.contains("stage 1 failed")).filter(|l| l.contains("keel:"));
    ensure!(
        keel_lines.clone().any(|l| l.to_lowercase().contains("reboot")),
        "PID 1 does not say it reboots; console:\n{console}"
    );
    ensure!(console.contains("reboot: Restarting system"), "the kernel did not restart; console:\n{console}");
    ensure!(!console.contains("Kernel panic"), "kernel panic instead of a reboot; console:\n{console}");
    Ok(())
}
