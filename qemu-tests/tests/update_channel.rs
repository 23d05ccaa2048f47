//! Updates that the host takes by itself, and the ones that fail, through the full chain (OVMF, systemd-boot, PID
//! 1): an image of version 0.1.0 trusting a test key polls a channel served from the host over QEMU user
//! networking, installs the bundle the channel names into slot b and reboots into it (`reboot = "immediate"`).
//! The bundles are real `keel-build` bundles of the repository's recipe at another version, or one with a broken
//! initramfs signed with the same key; the machine's boots are followed on the console and the ESP is read
//! afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use keel_os_image::boot_entry::{entry_file_text, entry_options, options_for_slot};
use keel_os_image::Slot;
use keel_qemu_tests::artifacts::{self, Artifacts};
use keel_qemu_tests::config_drive::{self, DriveSpec};
use keel_qemu_tests::disk::DiskFormat;
use keel_qemu_tests::esp;
use keel_qemu_tests::timeouts;
use keel_qemu_tests::update_kit::UpdateKit;
use keel_qemu_tests::update_server::UpdateServer;
use keel_qemu_tests::vm::{Vm, VmConfig};

/// An install of a ~16 MiB bundle under TCG, with the download over user networking.
const INSTALL: Duration = Duration::from_secs(300);
/// Three boots that panic in the initramfs, each through OVMF and systemd-boot.
const COUNTER_RUNS_OUT: Duration = Duration::from_secs(600);

fn artifacts() -> Artifacts {
    artifacts::ensure_built().expect("keel artifacts (make image)")
}

/// Boots `image` through OVMF with a config drive of `user_data`, on user networking; a guest reboot resets the
/// machine (systemd-boot picks the next entry), only a power-off ends QEMU.
fn boot(name: &str, scratch: &Path, image: &Path, user_data: &str, api_port: Option<u16>) -> Result<Vm> {
    let spec = DriveSpec { user_data, meta_data: None, format: "vfat", layout: "nocloud" };
    let drive = config_drive::build(scratch, name, &spec)?;
    let mut config = VmConfig::ovmf(name, &artifacts())
        .no_disks()
        .disk_file(image, DiskFormat::Raw)
        .disk_file(&drive, DiskFormat::Raw)
        .network()
        .no_reboot(false);
    if let Some(port) = api_port {
        config = config.forward_tcp(port, 2375);
    }
    Ok(Vm::start(config)?)
}

/// The `[update]` section of a host polling `channel_url` once a minute and rebooting into what it installs.
fn update_section(channel_url: &str, health_timeout: &str) -> String {
    format!(
        "[update]\nurl = \"{channel_url}\"\ninterval = \"1m\"\nreboot = \"immediate\"\nhealth_window = \"5s\"\n\
         health_timeout = \"{health_timeout}\"\n"
    )
}

/// `GET path` on the API forwarded to `port`: the JSON body.
fn api_get(port: u16, path: &str) -> Result<serde_json::Value> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: keel\r\n\r\n").as_bytes())?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (_, body) = response.split_once("\r\n\r\n").context("no HTTP body")?;
    serde_json::from_str(body).with_context(|| format!("not JSON: {response}"))
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

#[test]
fn a_host_takes_a_new_version_from_its_channel_by_itself() -> Result<()> {
    let scratch = tempfile::tempdir()?;
    let kit = UpdateKit::new(scratch.path(), &artifacts())?;
    let image = kit.image("0.1.0")?;
    let bundle = kit.bundle("0.2.0")?;
    let server = UpdateServer::start()?;
    server.put_file("/bundles/keel-0.2.0.bundle", &bundle)?;
    server.put("/channel/stable.json", kit.channel("0.2.0", "/bundles/keel-0.2.0.bundle")?);

    let user_data = update_section(&server.guest_url("/channel/stable.json"), "4m");
    let vm = boot("channel_update_immediate", scratch.path(), &image, &user_data, None)?;
    vm.wait_for("keel: boot assessment: not a trial boot: entry keel-0.1.0-a.conf", timeouts::OVMF_READY)?;
    vm.wait_for("keel: update channel: installing keel 0.2.0 (running 0.1.0)", timeouts::CONTAINER)?;
    vm.wait_for("keel: update: keel 0.2.0 installed in slot b", INSTALL)?;
    vm.wait_for("keel: shutdown: reboot (keel 0.2.0 in slot b installed from the update channel", timeouts::SHUTDOWN)?;
    // systemd-boot picks the new counted entry: a trial of 0.2.0, which the gate keeps (nothing is required).
    vm.wait_for("keel: boot assessment: trial boot of entry keel-0.2.0-b+3.conf", timeouts::OVMF_READY)?;
    vm.wait_for("blessed: now keel-0.2.0-b.conf", timeouts::CONTAINER)?;
    // Once the trial is kept, the poller finds the channel's version running.
    vm.wait_for("keel: update channel: keel 0.2.0 is current (the channel has 0.2.0)", timeouts::CONTAINER)?;
    vm.power_down()?;
    vm.wait_for_exit(timeouts::SHUTDOWN)?;
    ensure!(server.requests("/bundles/keel-0.2.0.bundle") == 1, "the bundle was fetched more than once");
    let entries = esp::entries(&image)?;
    ensure!(
        entries == ["keel-0.1.0-a.conf", "keel-0.2.0-b.conf"],
        "ESP entries {entries:?}; console:\n{}",
        vm.console()
    );
    Ok(())
}

