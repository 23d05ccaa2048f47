//! `GET /containers/{id}/top`: the container's processes as `ps -ef` shows them, found on the host's `/proc` by
//! their PID namespace (the container's PID 1 names it), so that it works with or without a cgroup.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hyper::{Response, StatusCode};
use keel_supervision::machine::State;
use serde_json::json;

use super::containers::resolve;
use super::{error_reply, json, Body, Context};

/// `ps -ef`'s columns, which the `docker top` table shows.
const TITLES: [&str; 8] = ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"];
/// The kernel's clock ticks per second for /proc times (USER_HZ, 100 on every Linux keel runs on).
const TICKS_PER_SECOND: u64 = 100;
/// The most of a command line shown, as `ps` cuts it too.
const MAX_CMD: usize = 4096;

pub fn top(context: &Context, reference: &str, query: &HashMap<String, String>) -> Response<Body> {
    let name = match resolve(context, reference) {
        Ok(name) => name,
        Err(refusal) => return refusal.reply(),
    };
    if query.get("ps_args").is_some_and(|args| !args.is_empty() && args != "-ef") {
        return error_reply(StatusCode::BAD_REQUEST, "keel's top shows ps -ef's columns only");
    }
    let status = context.supervisor.container(&name);
    let Some(init_pid) = status.filter(|status| status.state == State::Running).and_then(|status| status.pid) else {
        return error_reply(StatusCode::CONFLICT, &format!("container {name} is not running"));
    };
    let Ok(namespace) = std::fs::read_link(format!("/proc/{init_pid}/ns/pid")) else {
        return error_reply(StatusCode::CONFLICT, &format!("container {name} is not running"));
    };
    let boot = boot_time();
    let mut processes: Vec<(u32, Vec<String>)> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read_link(format!("/proc/{pid}/ns/pid")).is_ok_and(|ns| ns == namespace))
        .filter_map(|pid| Some((pid, row(pid, boot)?)))
        .collect();
    processes.sort_by_key(|(pid, _)| *pid);
    let rows: Vec<Vec<String>> = processes.into_iter().map(|(_, row)| row).collect();
    json(StatusCode::OK, &json!({"Titles": TITLES, "Processes": rows}))
}

/// When the machine booted (now − uptime).
fn boot_time() -> SystemTime {
    SystemTime::now().checked_sub(super::system::uptime()).unwrap_or(UNIX_EPOCH)
}

/// One `ps -ef` row of `pid`; `None` when it is gone.
fn row(pid: u32, boot: SystemTime) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses; the fields after its last ')' are fixed.
    let (head, rest) = stat.rsplit_once(')')?;
    let comm = head.split_once('(').map_or("", |(_, comm)| comm);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |index: usize| fields.get(index).and_then(|value| value.parse::<u64>().ok()).unwrap_or(0);
    // After the name: state (0), ppid (1), …, utime (11), stime (12), …, starttime (19).
    let ppid = field(1);
    let cpu_seconds = (field(11) + field(12)) / TICKS_PER_SECOND;
    let started = boot + Duration::from_secs(field(19) / TICKS_PER_SECOND);
    let uid = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| line.strip_prefix("Uid:"))?.split_whitespace().next().map(str::to_owned)
        })
        .unwrap_or_default();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let mut cmd: String = String::from_utf8_lossy(&cmdline[..cmdline.len().min(MAX_CMD)])
        .split('\0')
        .filter(|arg| !arg.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if cmd.is_empty() {
        cmd = format!("[{comm}]");
    }
    let clock = started.duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs() % 86_400);
    Some(vec![
        uid,
        pid.to_string(),
        ppid.to_string(),
        "0".to_owned(),
        format!("{:02}:{:02}", clock / 3600, clock / 60 % 60),
        "?".to_owned(),
        format!("{:02}:{:02}:{:02}", cpu_seconds / 3600, cpu_seconds / 60 % 60, cpu_seconds % 60),
        cmd,
    ])
}
