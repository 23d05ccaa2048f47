//! `/containers/…`: listing and inspecting the declared containers, and start, stop and restart through the
//! supervisor. Declared containers are the config's: they cannot be created or removed here.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hyper::{Response, StatusCode};
use keel_config::containers::process::CommandLine;
use keel_config::containers::restart::RestartPolicy as Policy;
use keel_config::{ContainerConfig, NetworkMode};
use keel_logs::syslog::rfc3339_millis;
use keel_supervision::machine::State;
use keel_supervision::ContainerStatus;

use super::filters::{Filters, CONTAINER_FILTERS};
use super::{error_reply, json, no_content, query, Body, Context, Refusal};
use crate::docker::{
    ContainerInspect, ContainerState, ContainerSummary, HealthLogEntry, HealthView, InspectConfig, InspectHostConfig,
    RestartPolicy, SummaryHostConfig,
};
use crate::ids::{container_id, find, Lookup};

/// Docker's zero time, for "never".
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// The container `reference` names, or the reply to give instead (404, or 400 for an ambiguous prefix).
pub fn resolve(context: &Context, reference: &str) -> Result<String, Refusal> {
    let names: Vec<String> = context.supervisor.status().into_iter().map(|status| status.name).collect();
    match find(reference, &names) {
        Lookup::Found(name) => Ok(name.to_owned()),
        Lookup::NotFound => Err(Refusal::new(StatusCode::NOT_FOUND, format!("No such container: {reference}"))),
        Lookup::Ambiguous => Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            format!("multiple containers found with provided prefix: {reference}"),
        )),
    }
}

/// `GET /containers/json`: running containers, or all with `all=1`.
pub fn list(context: &Context, query: &HashMap<String, String>) -> Response<Body> {
    let all = query::flag(query, "all");
    let filters = match Filters::parse(query.get("filters"), &CONTAINER_FILTERS) {
        Ok(filters) => filters,
        Err(refusal) => return refusal.reply(),
    };
    let now = SystemTime::now();
    let summaries: Vec<ContainerSummary> = context
        .supervisor
        .status()
        .into_iter()
        .filter(|status| all || status.state == State::Running)
        .filter(|status| filters.containers_match(status))
        .map(|status| {
            let config = context.supervisor.config(&status.name);
            summary(&status, config.as_ref(), now)
        })
        .collect();
    json(StatusCode::OK, &summaries)
}

fn summary(status: &ContainerStatus, config: Option<&ContainerConfig>, now: SystemTime) -> ContainerSummary {
    ContainerSummary {
        id: container_id(&status.name),
        names: vec![format!("/{}", status.name)],
        image: status.image.clone(),
        image_id: status.image_digest.clone().unwrap_or_default(),
        command: config.map(command_line).unwrap_or_default(),
        created: unix_seconds(created(status)),
        ports: Vec::new(),
        labels: status.labels.clone(),
        state: status.status.to_owned(),
        status: status_text(status, now),
        host_config: SummaryHostConfig { network_mode: config.map(network_mode).unwrap_or("host").to_owned() },
        mounts: Vec::new(),
    }
}

/// What `docker ps` shows as COMMAND: the configured entrypoint and command.
fn command_line(config: &ContainerConfig) -> String {
    configured_argv(config).join(" ")
}

/// The configured entrypoint followed by the configured command (the image's defaults are not known here).
fn configured_argv(config: &ContainerConfig) -> Vec<String> {
    let mut argv = words(&config.entrypoint);
    argv.extend(words(&config.command));
    argv
}

fn words(line: &Option<CommandLine>) -> Vec<String> {
    line.as_ref().map(CommandLine::argv).unwrap_or_default()
}

fn network_mode(config: &ContainerConfig) -> &'static str {
    match config.network {
        NetworkMode::None => "none",
        _ => "host",
    }
}

/// When the container was made, as far as keel knows: its first start (keel creates a container as it starts it).
fn created(status: &ContainerStatus) -> Option<SystemTime> {
    status.started_at.or(status.finished_at)
}

fn unix_seconds(time: Option<SystemTime>) -> i64 {
    time.and_then(|time| time.duration_since(UNIX_EPOCH).ok()).map_or(0, |since| since.as_secs() as i64)
}

