//! `make bench` for updates: the install of a signed bundle from a loopback HTTP server into the inactive slot,
//! against `dd` of the same bundle's bytes from the same server to the same partition, in one booted keel (OVMF,
//! systemd-boot), round by round with the side that goes first alternating; prints every round, the medians and
//! their ratio (target ≤ 1.3×).
//!
//! Like for like: both sides run inside the guest, one after the other, timed there from `/proc/uptime` by one
//! busybox container (`network = "host"`, the partition `keel-root-b` as its only device). `dd`'s side is
//! `wget -O - URL | dd of=/dev/vdaN bs=1M conv=fsync`: download and write with a final fsync. The install's side is
//! `POST /keel/v1/update?wait=true` to PID 1's API, which answers once the install ended: download, signature and
//! hash checks with the root held in a staging file until it verified, the root copied to `keel-root-b` and
//! synced, kernel and initramfs written to the ESP (about two thirds of the bytes go there rather than to the
//! partition) and the entry. Each round installs a bundle of another
//! version (0.2.1, 0.2.2, …, same size within bytes), so that a round never sees the previous round's outcome.
//!
//! A third line (not part of the ratio) gives what hashing every byte costs the install, from its own console line
//! (`update: read and verified in … s (… s of it hashing)`): under TCG the guest CPU has no SHA extensions, and
//! `dd` hashes nothing.
//!
//! `KEEL_BENCH_ROUNDS` sets the rounds (default 3). Exit codes: 0 done, 111 a step failed (the message says which).

use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use keel_qemu_tests::artifacts;
use keel_qemu_tests::config_drive::{self, DriveSpec};
use keel_qemu_tests::disk::{self, DiskFormat};
use keel_qemu_tests::timeouts;
use keel_qemu_tests::update_kit::UpdateKit;
use keel_qemu_tests::update_server::UpdateServer;
use keel_qemu_tests::vm::{Vm, VmConfig};

const DEFAULT_ROUNDS: usize = 3;
/// One round, both sides, under TCG on a loaded machine.
const ROUND_TIMEOUT: Duration = Duration::from_secs(600);

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("keel-update-bench: {error}");
            ExitCode::from(111)
        }
    }
}

