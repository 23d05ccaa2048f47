//! `keelctl inspect NAME`: one container (`GET /containers/{id}/json`) as a summary, or Docker's whole document.

use keel_api::docker::ContainerInspect;

use crate::client::{path_escape, Client, ClientError};
use crate::output;
use crate::CommandError;

#[derive(clap::Args)]
pub struct InspectArgs {
    /// The container: name, id or unique id prefix.
    name: String,
}

pub fn run(client: &Client, args: &InspectArgs, json: bool) -> Result<(), CommandError> {
    let path = format!("/containers/{}/json", path_escape(&args.name));
    let value: serde_json::Value = client.get_json(&path)?;
    if json {
        return Ok(output::json_line(&value)?);
    }
    let container: ContainerInspect =
        serde_json::from_value(value).map_err(|source| ClientError::BadJson { what: format!("GET {path}"), source })?;
    Ok(output::print(&render(&container))?)
}

fn render(container: &ContainerInspect) -> String {
    let state = &container.state;
    let mut status = state.status.clone();
    if state.running {
        status.push_str(&format!(" (pid {}) since {}", state.pid, state.started_at));
    } else if !state.finished_at.starts_with("0001-") {
        status.push_str(&format!(" (exit code {}) at {}", state.exit_code, state.finished_at));
    }
    if state.oom_killed {
        status.push_str(", OOM killed");
    }
    if !state.error.is_empty() {
        status.push_str(&format!(": {}", state.error));
    }
    let policy = &container.host_config.restart_policy;
    let restart = match (policy.name.as_str(), policy.maximum_retry_count) {
        ("on-failure", retries) if retries > 0 => format!("on-failure:{retries}"),
        (name, _) => name.to_owned(),
    };
    let command: Vec<String> = std::iter::once(container.path.clone()).chain(container.args.iter().cloned()).collect();
    let mut fields = vec![
        ("name", container.name.trim_start_matches('/').to_owned()),
        ("id", container.id.clone()),
        ("image", format!("{} ({})", container.config.image, container.image)),
        ("command", command.join(" ")),
        ("state", status),
        ("restart", format!("{restart}, restarted {} times", container.restart_count)),
        ("network", container.host_config.network_mode.clone()),
    ];
    if let Some(health) = &state.health {
        fields.push(("health", format!("{} (failing streak {})", health.status, health.failing_streak)));
    }
    if !container.config.labels.is_empty() {
        let labels: Vec<String> = container.config.labels.iter().map(|(key, value)| format!("{key}={value}")).collect();
        fields.push(("labels", labels.join(", ")));
    }
    let width = fields.iter().map(|(key, _)| key.len()).max().unwrap_or(0);
    fields.iter().map(|(key, value)| format!("{key:<width$}   {value}\n")).collect()
}