/// `Up 5 minutes (healthy)`, `Exited (0) 2 seconds ago`, `Restarting (1) 3 seconds ago`, `Created`.
pub fn status_text(status: &ContainerStatus, now: SystemTime) -> String {
    let since = |time: Option<SystemTime>| time.and_then(|time| now.duration_since(time).ok()).unwrap_or_default();
    match status.state {
        State::Running => {
            let health = status.health.as_ref().map(|health| format!(" ({})", health.status)).unwrap_or_default();
            format!("Up {}{health}", human_duration(since(status.started_at)))
        }
        State::Restarting => {
            format!("Restarting ({}) {} ago", status.exit_code, human_duration(since(status.finished_at)))
        }
        State::Exited | State::Dead if status.finished_at.is_some() => {
            format!("Exited ({}) {} ago", status.exit_code, human_duration(since(status.finished_at)))
        }
        _ => "Created".to_owned(),
    }
}

/// Docker's `units.HumanDuration`.
pub fn human_duration(duration: Duration) -> String {
    let seconds = duration.as_secs();
    let (minutes, hours) = (seconds / 60, seconds / 3600);
    match seconds {
        0 => "Less than a second".to_owned(),
        1 => "1 second".to_owned(),
        2..60 => format!("{seconds} seconds"),
        _ if minutes == 1 => "About a minute".to_owned(),
        _ if minutes < 60 => format!("{minutes} minutes"),
        _ if hours == 1 => "About an hour".to_owned(),
        _ if hours < 48 => format!("{hours} hours"),
        _ if hours < 24 * 7 * 2 => format!("{} days", hours / 24),
        _ if hours < 24 * 30 * 2 => format!("{} weeks", hours / 24 / 7),
        _ if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        _ => format!("{} years", hours / 24 / 365),
    }
}

fn time_or_zero(time: Option<SystemTime>) -> String {
    time.map_or_else(|| ZERO_TIME.to_owned(), rfc3339_millis)
}

/// `GET /containers/{id}/json`.
pub fn inspect(context: &Context, reference: &str) -> Response<Body> {
    let name = match resolve(context, reference) {
        Ok(name) => name,
        Err(refusal) => return refusal.reply(),
    };
    let (Some(status), Some(config)) = (context.supervisor.container(&name), context.supervisor.config(&name)) else {
        return error_reply(StatusCode::NOT_FOUND, &format!("No such container: {reference}"));
    };
    json(StatusCode::OK, &inspection(&status, &config))
}

fn inspection(status: &ContainerStatus, config: &ContainerConfig) -> ContainerInspect {
    let argv = configured_argv(config);
    let (path, args) = match argv.split_first() {
        Some((path, args)) => (path.clone(), args.to_vec()),
        None => (String::new(), Vec::new()),
    };
    let health = status.health.as_ref().map(|health| HealthView {
        status: health.status.to_string(),
        failing_streak: health.failing_streak,
        log: health
            .log
            .iter()
            .map(|probe| HealthLogEntry {
                start: rfc3339_millis(probe.start),
                end: rfc3339_millis(probe.end),
                exit_code: probe.exit_code,
                output: probe.output.clone(),
            })
            .collect(),
    });
    let (policy, retries) = match config.restart {
        Policy::No => ("no", 0),
        Policy::OnFailure { max_retries } => ("on-failure", max_retries.unwrap_or(0)),
        Policy::Always => ("always", 0),
        Policy::UnlessStopped => ("unless-stopped", 0),
    };
    ContainerInspect {
        id: container_id(&status.name),
        created: time_or_zero(created(status)),
        path,
        args,
        state: ContainerState {
            status: status.status.to_owned(),
            running: status.state == State::Running,
            paused: false,
            restarting: status.state == State::Restarting,
            oom_killed: status.oom_killed,
            dead: status.state == State::Dead,
            pid: status.pid.unwrap_or(0),
            exit_code: status.exit_code,
            error: status.error.clone(),
            started_at: time_or_zero(status.started_at),
            finished_at: time_or_zero(status.finished_at),
            health,
        },
        image: status.image_digest.clone().unwrap_or_default(),
        name: format!("/{}", status.name),
        restart_count: status.restart_count,
        driver: "overlay".to_owned(),
        platform: "linux".to_owned(),
        config: InspectConfig {
            hostname: status.hostname.clone(),
            image: config.image.clone(),
            cmd: words(&config.command),
            entrypoint: words(&config.entrypoint),
            env: config.env.iter().map(|(key, value)| format!("{key}={value}")).collect(),
            working_dir: config.workdir.clone().unwrap_or_default(),
            user: config
                .user
                .as_ref()
                .map(|user| match &user.group {
                    Some(group) => format!("{}:{group}", user.user),
                    None => user.user.clone(),
                })
                .unwrap_or_default(),
            labels: status.labels.clone(),
            tty: false,
            open_stdin: false,
            stop_signal: config.stop_signal.as_ref().map(ToString::to_string).unwrap_or_else(|| "SIGTERM".to_owned()),
            stop_timeout: config.stop_timeout,
        },
        host_config: InspectHostConfig {
            network_mode: network_mode(config).to_owned(),
            restart_policy: RestartPolicy { name: policy.to_owned(), maximum_retry_count: retries },
            privileged: config.privileged,
            readonly_rootfs: config.read_only,
            init: config.init,
            memory: config.resources.memory.unwrap_or(0),
            nano_cpus: config.resources.cpus.map_or(0, |cpus| (cpus * 1e9) as u64),
        },
    }
}

