//! `GET /containers/{id}/stats`: CPU, memory and process counts from the container's cgroup2 files, in Docker's
//! shape (`docker stats` computes its percentages from `cpu_stats` against `precpu_stats`). One sample with
//! `stream=false` (taken over [`SAMPLE_GAP`], as Docker's one-shot is), otherwise one a second until the client
//! goes away or the container stops.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use hyper::{Response, StatusCode};
use keel_logs::syslog::rfc3339_millis;
use keel_supervision::machine::State;
use serde_json::{json, Value};

use super::containers::resolve;
use super::{json, stream_body, Body, Context};
use crate::ids::container_id;

/// Between the two samples of a one-shot reply.
const SAMPLE_GAP: Duration = Duration::from_millis(500);
/// Between the samples of a stream.
const STREAM_INTERVAL: Duration = Duration::from_secs(1);
/// The most a cgroup file read here may hold (they are a few lines each).
const MAX_FILE: u64 = 64 * 1024;

/// One reading of a container's cgroup.
#[derive(Clone)]
struct Sample {
    at: SystemTime,
    cpu_usec: u64,
    user_usec: u64,
    system_usec: u64,
    system_ns: u64,
    memory: u64,
    memory_limit: u64,
    inactive_file: u64,
    pids: u64,
    pids_limit: u64,
}

pub async fn stats(context: &Context, reference: &str, query: &HashMap<String, String>) -> Response<Body> {
    let name = match resolve(context, reference) {
        Ok(name) => name,
        Err(refusal) => return refusal.reply(),
    };
    let cgroup = context.supervisor.cgroup_dir(&name);
    // Docker streams unless told `stream=0|false`.
    let stream = !matches!(query.get("stream").map(String::as_str), Some("0" | "false" | "False"));
    let id = container_id(&name);
    if !stream {
        let before = sample(cgroup.as_deref());
        tokio::time::sleep(SAMPLE_GAP).await;
        let after = sample(cgroup.as_deref());
        return json(StatusCode::OK, &shape(&name, &id, &after, &before));
    }
    let (sender, body) = stream_body();
    let supervisor = std::sync::Arc::clone(&context.supervisor);
    tokio::spawn(async move {
        let mut previous = sample(cgroup.as_deref());
        loop {
            tokio::select! {
                _ = tokio::time::sleep(STREAM_INTERVAL) => {}
                _ = sender.closed() => return,
            }
            let now = sample(cgroup.as_deref());
            let mut line = serde_json::to_vec(&shape(&name, &id, &now, &previous)).unwrap_or_default();
            line.push(b'\n');
            if sender.send(Bytes::from(line)).await.is_err() {
                return;
            }
            previous = now;
            if supervisor.container(&name).is_none_or(|status| matches!(status.state, State::Exited | State::Dead)) {
                return;
            }
        }
    });
    let mut response = Response::new(body);
    if let Ok(value) = "application/json".parse() {
        response.headers_mut().insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

fn shape(name: &str, id: &str, now: &Sample, before: &Sample) -> Value {
    let cpu = |sample: &Sample| {
        json!({
            "cpu_usage": {
                "total_usage": sample.cpu_usec.saturating_mul(1000),
                "usage_in_usermode": sample.user_usec.saturating_mul(1000),
                "usage_in_kernelmode": sample.system_usec.saturating_mul(1000),
            },
            "system_cpu_usage": sample.system_ns,
            "online_cpus": std::thread::available_parallelism().map(usize::from).unwrap_or(1),
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
        })
    };
    json!({
        "name": format!("/{name}"),
        "id": id,
        "read": rfc3339_millis(now.at),
        "preread": rfc3339_millis(before.at),
        "pids_stats": {"current": now.pids, "limit": now.pids_limit},
        "cpu_stats": cpu(now),
        "precpu_stats": cpu(before),
        "memory_stats": {
            "usage": now.memory,
            "limit": now.memory_limit,
            "stats": {"inactive_file": now.inactive_file},
        },
        "blkio_stats": {},
        "num_procs": 0,
    })
}

/// Reads the container's cgroup files now; what is missing (no cgroup, a controller that is off) reads as 0.
fn sample(cgroup: Option<&Path>) -> Sample {
    let read = |file: &str| -> String {
        let Some(dir) = cgroup else { return String::new() };
        keel_config::bounded_file::read_text_file_bounded(&dir.join(file), MAX_FILE).unwrap_or_default()
    };
    let keyed = |text: &str, key: &str| -> u64 {
        text.lines().find_map(|line| line.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok()).unwrap_or(0)
    };
    let number = |text: String| -> Option<u64> { text.trim().parse().ok() };
    let cpu = read("cpu.stat");
    let memory_stat = read("memory.stat");
    Sample {
        at: SystemTime::now(),
        cpu_usec: keyed(&cpu, "usage_usec"),
        user_usec: keyed(&cpu, "user_usec"),
        system_usec: keyed(&cpu, "system_usec"),
        system_ns: system_cpu_ns(),
        memory: number(read("memory.current")).unwrap_or(0),
        // A container without a limit (`max`) may use the host's memory.
        memory_limit: number(read("memory.max")).unwrap_or_else(super::system::mem_total_bytes),
        inactive_file: keyed(&memory_stat, "inactive_file"),
        pids: number(read("pids.current")).unwrap_or(0),
        pids_limit: number(read("pids.max")).unwrap_or(0),
    }
}

/// All CPUs' time since boot in ns, from the first line of /proc/stat (USER_HZ ticks), as Docker reports it.
fn system_cpu_ns() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: u64 = stat
        .lines()
        .next()
        .and_then(|line| line.strip_prefix("cpu "))
        .map_or(0, |rest| rest.split_whitespace().filter_map(|field| field.parse::<u64>().ok()).take(8).sum());
    ticks.saturating_mul(10_000_000)
}