fn run() -> Result<(), Box<dyn Error>> {
    let artifacts = artifacts::ensure_built()?;
    let rounds =
        std::env::var("KEEL_BENCH_ROUNDS").ok().and_then(|rounds| rounds.parse().ok()).unwrap_or(DEFAULT_ROUNDS).max(1);
    let work = artifacts.build_dir.join("bench").join(format!("update-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let result = bench(&artifacts, &work, rounds);
    let _ = std::fs::remove_dir_all(&work);
    result
}

fn bench(artifacts: &artifacts::Artifacts, work: &Path, rounds: usize) -> Result<(), Box<dyn Error>> {
    let kit = UpdateKit::new(work, artifacts)?;
    let image = kit.image("0.1.0")?;
    let server = UpdateServer::start()?;
    let mut bundle_size = 0;
    for round in 1..=rounds {
        let bundle: PathBuf = kit.bundle(&format!("0.2.{round}"))?;
        bundle_size = std::fs::metadata(&bundle)?.len();
        server.put_file(&format!("/keel-0.2.{round}.bundle"), &bundle)?;
    }
    let partition = format!("/dev/vda{}", disk::partition_number(&image, "keel-root-b")?);
    let user_data = user_data(&server.guest_url(""), &partition, rounds);
    let spec = DriveSpec { user_data: &user_data, meta_data: None, format: "vfat", layout: "nocloud" };
    let drive = config_drive::build(work, "update-bench", &spec)?;
    let config = VmConfig::ovmf("update-bench", artifacts)
        .no_disks()
        .disk_file(&image, DiskFormat::Raw)
        .disk_file(&drive, DiskFormat::Raw)
        .network()
        .log_dir(artifacts.log_dir());
    let vm = Vm::start(config)?;
    vm.wait_for_ready(timeouts::OVMF_READY)?;

    let mut dd = Vec::new();
    let mut install = Vec::new();
    for _ in 0..rounds * 2 {
        let line = vm.wait_for("bench | bench ", ROUND_TIMEOUT)?;
        let fields: Vec<&str> = line.split("bench | bench ").nth(1).unwrap_or("").split_whitespace().collect();
        let [side, round, seconds] = fields[..] else { return Err(format!("unexpected line {line:?}").into()) };
        let seconds: f64 = seconds.parse().map_err(|_| format!("no seconds in {line:?}"))?;
        println!("round {round}: {side:<8} {seconds:>7.2} s");
        match side {
            "dd" => dd.push(seconds),
            "install" => install.push(seconds),
            "failed" => return Err(format!("the install of round {round} failed; see the console log").into()),
            _ => return Err(format!("unexpected line {line:?}").into()),
        }
    }
    vm.power_down()?;
    vm.wait_for_exit(timeouts::SHUTDOWN)?;
    let hashing: Vec<f64> = vm.console().lines().filter_map(hashing_seconds).collect();

    let (dd, install, hash) = (median(dd), median(install), median(hashing));
    let megabytes = bundle_size as f64 / 1e6;
    println!();
    println!("update install vs dd, {rounds} rounds, bundle {megabytes:.1} MB from a loopback HTTP server, under TCG");
    println!("  keel install (POST /keel/v1/update?wait=true):    {install:>7.2} s  {:>6.1} MB/s", megabytes / install);
    println!("  wget | dd of=keel-root-b conv=fsync:               {dd:>7.2} s  {:>6.1} MB/s", megabytes / dd);
    println!("  ratio install / dd: {:.2}× (target ≤ 1.3×)", install / dd);
    println!("  of the install, sha256 of every byte (dd hashes nothing): {hash:>7.2} s");
    println!("  the install's other work against dd: {:.2}×", (install - hash) / dd);
    Ok(())
}

/// The hashing seconds of the install's console line `update: read and verified in 0.29 s (0.16 s of it hashing)…`.
fn hashing_seconds(line: &str) -> Option<f64> {
    let (before, _) = line.split_once(" s of it hashing)")?;
    before.rsplit('(').next()?.trim().parse().ok()
}

/// One busybox container runs both sides, alternating which goes first, and prints `bench <side> <round> <s>`.
fn user_data(base_url: &str, partition: &str, rounds: usize) -> String {
    let script = format!(
        r#"up() {{ cut -d' ' -f1 /proc/uptime; }}
took() {{ awk "BEGIN {{ printf \"%.2f\", $2 - $1 }}"; }}
api=http://127.0.0.1:2375
dd_side() {{
  t0=$(up); wget -q -O - {base_url}/keel-0.2.$1.bundle | dd of={partition} bs=1M conv=fsync 2>/dev/null; t1=$(up)
  echo "bench dd $1 $(took $t0 $t1)"
}}
install_side() {{
  t0=$(up)
  if wget -q -O /dev/null --post-data "{{\"source\":\"{base_url}/keel-0.2.$1.bundle\"}}" "$api/keel/v1/update?wait=true"
  then t1=$(up); echo "bench install $1 $(took $t0 $t1)"
  else echo "bench failed $1 0"
  fi
}}
sleep 10
for round in $(seq 1 {rounds}); do
  if [ $((round % 2)) = 1 ]; then dd_side $round; install_side $round; else install_side $round; dd_side $round; fi
done
exec sleep 3600
"#
    );
    let command = serde_json::to_string(&["sh", "-c", &script]).unwrap_or_default();
    format!(
        "[api]\ntcp = \"0.0.0.0:2375\"\n\n[containers.bench]\nimage = \"keel/busybox\"\nnetwork = \"host\"\n\
         restart = \"no\"\ndevices = [\"{partition}\"]\ncommand = {command}\n"
    )
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}