#[test]
fn a_version_whose_required_container_fails_its_health_check_is_rolled_back_and_not_retried() -> Result<()> {
    let scratch = tempfile::tempdir()?;
    let kit = UpdateKit::new(scratch.path(), &artifacts())?;
    let image = kit.image("0.1.0")?;
    let bundle = kit.bundle("0.2.0")?;
    let server = UpdateServer::start()?;
    server.put_file("/keel-0.2.0.bundle", &bundle)?;
    server.put("/stable.json", kit.channel("0.2.0", "keel-0.2.0.bundle")?);
    let api_port = free_port()?;
    // The container reads the OS release it runs on: healthy on 0.1.0, unhealthy on 0.2.0, as a workload the new
    // version breaks.
    let user_data = format!(
        "[api]\ntcp = \"0.0.0.0:2375\"\n\n{}\n[containers.web]\nimage = \"keel/busybox\"\n\
         command = [\"sh\", \"-c\", \"exec sleep 3600\"]\nrequired = true\n\
         volumes = [\"/etc/os-release:/host-os-release:ro\"]\n\
         healthcheck = {{ test = [\"CMD-SHELL\", \"! grep -q 0.2.0 /host-os-release\"], interval = \"1s\", retries = 1 }}\n",
        update_section(&server.guest_url("/stable.json"), "40s")
    );
    let vm = boot("channel_update_unhealthy", scratch.path(), &image, &user_data, Some(api_port))?;
    vm.wait_for("keel: boot assessment: not a trial boot: entry keel-0.1.0-a.conf", timeouts::OVMF_READY)?;
    vm.wait_for("keel: update: keel 0.2.0 installed in slot b", INSTALL)?;
    vm.wait_for("keel: boot assessment: trial boot of entry keel-0.2.0-b+3.conf", timeouts::OVMF_READY)?;
    let failed = vm.wait_for("keel: error: health gate failed", timeouts::CONTAINER)?;
    ensure!(failed.contains("required container web was not ready"), "the failure does not name web: {failed}");
    // systemd-boot falls back to 0.1.0, which reports the rollback and does not take 0.2.0 again.
    let report = vm.wait_for("keel: warning: rolled back: the trial boot of keel 0.2.0", timeouts::OVMF_READY)?;
    ensure!(report.contains("web was not ready"), "the rollback report does not name web: {report}");
    vm.wait_for("keel: boot assessment: not a trial boot: entry keel-0.1.0-a.conf", timeouts::CONTAINER)?;
    vm.wait_for("keel: warning: update channel: keel 0.2.0 was installed before", timeouts::CONTAINER)?;
    let status = api_get(api_port, "/keel/v1/status")?;
    let rollback = &status["boot"]["rollback"];
    ensure!(rollback["from_version"] == "0.2.0", "status.boot.rollback: {status}");
    let reason = rollback["reason"].as_str().unwrap_or_default();
    ensure!(reason.contains("web") && reason.contains("health unhealthy"), "the status's reason: {reason}");
    ensure!(status["version"] == "0.1.0" || status["slot"] == "a", "not back on 0.1.0: {status}");
    vm.power_down()?;
    vm.wait_for_exit(timeouts::SHUTDOWN)?;
    ensure!(server.requests("/keel-0.2.0.bundle") == 1, "the rolled-back version was downloaded again");
    let entries = esp::entries(&image)?;
    ensure!(entries == ["keel-0.1.0-a.conf", "keel-0.2.0-b+0-1.conf"], "ESP entries {entries:?}");
    Ok(())
}

