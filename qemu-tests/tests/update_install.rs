//! Installing update bundles through the full chain (OVMF, systemd-boot, PID 1): `keelctl update URL --reboot`
//! and `POST /keel/v1/update?wait=true` against PID 1's API on a forwarded TCP port, the bundle served over HTTP
//! from the host, the new slot booted as a trial and blessed; bundles that must be refused (bad signature, any
//! payload's hash, truncated or longer, wrong `compatible`, lower version) are refused before the ESP or either
//! slot change (the bytes of the disk image are compared after QEMU exits); `keelctl rollback` returns to the
//! previous version; an allowed downgrade boots next like any install. Every image and bundle is built by the real `keel-build` with a key pair of the test's own
//! (`keel_qemu_tests::update_kit`). With `-no-reboot`, each reboot ends QEMU and the test boots the same disk again.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use keel_fixtures::supervise::http_request;
use keel_os_image::bundle::keys::{parse_public_key, parse_secret_key};
use keel_os_image::bundle::{signed_head, BundleReader, Manifest, TrustPolicy, HEADER_LEN};
use keel_qemu_tests::artifacts::{self, workspace_dir, Artifacts};
use keel_qemu_tests::config_drive::{self, DriveSpec};
use keel_qemu_tests::disk::DiskFormat;
use keel_qemu_tests::esp;
use keel_qemu_tests::timeouts;
use keel_qemu_tests::update_kit::UpdateKit;
use keel_qemu_tests::update_server::UpdateServer;
use keel_qemu_tests::vm::{Vm, VmConfig};
use serde_json::Value;

/// PID 1's API port in the guest (`[api] tcp`).
const GUEST_API_PORT: u16 = 2375;
/// No required container: each trial passes its gate as soon as the supervisor runs.
const USER_DATA: &str = "[api]\ntcp = \"0.0.0.0:2375\"\n\n[update]\nhealth_window = \"5s\"\nhealth_timeout = \"4m\"\n";
/// An install of a ~20 MB bundle from loopback under TCG; generous for a loaded machine.
const INSTALL: Duration = Duration::from_secs(300);

fn artifacts() -> Artifacts {
    artifacts::ensure_built().expect("keel artifacts (make image)")
}

/// One boot of `image` with the API forwarded to `port`; QEMU exits on the guest's reboot.
fn boot(name: &str, scratch: &Path, image: &Path, port: u16) -> Result<Vm> {
    boot_with(name, scratch, image, port, USER_DATA)
}

/// [`boot`] with `user_data` as the config drive's.
fn boot_with(name: &str, scratch: &Path, image: &Path, port: u16, user_data: &str) -> Result<Vm> {
    let spec = DriveSpec { user_data, meta_data: None, format: "vfat", layout: "nocloud" };
    let drive = config_drive::build(scratch, name, &spec)?;
    let config = VmConfig::ovmf(name, &artifacts())
        .no_disks()
        .disk_file(image, DiskFormat::Raw)
        .disk_file(&drive, DiskFormat::Raw)
        .forward_tcp(port, GUEST_API_PORT)
        .no_reboot(true);
    let vm = Vm::start(config)?;
    vm.wait_for_ready(timeouts::OVMF_READY)?;
    Ok(vm)
}