/// `POST /containers/{id}/start`: 204, or 304 when it already runs.
pub fn start(context: &Context, reference: &str) -> Response<Body> {
    let name = match resolve(context, reference) {
        Ok(name) => name,
        Err(refusal) => return refusal.reply(),
    };
    if context.supervisor.container(&name).is_some_and(|status| status.state == State::Running) {
        return not_modified();
    }
    match context.supervisor.start(&name) {
        Ok(()) => no_content(),
        Err(error) => error_reply(StatusCode::INTERNAL_SERVER_ERROR, &keel_logs::error_chain(&error)),
    }
}

/// `t` (seconds) of a stop or restart; `-1` or absent: the container's own.
fn timeout_of(query: &HashMap<String, String>) -> Result<Option<Duration>, Refusal> {
    match query.get("t").map(|text| text.parse::<i64>()) {
        None => Ok(None),
        Some(Ok(seconds)) if seconds < 0 => Ok(None),
        Some(Ok(seconds)) => Ok(Some(Duration::from_secs(seconds.unsigned_abs().min(86_400)))),
        Some(Err(_)) => Err(Refusal::new(StatusCode::BAD_REQUEST, "t: not a whole number of seconds")),
    }
}

/// `POST /containers/{id}/stop?t=N`: 204 once stopped, 304 when it was not running.
pub async fn stop(context: &Context, reference: &str, query: &HashMap<String, String>) -> Response<Body> {
    stop_or_restart(context, reference, query, false).await
}

/// `POST /containers/{id}/restart?t=N`: 204 once started again.
pub async fn restart(context: &Context, reference: &str, query: &HashMap<String, String>) -> Response<Body> {
    stop_or_restart(context, reference, query, true).await
}

/// Both take `t` and wait for the container on the blocking pool (the supervisor bounds the wait).
async fn stop_or_restart(
    context: &Context,
    reference: &str,
    query: &HashMap<String, String>,
    restart: bool,
) -> Response<Body> {
    let name = match resolve(context, reference) {
        Ok(name) => name,
        Err(refusal) => return refusal.reply(),
    };
    let timeout = match timeout_of(query) {
        Ok(timeout) => timeout,
        Err(refusal) => return refusal.reply(),
    };
    let running = context.supervisor.container(&name).is_some_and(|status| {
        matches!(status.state, State::Running | State::Starting | State::Stopping | State::Restarting)
    });
    if !restart && !running {
        return not_modified();
    }
    let supervisor = std::sync::Arc::clone(&context.supervisor);
    let done = tokio::task::spawn_blocking(move || {
        if restart {
            supervisor.restart(&name, timeout)
        } else {
            supervisor.stop(&name, timeout)
        }
    });
    match done.await {
        Ok(Ok(())) => no_content(),
        Ok(Err(error)) => error_reply(StatusCode::INTERNAL_SERVER_ERROR, &keel_logs::error_chain(&error)),
        Err(error) => error_reply(StatusCode::INTERNAL_SERVER_ERROR, &format!("the request failed: {error}")),
    }
}

