//! `make run`'s script, end to end: the full boot chain with the example config drive reaches `ready`, and the
//! ACPI power button (what the README tells users to press) powers it off cleanly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use anyhow::{ensure, Result};
use keel_qemu_tests::artifacts::{self, workspace_dir};
use keel_qemu_tests::timeouts;
use keel_qemu_tests::vm::Vm;

#[test]
fn make_run_boots_the_demo_to_ready_and_powers_off() -> Result<()> {
    let artifacts = artifacts::ensure_built()?;
    let workspace = workspace_dir();
    let mut command = Command::new(workspace.join("scripts/run-qemu.sh"));
    command.arg(&artifacts.build_dir).current_dir(&workspace);
    let vm = Vm::start_script("make_run", command, Some(&artifacts.log_dir()))?;
    let ready = vm.wait_for_ready(timeouts::OVMF_READY)?;
    ensure!(ready.contains("host keel-demo"), "the example user-data was not applied: {ready}");
    // The demo container, from the image preloaded in the OS image, with no network at all.
    // With the host's network a container has the host's name, as in Docker: the demo's `[host] hostname`.
    vm.wait_for("hello | hello from a keel container on keel-demo", timeouts::PVH_READY)?;
    // The ACPI button reaches PID 1 as SIGPWR; each step of its shutdown shows on the console, in order.
    vm.power_down()?;
    vm.wait_for("keel: shutdown: power off (SIGPWR (power button or UPS))", timeouts::SHUTDOWN)?;
    // SIGTERM stopped the demo container (143), within its stop timeout: 137 would mean it needed SIGKILL.
    vm.wait_for("keel: hello: exited with 143", timeouts::SHUTDOWN)?;
    vm.wait_for("keel: unmounted /var", timeouts::SHUTDOWN)?;
    vm.wait_for("keel: powering off", timeouts::SHUTDOWN)?;
    let status = vm.wait_for_exit(timeouts::SHUTDOWN)?;
    ensure!(status.success(), "QEMU did not exit cleanly after the guest powered off: {status}");
    let console = vm.console();
    ensure!(!console.contains("Kernel panic"), "kernel panic:\n{console}");
    Ok(())
}