#[test]
fn a_bundle_with_a_broken_initramfs_runs_out_its_counter_and_the_host_falls_back() -> Result<()> {
    let scratch = tempfile::tempdir()?;
    let kit = UpdateKit::new(scratch.path(), &artifacts())?;
    let image = kit.image("0.1.0")?;
    let broken = kit.with_initramfs(&kit.bundle("0.2.0")?, b"this is not an initramfs\n")?;
    let server = UpdateServer::start()?;
    server.put_file("/keel-0.2.0.bundle", &broken)?;
    server.put("/stable.json", kit.channel("0.2.0", "keel-0.2.0.bundle")?);
    let user_data = update_section(&server.guest_url("/stable.json"), "4m");
    let vm = boot("channel_update_broken_initramfs", scratch.path(), &image, &user_data, None)?;
    vm.wait_for("keel: boot assessment: not a trial boot: entry keel-0.1.0-a.conf", timeouts::OVMF_READY)?;
    vm.wait_for("keel: update: keel 0.2.0 installed in slot b", INSTALL)?;
    // Three tries of 0.2.0, each a kernel panic (panic=-1 resets the machine), then systemd-boot boots 0.1.0.
    vm.wait_for("keel: boot assessment: not a trial boot: entry keel-0.1.0-a.conf", COUNTER_RUNS_OUT)?;
    vm.wait_for("keel: warning: update channel: keel 0.2.0 was installed before", timeouts::CONTAINER)?;
    vm.power_down()?;
    vm.wait_for_exit(timeouts::SHUTDOWN)?;
    let console = vm.console();
    let panics = console.matches("Kernel panic - not syncing").count();
    ensure!(panics == 3, "{panics} kernel panics, expected one per try; console:\n{console}");
    let entries = esp::entries(&image)?;
    ensure!(entries == ["keel-0.1.0-a.conf", "keel-0.2.0-b+0-3.conf"], "ESP entries {entries:?}");
    ensure!(server.requests("/keel-0.2.0.bundle") == 1, "the broken version was downloaded again");
    Ok(())
}

/// Where a test stops an install.
#[derive(Clone, Copy, Debug)]
enum KillPoint {
    /// The HTTP server stalls in the middle of the root payload: the root is being read and verified, nothing on
    /// the disk has changed.
    WhileRootRead,
    /// `keel.update_halt=root-half-written`: slot b's entries are gone, half of the root is in its partition.
    DuringRootWrite,
    /// `keel.update_halt=after-kernel`.
    AfterKernel,
    /// `keel.update_halt=before-entry`.
    BeforeEntry,
}