/// `POST /containers/{id}/kill?signal=S`: 204 once sent (SIGKILL when none is named); 409 when not running.
pub async fn kill(context: &Context, reference: &str, query: &HashMap<String, String>) -> Response<Body> {
    let name = match resolve(context, reference) {
        Ok(name) => name,
        Err(refusal) => return refusal.reply(),
    };
    let signal = match query.get("signal").filter(|text| !text.is_empty()) {
        None => nix::sys::signal::Signal::SIGKILL as i32,
        Some(text) => match text
            .parse::<i32>()
            .ok()
            .or_else(|| keel_config::values::signal::parse_signal(text).ok().map(|signal| signal.0))
        {
            Some(signal) => signal,
            None => return error_reply(StatusCode::BAD_REQUEST, &format!("invalid signal: {text}")),
        },
    };
    let supervisor = std::sync::Arc::clone(&context.supervisor);
    match tokio::task::spawn_blocking(move || supervisor.kill(&name, signal)).await {
        Ok(Ok(())) => no_content(),
        Ok(Err(keel_supervision::SupervisorError::Refused { message, .. })) => {
            error_reply(StatusCode::CONFLICT, &message)
        }
        Ok(Err(error)) => error_reply(StatusCode::INTERNAL_SERVER_ERROR, &keel_logs::error_chain(&error)),
        Err(error) => error_reply(StatusCode::INTERNAL_SERVER_ERROR, &format!("the kill failed: {error}")),
    }
}

/// How often a waiter looks at the container's state.
const WAIT_INTERVAL: Duration = Duration::from_millis(100);

/// `POST /containers/{id}/wait?condition=…`: once it is not running (`not-running`, the default; also
/// `removed`, which a declared container never is), or once it has exited after this request (`next-exit`);
/// `{"StatusCode": n}`.
pub async fn wait(context: &Context, reference: &str, query: &HashMap<String, String>) -> Response<Body> {
    let name = match resolve(context, reference) {
        Ok(name) => name,
        Err(refusal) => return refusal.reply(),
    };
    let next_exit = match query.get("condition").map(String::as_str) {
        None | Some("") | Some("not-running") | Some("removed") => false,
        Some("next-exit") => true,
        Some(other) => return error_reply(StatusCode::BAD_REQUEST, &format!("invalid condition: {other:?}")),
    };
    let exits_so_far = context.supervisor.container(&name).and_then(|status| status.finished_at);
    loop {
        let Some(status) = context.supervisor.container(&name) else {
            return error_reply(StatusCode::NOT_FOUND, &format!("No such container: {reference}"));
        };
        let down = matches!(status.state, State::Exited | State::Dead | State::Created);
        let exited_since = status.finished_at.is_some() && status.finished_at != exits_so_far;
        if (next_exit && exited_since) || (!next_exit && down) {
            return json(StatusCode::OK, &serde_json::json!({"StatusCode": status.exit_code}));
        }
        tokio::time::sleep(WAIT_INTERVAL).await;
    }
}

/// `DELETE /containers/{id}`: refused; a declared container goes away by leaving the config.
pub fn remove(context: &Context, reference: &str) -> Response<Body> {
    match resolve(context, reference) {
        Ok(name) => error_reply(
            StatusCode::CONFLICT,
            &format!(
                "container {name} is declared in the host's config and cannot be removed through the API; \
                 remove it from the user-data instead"
            ),
        ),
        Err(refusal) => refusal.reply(),
    }
}

/// The most a create request's JSON may take.
const MAX_CREATE_BODY: usize = 1 << 20;

/// `POST /containers/create`: refused (keel runs the declared containers only), after the body is read within
/// its bound and found to be JSON, so that a malformed one gets the 400 Docker gives it.
pub async fn create(request: super::ApiRequest) -> Response<Body> {
    if let Err(refusal) = super::body::read_json::<serde_json::Value>(request, MAX_CREATE_BODY).await {
        return refusal.reply();
    }
    error_reply(
        StatusCode::FORBIDDEN,
        "keel runs only the containers declared in the host's config; add a [containers.NAME] table to the \
         user-data and apply it (PUT /keel/v1/config, keelctl apply)",
    )
}

fn not_modified() -> Response<Body> {
    let mut response = no_content();
    *response.status_mut() = StatusCode::NOT_MODIFIED;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations_read_as_dockers() {
        let text = |seconds| human_duration(Duration::from_secs(seconds));
        assert_eq!(text(0), "Less than a second");
        assert_eq!(text(1), "1 second");
        assert_eq!(text(45), "45 seconds");
        assert_eq!(text(90), "About a minute");
        assert_eq!(text(600), "10 minutes");
        assert_eq!(text(3700), "About an hour");
        assert_eq!(text(5 * 3600), "5 hours");
        assert_eq!(text(3 * 86_400), "3 days");
    }
}