/// `keelctl --host tcp://127.0.0.1:PORT args`.
fn keelctl(port: u16, args: &[&str]) -> Result<Output> {
    let program = workspace_dir().join("target/release/keelctl");
    let output = Command::new(&program)
        .arg("--host")
        .arg(format!("tcp://127.0.0.1:{port}"))
        .args(args)
        .output()
        .with_context(|| format!("cannot run {}", program.display()))?;
    Ok(output)
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// `GET /keel/v1/status` through keelctl, once the API answers (it starts after `ready`).
fn status(port: u16) -> Result<Value> {
    let deadline = Instant::now() + timeouts::CONTAINER;
    loop {
        let output = keelctl(port, &["--json", "status"])?;
        if output.status.success() {
            return Ok(serde_json::from_slice(&output.stdout)?);
        }
        ensure!(Instant::now() < deadline, "the API never answered: {}", text(&output));
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Waits for the gate of the trial of `entry` to bless it.
fn wait_blessed(vm: &Vm, entry: &str) -> Result<()> {
    let announced = vm.wait_for_anywhere("keel: boot assessment:", timeouts::CONTAINER)?;
    ensure!(announced.contains(&format!("trial boot of entry {entry}")), "not a trial of {entry}: {announced}");
    let done = vm.wait_for("keel: health gate: entry", timeouts::CONTAINER)?;
    ensure!(done.contains("blessed"), "the trial of {entry} was not blessed: {done}");
    Ok(())
}

/// `POST /keel/v1/update?wait=true[&reboot=true]` of `url` on the forwarded API port: the status and the body,
/// once the install ended.
fn post_update_and_wait(port: u16, url: &str, reboot: bool) -> Result<(u16, String)> {
    let stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(INSTALL))?;
    let path = if reboot { "/keel/v1/update?wait=true&reboot=true" } else { "/keel/v1/update?wait=true" };
    let body = serde_json::json!({ "source": url }).to_string();
    Ok(http_request(stream, "POST", path, body.as_bytes()))
}

/// How a test starts an install.
#[derive(Clone, Copy)]
enum Client {
    /// `keelctl update URL --reboot`, which follows the progress.
    Keelctl,
    /// `POST /keel/v1/update?wait=true&reboot=true`, answered once the install ended.
    ApiWait,
}

/// Installs `url` through `client` and waits for QEMU to exit on the reboot.
fn install_and_reboot(vm: &Vm, port: u16, url: &str, version: &str, client: Client) -> Result<()> {
    status(port)?;
    match client {
        Client::Keelctl => {
            let output = keelctl(port, &["update", url, "--reboot"])?;
            let said = text(&output);
            ensure!(output.status.success(), "keelctl update {url} failed:\n{said}\nconsole:\n{}", vm.console());
            ensure!(said.contains(&format!("installing keel {version}")), "keelctl does not name {version}: {said}");
            ensure!(said.contains(&format!("keel {version} installed")), "keelctl does not say it installed: {said}");
        }
        Client::ApiWait => {
            let (code, body) = post_update_and_wait(port, url, true)?;
            ensure!(code == 200, "POST ?wait=true of {url}: {code} {body}\nconsole:\n{}", vm.console());
            let update: Value = serde_json::from_str(&body)?;
            ensure!(update["state"] == "installed" && update["version"] == version, "the wait's answer: {body}");
        }
    }
    vm.wait_for_exit(INSTALL).context("QEMU should exit when the host reboots into the new slot")?;
    let console = vm.console();
    let progress_lines = console.lines().filter(|line| line.contains("keel: update: ") && line.contains("%: ")).count();
    ensure!(progress_lines >= 5, "no progress every tenth on the console:\n{console}");
    ensure!(console.contains(&format!("keel: update: keel {version} installed in slot")), "no install:\n{console}");
    Ok(())
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

#[test]
fn bundles_served_over_http_install_into_alternating_slots_and_stay_after_their_trial() -> Result<()> {
    let scratch = tempfile::tempdir()?;
    let kit = UpdateKit::new(scratch.path(), &artifacts())?;
    let image = kit.image("1.0.0")?;
    let server = UpdateServer::start()?;
    server.put_file("/b.bundle", &kit.bundle("1.1.0")?)?;
    server.put_file("/c.bundle", &kit.bundle("1.2.0")?)?;
    let port = free_port()?;

    // a → b.
    let vm = boot("update_a_to_b", scratch.path(), &image, port)?;
    let before = status(port)?;
    ensure!(before["slot"] == "a" && before["boot"]["state"] == "blessed", "status before: {before}");
    install_and_reboot(&vm, port, &server.guest_url("/b.bundle"), "1.1.0", Client::Keelctl)?;
    ensure!(server.requests("/b.bundle") == 1, "b was downloaded {} times", server.requests("/b.bundle"));
    let entries = esp::entries(&image)?;
    ensure!(entries == ["keel-1.0.0-a.conf", "keel-1.1.0-b+3.conf"], "ESP entries after the install: {entries:?}");

    // b boots as a trial and is blessed.
    let vm = boot("update_b_trial", scratch.path(), &image, port)?;
    ensure!(vm.console().contains("slot b"), "b did not boot:\n{}", vm.console());
    wait_blessed(&vm, "keel-1.1.0-b+3.conf")?;
    let now = status(port)?;
    ensure!(now["slot"] == "b" && now["boot"]["state"] == "trial", "status on b's trial: {now}");
    vm.power_down()?;
    vm.wait_for_exit(timeouts::SHUTDOWN)?;
    let entries = esp::entries(&image)?;
    ensure!(entries == ["keel-1.0.0-a.conf", "keel-1.1.0-b.conf"], "ESP entries after the trial: {entries:?}");

    // A later boot stays on b, blessed; then b → c, into slot a.
    let vm = boot("update_b_again", scratch.path(), &image, port)?;
    let now = status(port)?;
    ensure!(now["slot"] == "b" && now["boot"]["state"] == "blessed", "status on b's second boot: {now}");
    install_and_reboot(&vm, port, &server.guest_url("/c.bundle"), "1.2.0", Client::ApiWait)?;
    let entries = esp::entries(&image)?;
    ensure!(entries == ["keel-1.1.0-b.conf", "keel-1.2.0-a+3.conf"], "ESP entries after c's install: {entries:?}");

    let vm = boot("update_c_trial", scratch.path(), &image, port)?;
    ensure!(vm.console().contains("slot a"), "c did not boot in slot a:\n{}", vm.console());
    wait_blessed(&vm, "keel-1.2.0-a+3.conf")?;
    vm.power_down()?;
    vm.wait_for_exit(timeouts::SHUTDOWN)?;
    let entries = esp::entries(&image)?;
    ensure!(entries == ["keel-1.1.0-b.conf", "keel-1.2.0-a.conf"], "ESP entries after c's trial: {entries:?}");
    Ok(())
}

#[test]
fn an_allowed_downgrade_boots_next_as_a_trial_and_stays_once_blessed() -> Result<()> {
    let scratch = tempfile::tempdir()?;
    let kit = UpdateKit::new(scratch.path(), &artifacts())?;
    let image = kit.image("1.0.0")?;
    let server = UpdateServer::start()?;
    server.put_file("/up.bundle", &kit.bundle("1.1.0")?)?;
    server.put_file("/down.bundle", &kit.bundle("0.9.0")?)?;
    let port = free_port()?;
    let user_data = format!("{USER_DATA}allow_downgrade = true\n");
    let boot = |name: &str| boot_with(name, scratch.path(), &image, port, &user_data);

    // 1.0.0 (the image's entry) → 1.1.0 in slot b, blessed.
    let vm = boot("downgrade_1_0_0")?;
    install_and_reboot(&vm, port, &server.guest_url("/up.bundle"), "1.1.0", Client::ApiWait)?;
    let vm = boot("downgrade_1_1_0_trial")?;
    wait_blessed(&vm, "keel-1.1.0-b+3.conf")?;

    // 1.1.0 → 0.9.0 in slot a: the entry installed last boots next although its version is lower.
    install_and_reboot(&vm, port, &server.guest_url("/down.bundle"), "0.9.0", Client::ApiWait)?;
    let entries = esp::entries(&image)?;
    ensure!(entries == ["keel-0.9.0-a+3.conf", "keel-1.1.0-b.conf"], "ESP entries after the downgrade: {entries:?}");
    let vm = boot("downgrade_0_9_0_trial")?;
    ensure!(vm.console().contains("slot a"), "0.9.0 did not boot in slot a:\n{}", vm.console());
    wait_blessed(&vm, "keel-0.9.0-a+3.conf")?;
    vm.power_down()?;
    vm.wait_for_exit(timeouts::SHUTDOWN)?;

    // Blessed, it stays: the next boot is 0.9.0 again, and 1.1.0 is what a rollback would go back to.
    let vm = boot("downgrade_0_9_0_again")?;
    let now = status(port)?;
    ensure!(now["slot"] == "a" && now["boot"]["state"] == "blessed", "status on 0.9.0's second boot: {now}");
    vm.power_down()?;
    vm.wait_for_exit(timeouts::SHUTDOWN)?;
    let entries = esp::entries(&image)?;
    ensure!(entries == ["keel-0.9.0-a.conf", "keel-1.1.0-b.conf"], "ESP entries at the end: {entries:?}");
    Ok(())
}

/// The bytes of the GPT partition `label` of `image`.
fn partition_bytes(image: &Path, label: &str) -> Result<Vec<u8>> {
    let output = Command::new("sfdisk").arg("--json").arg(image).output()?;
    let table: Value = serde_json::from_slice(&output.stdout)?;
    let sector = table.pointer("/partitiontable/sectorsize").and_then(Value::as_u64).unwrap_or(512);
    let partitions = table.pointer("/partitiontable/partitions").and_then(Value::as_array).context("no partitions")?;
    let Some(partition) = partitions.iter().find(|p| p["name"] == label) else { bail!("no partition {label}") };
    let (start, size) = (partition["start"].as_u64().unwrap() * sector, partition["size"].as_u64().unwrap() * sector);
    let mut file = std::fs::File::open(image)?;
    std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(start))?;
    let mut bytes = vec![0u8; usize::try_from(size)?];
    file.read_exact(&mut bytes)?;
    Ok(bytes)
}

/// The length of `bundle`'s head (header, manifest, signature): where its kernel payload starts.
fn head_len(bundle: &[u8]) -> usize {
    let manifest_len = u32::from_le_bytes(bundle[12..16].try_into().unwrap()) as usize;
    HEADER_LEN + manifest_len + 64
}

/// `bundle` with `change` applied to its manifest, signed again with the kit's key: a bundle only the manifest's
/// own checks can refuse.
fn resigned(kit: &UpdateKit, bundle: &[u8], change: impl FnOnce(&Manifest) -> Manifest) -> Result<Vec<u8>> {
    let public = parse_public_key(&std::fs::read_to_string(&kit.public_key)?)?;
    let secret = parse_secret_key(&std::fs::read_to_string(&kit.secret_key)?)?;
    let keys = [public];
    let policy = TrustPolicy { keys: &keys, compatible: kit.compatible(), running_version: "0", allow_downgrade: true };
    let reader = BundleReader::open(bundle, &policy)?;
    let mut out = signed_head(&change(reader.manifest()), &secret)?;
    out.extend_from_slice(&bundle[head_len(bundle)..]);
    Ok(out)
}

#[test]
fn bundles_that_must_be_refused_change_neither_the_esp_nor_the_inactive_slot() -> Result<()> {
    let scratch = tempfile::tempdir()?;
    let kit = UpdateKit::new(scratch.path(), &artifacts())?;
    let image = kit.image("1.0.0")?;
    let good = std::fs::read(kit.bundle("1.1.0")?)?;
    let older = std::fs::read(kit.bundle("0.9.0")?)?;
    let head = head_len(&good);
    let mut cases: Vec<(&str, Vec<u8>, &str)> = Vec::new();
    let mut bad_signature = good.clone();
    bad_signature[head - 1] ^= 0x01;
    cases.push(("bad-signature", bad_signature, "matches none of the 1 trusted update keys"));
    let mut bad_kernel = good.clone();
    bad_kernel[head + 100] ^= 0x01;
    cases.push(("wrong-hash", bad_kernel, "the bundle's payload kernel (bytes"));
    let truncated = good[..good.len() - 4096].to_vec();
    cases.push(("truncated", truncated, "its signed manifest says"));
    let other =
        resigned(&kit, &good, |manifest| Manifest::new(&manifest.version, "keel-other", manifest.payloads.clone()))?;
    cases.push(("wrong-compatible", other, "the bundle is for \"keel-other\" hosts"));
    cases.push(("lower-version", older, "older than the running 1.0.0, and downgrades are not allowed"));
    // Found at the root's end or after it: every byte is verified before the first write.
    let mut bad_root = good.clone();
    let last = bad_root.len() - 1;
    bad_root[last] ^= 0x01;
    cases.push(("bad-root", bad_root, "the bundle's payload root (bytes"));
    let mut trailing = good.clone();
    trailing.extend_from_slice(b"more");
    cases.push(("trailing-bytes", trailing, "its signed manifest says"));
    let server = UpdateServer::start()?;
    for (name, bytes, _) in &cases {
        server.put(&format!("/{name}.bundle"), bytes.clone());
    }
    let esp_before = partition_bytes(&image, "esp")?;
    let slot_before = partition_bytes(&image, "keel-root-b")?;
    let running_before = partition_bytes(&image, "keel-root-a")?;
    let port = free_port()?;
    let vm = boot("update_refusals", scratch.path(), &image, port)?;
    status(port)?;
    for (name, _, expected) in &cases {
        let output = keelctl(port, &["update", &server.guest_url(&format!("/{name}.bundle"))])?;
        let said = text(&output);
        ensure!(output.status.code() == Some(1), "{name}: keelctl exit {:?}: {said}", output.status.code());
        ensure!(said.contains(expected), "{name}: the refusal does not say {expected:?}: {said}");
    }
    // An install that fails after it started, answered to the client that waits for it.
    let (code, body) = post_update_and_wait(port, &server.guest_url("/bad-root.bundle"), false)?;
    ensure!(code == 400 && body.contains("the bundle's payload root (bytes"), "the wait's answer: {code} {body}");
    vm.power_down()?;
    vm.wait_for_exit(timeouts::SHUTDOWN)?;
    let console = vm.console();
    ensure!(!console.contains("removed the entry"), "an install went past its checks:\n{console}");
    ensure!(partition_bytes(&image, "esp")? == esp_before, "the ESP changed; console:\n{console}");
    ensure!(partition_bytes(&image, "keel-root-b")? == slot_before, "slot b changed; console:\n{console}");
    ensure!(esp::entries(&image)? == ["keel-1.0.0-a.conf"], "entries: {:?}", esp::entries(&image)?);
    ensure!(partition_bytes(&image, "keel-root-a")? == running_before, "the running slot changed:\n{console}");
    Ok(())
}

#[test]
fn one_install_at_a_time_and_keelctl_rollback_returns_to_the_previous_version() -> Result<()> {
    let scratch = tempfile::tempdir()?;
    let kit = UpdateKit::new(scratch.path(), &artifacts())?;
    let image = kit.image("1.0.0")?;
    let server = UpdateServer::start()?;
    server.put_file("/b.bundle", &kit.bundle("1.1.0")?)?;
    let port = free_port()?;

    let vm = boot("rollback_a", scratch.path(), &image, port)?;
    status(port)?;
    // Held half-way by the server: a second install is refused while the first runs.
    server.stall("/b.bundle", 8 << 20);
    let first = {
        let url = server.guest_url("/b.bundle");
        std::thread::spawn(move || keelctl(port, &["update", &url, "--reboot"]))
    };
    ensure!(server.wait_stalled("/b.bundle", INSTALL), "the install never reached the stall");
    let second = keelctl(port, &["update", &server.guest_url("/b.bundle")])?;
    ensure!(
        second.status.code() == Some(1) && text(&second).contains("an install is running already"),
        "a second install was not refused: {}",
        text(&second)
    );
    let running = status(port)?;
    ensure!(running["update"]["state"] == "downloading", "status during the install: {running}");
    server.release();
    let first = first.join().expect("keelctl thread")?;
    ensure!(first.status.success(), "the first install failed: {}", text(&first));
    vm.wait_for_exit(INSTALL)?;

    let vm = boot("rollback_b", scratch.path(), &image, port)?;
    wait_blessed(&vm, "keel-1.1.0-b+3.conf")?;
    let output = keelctl(port, &["rollback"])?;
    ensure!(output.status.success(), "keelctl rollback: {}", text(&output));
    ensure!(text(&output).contains("rolling back to keel 1.0.0"), "keelctl rollback: {}", text(&output));
    vm.wait_for_exit(timeouts::SHUTDOWN).context("QEMU should exit on the rollback's reboot")?;
    let entries = esp::entries(&image)?;
    ensure!(entries == ["keel-1.0.0-a.conf", "keel-1.1.0-b+0-0.conf"], "entries after the rollback: {entries:?}");

    // Back on a, and it stays there: the next boot is a again, and nothing is left to roll back to.
    for name in ["rollback_back_on_a", "rollback_still_on_a"] {
        let vm = boot(name, scratch.path(), &image, port)?;
        let now = status(port)?;
        ensure!(now["slot"] == "a" && now["boot"]["state"] == "blessed", "{name}: {now}");
        vm.power_down()?;
        vm.wait_for_exit(timeouts::SHUTDOWN)?;
    }
    let vm = boot("rollback_nothing_left", scratch.path(), &image, port)?;
    status(port)?;
    let output = keelctl(port, &["rollback"])?;
    ensure!(
        output.status.code() == Some(1) && text(&output).contains("has no good boot entry"),
        "a rollback with nothing to go back to: {}",
        text(&output)
    );
    vm.power_down()?;
    vm.wait_for_exit(timeouts::SHUTDOWN)?;
    Ok(())
}
