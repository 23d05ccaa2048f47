//! Boot assessment through the full chain (OVMF, systemd-boot, PID 1): the image's slot a entry is renamed to a
//! counted name (`+3`), as an update leaves a new entry, so the boot is a trial. A required container that stays
//! healthy for the window gets the entry blessed; one that crash-loops until `health_timeout` gets it marked bad
//! (`+0-1`) and the machine rebooted, and the next boot reports the rollback; so does a trial whose API does not
//! answer. (A required container that stops for
//! good fails the gate at once: `init`'s unit tests.) The entry names are read from the ESP after QEMU exits.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};
use keel_qemu_tests::artifacts::{self, Artifacts};
use keel_qemu_tests::config_drive::{self, DriveSpec};
use keel_qemu_tests::disk::{self, DiskFormat};
use keel_qemu_tests::esp;
use keel_qemu_tests::timeouts;
use keel_qemu_tests::vm::{Vm, VmConfig};

fn artifacts() -> Artifacts {
    artifacts::ensure_built().expect("keel artifacts (make image)")
}

/// A copy of the image whose only entry (slot a's) carries a fresh counter; returns its path and the entry's
/// blessed name.
fn image_on_trial(scratch: &Path) -> Result<(PathBuf, String)> {
    let image = scratch.join("keel-trial.img");
    disk::sparse_copy(&artifacts().image, &image)?;
    let entries = esp::entries(&image)?;
    let [blessed] = entries.as_slice() else { anyhow::bail!("expected one boot entry on the ESP: {entries:?}") };
    ensure!(blessed.starts_with("keel-") && blessed.ends_with("-a.conf"), "not slot a's entry: {blessed}");
    let counted = blessed.replace("-a.conf", "-a+3.conf");
    esp::rename_entry(&image, blessed, &counted)?;
    ensure!(esp::entries(&image)? == [counted.clone()], "the entry was not renamed to {counted}");
    Ok((image, blessed.clone()))
}

fn boot(name: &str, scratch: &Path, image: &Path, user_data: &str) -> Result<Vm> {
    let spec = DriveSpec { user_data, meta_data: None, format: "vfat", layout: "nocloud" };
    let drive = config_drive::build(scratch, name, &spec)?;
    let config = VmConfig::ovmf(name, &artifacts())
        .no_disks()
        .disk_file(image, DiskFormat::Raw)
        .disk_file(&drive, DiskFormat::Raw)
        .no_reboot(true);
    Ok(Vm::start(config)?)
}

#[test]
fn a_trial_boot_whose_required_container_stays_healthy_is_blessed() -> Result<()> {
    let scratch = tempfile::tempdir()?;
    let (image, blessed) = image_on_trial(scratch.path())?;
    let user_data = r#"
[update]
health_window = "5s"
health_timeout = "4m"

[containers.web]
image = "keel/busybox"
command = ["sh", "-c", "touch /tmp/up; exec sleep 3600"]
required = true
healthcheck = { test = ["CMD", "test", "-e", "/tmp/up"], interval = "1s" }
"#;
    let vm = boot("trial_boot_blessed", scratch.path(), &image, user_data)?;
    vm.wait_for_ready(timeouts::OVMF_READY)?;
    vm.wait_for("keel: health gate: web: Running, health healthy", timeouts::CONTAINER)?;
    let passed = vm.wait_for("keel: health gate passed", timeouts::CONTAINER)?;
    ensure!(passed.contains("; the API answers on /run/keel.sock"), "the pass does not say the API answered: {passed}");
    let done = vm.wait_for("keel: health gate: entry", timeouts::CONTAINER)?;
    ensure!(done.contains(&format!("blessed: now {blessed}")), "not blessed as {blessed}: {done}");
    vm.power_down()?;
    vm.wait_for_exit(timeouts::SHUTDOWN)?;
    let console = vm.console();
    ensure!(console.contains("keel: boot assessment: trial boot of entry"), "no trial announced:\n{console}");
    let entries = esp::entries(&image)?;
    ensure!(entries == [blessed.clone()], "ESP entries {entries:?}, expected only {blessed}; console:\n{console}");
    Ok(())
}

