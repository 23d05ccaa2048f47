//! `_ping`, `version`, `info` and keel's `status`: what a client asks before anything else.

use hyper::{Method, Response, StatusCode};
use keel_supervision::machine::State;
use serde_json::json;

use super::{json, reply, Body, Context};
use crate::docker::{Component, Platform, Version};
use crate::{DOCKER_API_VERSION, DOCKER_MIN_API_VERSION};

/// `HEAD|GET /_ping`: `OK`, with the headers the CLI negotiates from (no `Builder-Version`: keel does not build).
pub fn ping(method: &Method) -> Response<Body> {
    let body = if method == Method::HEAD { Vec::new() } else { b"OK".to_vec() };
    let mut response = reply(StatusCode::OK, "text/plain; charset=utf-8", body);
    for (name, value) in [
        ("Api-Version", DOCKER_API_VERSION),
        ("Ostype", "linux"),
        ("Docker-Experimental", "false"),
        ("Cache-Control", "no-cache, no-store, must-revalidate"),
    ] {
        if let Ok(value) = value.parse() {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

/// `uname -r`.
fn kernel_release() -> String {
    nix::sys::utsname::uname().map(|uts| uts.release().to_string_lossy().into_owned()).unwrap_or_default()
}

/// `GET /version`.
pub fn version(context: &Context) -> Response<Body> {
    let version = Version {
        platform: Platform { name: format!("keel {}", context.version) },
        components: vec![Component { name: "Engine".to_owned(), version: context.version.clone() }],
        version: context.version.clone(),
        api_version: DOCKER_API_VERSION.to_owned(),
        min_api_version: DOCKER_MIN_API_VERSION.to_owned(),
        git_commit: String::new(),
        go_version: "none (keel is written in Rust)".to_owned(),
        os: "linux".to_owned(),
        arch: std::env::consts::ARCH.replace("x86_64", "amd64"),
        kernel_version: kernel_release(),
        build_time: String::new(),
    };
    json(StatusCode::OK, &version)
}

/// `GET /info`: the counts `docker info` shows, and what the host is.
pub fn info(context: &Context) -> Response<Body> {
    let statuses = context.supervisor.status();
    let count = |state: State| statuses.iter().filter(|status| status.state == state).count();
    let hostname = nix::unistd::gethostname().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    let value = json!({
        "ID": crate::ids::container_id(&format!("host:{hostname}")),
        "Containers": statuses.len(),
        "ContainersRunning": count(State::Running),
        "ContainersPaused": 0,
        "ContainersStopped": statuses.len() - count(State::Running),
        "Images": context.supervisor.image_count(),
        "Driver": "overlay",
        "Name": hostname,
        "ServerVersion": context.version,
        "KernelVersion": kernel_release(),
        "OperatingSystem": "keel",
        "OSType": "linux",
        "Architecture": std::env::consts::ARCH,
        "NCPU": std::thread::available_parallelism().map(usize::from).unwrap_or(1),
        "MemTotal": mem_total_bytes(),
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": "2",
        "LoggingDriver": "syslog",
        "DockerRootDir": context.supervisor.state_dir().display().to_string(),
        "SecurityOptions": ["name=seccomp,profile=builtin"],
        "Warnings": [],
    });
    json(StatusCode::OK, &value)
}

/// `MemTotal` of /proc/meminfo in bytes (0 if unreadable).
pub fn mem_total_bytes() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib.saturating_mul(1024))
}

/// Time since the machine booted, from /proc/uptime (zero if unreadable).
pub fn uptime() -> std::time::Duration {
    let seconds = std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse::<f64>().ok())
        .unwrap_or(0.0);
    std::time::Duration::try_from_secs_f64(seconds).unwrap_or_default()
}

/// `GET /keel/v1/status`: keel's own view of the host.
pub fn keel_status(context: &Context) -> Response<Body> {
    let statuses = context.supervisor.status();
    let uptime_s = uptime().as_secs();
    let containers: Vec<_> = statuses
        .iter()
        .map(|status| json!({"name": status.name, "state": status.status, "restart_count": status.restart_count}))
        .collect();
    let config = context.hooks.host.as_ref().map(|host| host.config()).unwrap_or_default();
    let syslog = context.hooks.host.as_ref().and_then(|host| host.syslog()).map(|stats| {
        json!({
            "sent": stats.sent,
            "dropped": stats.dropped,
            "queued": stats.queued,
            "reconnects": stats.reconnects,
            "connected": stats.connected,
            "last_error": stats.last_error,
        })
    });
    let mut status = json!({
        "version": context.version,
        "uptime_s": uptime_s,
        "config": {
            "generation": config.generation,
            "errors": super::keel_config::error_list(config.rejected.iter()),
        },
        "syslog": syslog,
        "containers": containers,
    });
    if let (Some(fields), serde_json::Value::Object(update)) =
        (status.as_object_mut(), super::update::status_fields(context))
    {
        fields.extend(update);
    }
    json(StatusCode::OK, &status)
}