/// Installs 0.2.0 from the channel and kills QEMU at `point`; the next boot is 0.1.0 again, and once the
/// server serves the whole bundle and the halt is gone, the retried install boots 0.2.0.
fn killed_install_boots_the_old_version_and_a_retry_succeeds(point: KillPoint, name: &str) -> Result<()> {
    let scratch = tempfile::tempdir()?;
    let kit = UpdateKit::new(scratch.path(), &artifacts())?;
    let image = kit.image("0.1.0")?;
    let bundle = kit.bundle("0.2.0")?;
    let server = UpdateServer::start()?;
    server.put_file("/keel-0.2.0.bundle", &bundle)?;
    server.put("/stable.json", kit.channel("0.2.0", "keel-0.2.0.bundle")?);
    let entry = "keel-0.1.0-a.conf";
    let original_entry = esp::read_entry(&image, entry)?;
    let mut root_progress = None;
    // An older version's entry for slot b, as an earlier update leaves one: the install must remove it before it
    // writes anything of slot b, so that no entry ever points at a half-written slot, and not before the bundle
    // verified.
    let options = entry_options(&original_entry).context("slot a's entry has no options")?;
    let stale = entry_file_text("0.0.9", Slot::B, &options_for_slot(options, Slot::B), 0);
    esp::write_entry(&image, "keel-0.0.9-b.conf", &stale)?;
    ensure!(esp::entries(&image)? == ["keel-0.0.9-b.conf", entry], "the stale entry was not written");
    match point {
        KillPoint::WhileRootRead => {
            let (length, root) = kit.root_span(&bundle)?;
            let stall = length - root / 2;
            server.stall("/keel-0.2.0.bundle", stall);
            // The console's progress steps are 10%: the last one before the stall, past the root's start, says
            // the guest is reading the root.
            let step = stall * 10 / length * 10;
            ensure!(step * length / 100 > length - root, "no progress step inside the root payload");
            root_progress = Some(format!("keel: update: {step}%"));
        }
        KillPoint::DuringRootWrite | KillPoint::AfterKernel | KillPoint::BeforeEntry => {
            let halt = match point {
                KillPoint::DuringRootWrite => "root-half-written",
                KillPoint::AfterKernel => "after-kernel",
                _ => "before-entry",
            };
            let edited = original_entry
                .lines()
                .map(|line| {
                    if line.starts_with("options ") {
                        format!("{line} keel.update_halt={halt}")
                    } else {
                        line.to_owned()
                    }
                })
                .collect::<Vec<_>>()
                .join("\n");
            esp::write_entry(&image, entry, &format!("{edited}\n"))?;
        }
    }
    let user_data = update_section(&server.guest_url("/stable.json"), "4m");
    let vm = boot(name, scratch.path(), &image, &user_data, None)?;
    vm.wait_for("keel: update channel: installing keel 0.2.0", timeouts::OVMF_READY)?;
    match point {
        KillPoint::WhileRootRead => {
            ensure!(server.wait_stalled("/keel-0.2.0.bundle", INSTALL), "the download never reached the root");
            vm.wait_for(root_progress.as_deref().unwrap_or_default(), INSTALL)?;
        }
        KillPoint::DuringRootWrite | KillPoint::AfterKernel | KillPoint::BeforeEntry => {
            vm.wait_for("keel: warning: update: halted", INSTALL)?;
        }
    }
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(vm.pid() as i32), nix::sys::signal::Signal::SIGKILL)?;
    let _ = vm.wait_for_exit(timeouts::SHUTDOWN);
    drop(vm);
    // Nothing has changed before every byte verified; from the root's write on, slot b has no entry (a
    // `.partial` file is none for systemd-boot, which reads `*.conf`).
    let expected = match point {
        KillPoint::WhileRootRead => vec!["keel-0.0.9-b.conf", entry],
        KillPoint::DuringRootWrite => vec![entry],
        KillPoint::AfterKernel | KillPoint::BeforeEntry => vec![entry, "keel-0.2.0-b+3.conf.partial"],
    };
    let entries = esp::entries(&image)?;
    ensure!(entries == expected, "{point:?}: the interrupted install left ESP entries {entries:?}");

    // The power comes back: the old version boots. The retry runs without the stall or the halt.
    server.release();
    esp::write_entry(&image, entry, &original_entry)?;
    let vm = boot(&format!("{name}_retry"), scratch.path(), &image, &user_data, None)?;
    vm.wait_for("keel: boot assessment: not a trial boot: entry keel-0.1.0-a.conf", timeouts::OVMF_READY)?;
    vm.wait_for("keel: update: keel 0.2.0 installed in slot b", INSTALL)?;
    vm.wait_for("keel: boot assessment: trial boot of entry keel-0.2.0-b+3.conf", timeouts::OVMF_READY)?;
    vm.wait_for("blessed: now keel-0.2.0-b.conf", timeouts::CONTAINER)?;
    vm.power_down()?;
    vm.wait_for_exit(timeouts::SHUTDOWN)?;
    let entries = esp::entries(&image)?;
    ensure!(
        entries == ["keel-0.1.0-a.conf", "keel-0.2.0-b.conf"],
        "{point:?}: ESP entries {entries:?} after the retry"
    );
    Ok(())
}

#[test]
fn an_install_killed_while_the_root_is_read_changes_nothing_and_a_retry_succeeds() -> Result<()> {
    killed_install_boots_the_old_version_and_a_retry_succeeds(KillPoint::WhileRootRead, "update_killed_read")
}

#[test]
fn an_install_killed_during_the_root_write_leaves_the_old_version_and_a_retry_succeeds() -> Result<()> {
    killed_install_boots_the_old_version_and_a_retry_succeeds(KillPoint::DuringRootWrite, "update_killed_root")
}

#[test]
fn an_install_killed_after_the_kernel_leaves_the_old_version_and_a_retry_succeeds() -> Result<()> {
    killed_install_boots_the_old_version_and_a_retry_succeeds(KillPoint::AfterKernel, "update_killed_kernel")
}

#[test]
fn an_install_killed_before_the_entry_leaves_the_old_version_and_a_retry_succeeds() -> Result<()> {
    killed_install_boots_the_old_version_and_a_retry_succeeds(KillPoint::BeforeEntry, "update_killed_entry")
}