#[test]
fn a_trial_boot_whose_api_does_not_answer_is_marked_bad_and_rebooted() -> Result<()> {
    let scratch = tempfile::tempdir()?;
    let (image, blessed) = image_on_trial(scratch.path())?;
    // The API cannot start (its socket's group does not exist on the host); with nothing required, only the API
    // holds the gate.
    let user_data = r#"
[api]
socket_group = "no-such-group"

[update]
health_window = "5s"
health_timeout = "15s"
"#;
    let vm = boot("trial_boot_no_api", scratch.path(), &image, user_data)?;
    vm.wait_for_ready(timeouts::OVMF_READY)?;
    vm.wait_for("keel: warning: health gate: the API on /run/keel.sock does not answer", timeouts::CONTAINER)?;
    let failed = vm.wait_for("keel: error: health gate failed", timeouts::CONTAINER)?;
    ensure!(
        failed.contains("timed out after 15s: the API on /run/keel.sock did not answer: cannot connect"),
        "the failure does not name the API: {failed}"
    );
    vm.wait_for_exit(timeouts::SHUTDOWN).context("QEMU should exit when the failed trial reboots")?;
    let bad = blessed.replace("-a.conf", "-a+0-1.conf");
    let entries = esp::entries(&image)?;
    ensure!(entries == [bad.clone()], "ESP entries {entries:?}, expected only {bad}; console:\n{}", vm.console());
    Ok(())
}

#[test]
fn a_trial_boot_whose_required_container_keeps_failing_is_marked_bad_rebooted_and_reported() -> Result<()> {
    let scratch = tempfile::tempdir()?;
    let (image, blessed) = image_on_trial(scratch.path())?;
    // A crash loop: the container is restarted (never stopped for good), so only the timeout ends the trial.
    let user_data = r#"
[update]
health_window = "5s"
health_timeout = "20s"

[containers.web]
image = "keel/busybox"
command = ["sh", "-c", "echo giving up; exit 1"]
restart = "always"
required = true
"#;
    let vm = boot("trial_boot_marked_bad", scratch.path(), &image, user_data)?;
    vm.wait_for_ready(timeouts::OVMF_READY)?;
    let failed = vm.wait_for("keel: error: health gate failed", timeouts::CONTAINER)?;
    ensure!(
        failed.contains("timed out after 20s: required container web was not ready for 5s without a break"),
        "the failure does not say the timeout and name web: {failed}"
    );
    let why = vm.wait_for("keel: error: health gate: web:", timeouts::CONTAINER)?;
    ensure!(why.contains(" restarts"), "the report does not say web kept restarting: {why}");
    // -no-reboot: the reboot PID 1 asks for ends QEMU.
    vm.wait_for_exit(timeouts::SHUTDOWN).context("QEMU should exit when the failed trial reboots")?;
    let console = vm.console();
    ensure!(
        console.contains("keel: shutdown: reboot (the trial boot of"),
        "no reboot for the failed trial:\n{console}"
    );
    let bad = blessed.replace("-a.conf", "-a+0-1.conf");
    let entries = esp::entries(&image)?;
    ensure!(entries == [bad.clone()], "ESP entries {entries:?}, expected only {bad}; console:\n{console}");

    // The next boot (here the same, only entry: nothing else is left to fall back to) reports the rollback once,
    // and with nothing required its own gate passes at once.
    let vm = boot("trial_boot_after_rollback", scratch.path(), &image, "")?;
    vm.wait_for_ready(timeouts::OVMF_READY)?;
    let report = vm.wait_for_anywhere("keel: warning: rolled back: the trial boot of keel", timeouts::CONTAINER)?;
    ensure!(
        report.contains("entry keel-") && report.contains("required container web was not ready"),
        "the rollback report does not say which entry and why: {report}"
    );
    vm.wait_for_anywhere("keel: warning: rolled back: web:", timeouts::CONTAINER)?;
    vm.wait_for("keel: health gate passed", timeouts::CONTAINER)?;
    vm.wait_for("keel: health gate: entry", timeouts::CONTAINER)?;
    vm.power_down()?;
    vm.wait_for_exit(timeouts::SHUTDOWN)?;
    let entries = esp::entries(&image)?;
    ensure!(entries == [blessed.clone()], "ESP entries {entries:?}, expected {blessed} after the second trial");
    Ok(())
}
