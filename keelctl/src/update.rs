//! `keelctl update FILE|URL [--reboot]` and `keelctl rollback`: start an install of an update bundle on the host
//! and follow its progress (`status.update`), or make the other slot boot next.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use hyper::Method;
use indicatif::{ProgressBar, ProgressStyle};
use keel_api::update::{InstallState, UpdateAccepted, UpdateRequest, UpdateStatus};
use serde_json::Value;

use crate::client::{Client, READ_TIMEOUT};
use crate::output;
use crate::CommandError;

/// The host downloads and verifies the bundle's head before it answers.
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How often the progress is asked for.
const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// Without any progress for this long, keelctl stops following (the install goes on, bounded by the host's own
/// download deadlines).
const STALL_LIMIT: Duration = Duration::from_secs(600);

#[derive(clap::Args)]
pub struct UpdateArgs {
    /// The bundle: an http(s) URL the host downloads, or an absolute file path on the host.
    source: String,
    /// Reboot into the new version once it is installed.
    #[arg(long)]
    reboot: bool,
}

pub fn update(client: &Client, args: &UpdateArgs, json: bool) -> Result<(), CommandError> {
    let path = if args.reboot { "/keel/v1/update?reboot=true" } else { "/keel/v1/update" };
    let body = serde_json::to_vec(&UpdateRequest { source: args.source.clone() })
        .map_err(|error| CommandError::Failed(format!("cannot encode the request: {error}")))?;
    let reply = client.checked(Method::POST, path, Some(("application/json", body)), START_TIMEOUT)?;
    let accepted: UpdateAccepted = reply.json(&format!("POST {path}"))?;
    if json {
        output::json_line(&serde_json::json!({"version": accepted.version}))?;
    } else {
        output::print(&format!("{}: installing keel {} from {}\n", client.host(), accepted.version, args.source))?;
    }
    let finished = follow(client, &accepted.version, json)?;
    match finished.state {
        InstallState::Installed if args.reboot => {
            if !json {
                output::print(&format!("keel {} installed; the host reboots into it\n", finished.version))?;
            }
            Ok(())
        }
        InstallState::Installed => {
            if !json {
                output::print(&format!(
                    "keel {} installed; it boots on the next reboot (keelctl reboot), as a trial\n",
                    finished.version
                ))?;
            }
            Ok(())
        }
        _ => Err(CommandError::Failed(format!(
            "installing keel {} failed: {}",
            finished.version,
            finished.error.as_deref().unwrap_or("no reason given")
        ))),
    }
}

/// Polls `status.update` until the install of `version` is installed or failed; shows a bar on a terminal, a
/// line every tenth otherwise, JSON lines with `--json`.
fn follow(client: &Client, version: &str, json: bool) -> Result<UpdateStatus, CommandError> {
    let bar = (!json && std::io::stderr().is_terminal()).then(|| {
        let bar = ProgressBar::new(0);
        let style = ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        bar.set_style(style);
        bar.set_message(format!("keel {version}"));
        bar
    });
    let mut last: Option<UpdateStatus> = None;
    let mut changed_at = Instant::now();
    let result = loop {
        let status: Value = client.get_json("/keel/v1/status")?;
        let update: Option<UpdateStatus> = serde_json::from_value(status["update"].clone()).ok();
        if let Some(update) = update.filter(|update| update.version == version) {
            if last.as_ref() != Some(&update) {
                changed_at = Instant::now();
                show(&update, last.as_ref(), bar.as_ref(), json)?;
                last = Some(update.clone());
            }
            if matches!(update.state, InstallState::Installed | InstallState::Failed) {
                break Ok(update);
            }
        }
        if changed_at.elapsed() > STALL_LIMIT {
            break Err(CommandError::Failed(format!(
                "the install of keel {version} made no progress for {STALL_LIMIT:?}; `keelctl status` shows it"
            )));
        }
        std::thread::sleep(POLL_INTERVAL);
    };
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    result
}

fn show(
    update: &UpdateStatus,
    last: Option<&UpdateStatus>,
    bar: Option<&ProgressBar>,
    json: bool,
) -> Result<(), CommandError> {
    if json {
        let value = serde_json::to_value(update).map_err(|error| CommandError::Failed(error.to_string()))?;
        return Ok(output::json_line(&value)?);
    }
    if let Some(bar) = bar {
        bar.set_length(update.bytes_total);
        bar.set_position(update.bytes_done);
        return Ok(());
    }
    let tenth = |status: &UpdateStatus| status.percent / 10;
    if last.is_none_or(|last| tenth(last) != tenth(update) || last.state != update.state) {
        let state = serde_json::to_value(update.state).ok().and_then(|value| value.as_str().map(str::to_owned));
        output::print(&format!(
            "{} {}% ({} of {} bytes)\n",
            state.unwrap_or_default(),
            update.percent,
            update.bytes_done,
            update.bytes_total
        ))?;
    }
    Ok(())
}

pub fn rollback(client: &Client, json: bool) -> Result<(), CommandError> {
    let path = "/keel/v1/rollback";
    let reply = client.checked(Method::POST, path, None, READ_TIMEOUT)?;
    let accepted: UpdateAccepted = reply.json(&format!("POST {path}"))?;
    if json {
        return Ok(output::json_line(&serde_json::json!({"version": accepted.version}))?);
    }
    Ok(output::print(&format!("{}: rolling back to keel {}; the host reboots\n", client.host(), accepted.version))?)
}
