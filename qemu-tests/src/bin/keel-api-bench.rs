//! `make bench` for the API: `GET /containers/json` with 50 running containers against `GET /_ping` (a static
//! reply of the same hyper server), p50 and p99 over 1,000 requests each, interleaved in the same run; target p99
//! ≤ 5 ms.
//!
//! The server is `keel supervise` (the static musl build `make` ships) on this host with 50 busybox `sleep`
//! containers: the same API server, supervisor and snapshots PID 1 runs, without a VM's TCG slowdown. Each side
//! has its own keep-alive connection on the unix socket, as the docker CLI's requests of one command share one; a
//! request is timed from its first byte sent to its reply's last byte read.
//!
//! Run as root. `KEEL_BIN` names the `keel` binary (default: the musl release build, else the host release build).
//! Exit codes: 0 done, 111 a step failed (the message says which).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use keel_fixtures::containers::{TestHost, BUSYBOX};
use keel_fixtures::supervise::KeelSupervise;
use keel_qemu_tests::bench::api_latency::{millis, ApiConnection, Percentiles};

const CONTAINERS: usize = 50;
const REQUESTS: usize = 1000;
/// Requests of each kind before the timed ones (connection set-up, first allocations).
const WARM_UP: usize = 50;
/// How long the 50 containers may take to be running.
const START_TIMEOUT: Duration = Duration::from_secs(300);
const TARGET_P99: Duration = Duration::from_millis(5);

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("keel-api-bench: {error:#}");
            ExitCode::from(111)
        }
    }
}

/// The user-data: `CONTAINERS` busybox `sleep`s (SIGKILL as stop signal: the bench's teardown need not wait out
/// stop timeouts of a PID 1 that ignores SIGTERM).
fn user_data() -> String {
    (1..=CONTAINERS)
        .map(|n| {
            format!(
                "[containers.sleeper{n:02}]\nimage = \"{BUSYBOX}\"\ncommand = [\"sleep\", \"100000\"]\n\
                 stop_signal = \"SIGKILL\"\n\n"
            )
        })
        .collect()
}

/// How many containers `GET /containers/json` lists (running ones only).
fn running(connection: &mut ApiConnection) -> Result<usize> {
    let (_, body) = connection.get("/containers/json")?;
    let list: serde_json::Value = serde_json::from_slice(&body).context("GET /containers/json is not JSON")?;
    Ok(list.as_array().map_or(0, Vec::len))
}

fn run() -> Result<()> {
    let keel = keel_qemu_tests::bench::keel_binary().map_err(|error| anyhow::anyhow!("{error}"))?;
    let cache = keel_qemu_tests::bench::bench_dir()?;
    let host = TestHost::new(&cache);
    let supervise = KeelSupervise::start(&keel, &host, &user_data());

    let mut list = ApiConnection::open(&supervise.socket)?;
    let deadline = Instant::now() + START_TIMEOUT;
    while running(&mut list)? < CONTAINERS {
        ensure!(Instant::now() < deadline, "the {CONTAINERS} containers were not running within {START_TIMEOUT:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
    let mut ping = ApiConnection::open(&supervise.socket)?;
    for _ in 0..WARM_UP {
        ping.get("/_ping")?;
        list.get("/containers/json")?;
    }
    let (mut ping_times, mut list_times) = (Vec::with_capacity(REQUESTS), Vec::with_capacity(REQUESTS));
    let mut list_bytes = 0;
    for _ in 0..REQUESTS {
        let (time, body) = ping.get("/_ping")?;
        ensure!(body == b"OK", "GET /_ping answered {body:?}");
        ping_times.push(time);
        let (time, body) = list.get("/containers/json")?;
        list_times.push(time);
        list_bytes = body.len();
    }
    ensure!(running(&mut list)? == CONTAINERS, "a container stopped during the bench");

    let ping = Percentiles::of(&ping_times).context("no samples")?;
    let listed = Percentiles::of(&list_times).context("no samples")?;
    println!("API latency: keel supervise ({}) with {CONTAINERS} running busybox containers, {REQUESTS} requests of each kind interleaved, one keep-alive connection each on the unix socket, timed from the request's first byte to the reply's last", keel.display());
    println!();
    println!("| request | reply | p50 | p99 | max |");
    println!("|---|---|---|---|---|");
    println!(
        "| GET /_ping (static reply, same server) | 2 B | {} | {} | {} |",
        millis(ping.p50),
        millis(ping.p99),
        millis(ping.max)
    );
    println!(
        "| GET /containers/json ({CONTAINERS} containers) | {list_bytes} B | {} | {} | {} |",
        millis(listed.p50),
        millis(listed.p99),
        millis(listed.max)
    );
    println!();
    let verdict = if listed.p99 <= TARGET_P99 { "met" } else { "MISSED" };
    println!("target: GET /containers/json p99 ≤ {}: {verdict}", millis(TARGET_P99));
    Ok(())
}
