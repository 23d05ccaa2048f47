//! `keelctl pull IMAGE`: pulls into the host's store (`POST /images/create`, Docker's progress stream of JSON
//! lines): a progress bar over the layers' bytes on a terminal, one line per step otherwise, the server's lines
//! with `--json`.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::Duration;

use hyper::Method;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

use crate::client::{query_escape, Client, ClientError, JsonLines};
use crate::output;
use crate::CommandError;

/// The longest progress line accepted.
const MAX_PROGRESS_LINE: usize = 64 << 10;
/// How long the server may go without a progress line (a registry that stalls is given up by the host earlier).
const PROGRESS_IDLE: Duration = Duration::from_secs(600);

#[derive(clap::Args)]
pub struct PullArgs {
    /// The image: `busybox`, `registry:5000/app:2`, `app@sha256:…`.
    image: String,
}

/// What the progress stream said so far.
#[derive(Default)]
struct Progress {
    /// Bytes done and total of each layer that reported them.
    layers: BTreeMap<String, (u64, u64)>,
    /// The last status of each id, to print a step once.
    steps: BTreeMap<String, String>,
}

impl Progress {
    /// Takes one line in; returns the step to print (`id: status`) when it is new.
    fn update(&mut self, event: &Value) -> Option<String> {
        let id = event["id"].as_str().unwrap_or_default().to_owned();
        let status = event["status"].as_str()?.to_owned();
        let detail = &event["progressDetail"];
        if let (Some(current), Some(total)) = (detail["current"].as_u64(), detail["total"].as_u64()) {
            self.layers.insert(id.clone(), (current.min(total), total));
        } else if status == "Download complete" || status == "Pull complete" || status == "Already exists" {
            if let Some((done, total)) = self.layers.get_mut(&id) {
                *done = *total;
            }
        }
        if self.steps.get(&id) == Some(&status) {
            return None;
        }
        self.steps.insert(id.clone(), status.clone());
        Some(if id.is_empty() { status } else { format!("{id}: {status}") })
    }

    fn bytes(&self) -> (u64, u64) {
        self.layers.values().fold((0, 0), |(done, total), (d, t)| (done + d, total + t))
    }
}

pub fn run(client: &Client, args: &PullArgs, json: bool) -> Result<(), CommandError> {
    let query = match args.image.split_once('@') {
        Some(_) => format!("fromImage={}", query_escape(&args.image)),
        None => {
            let (repository, tag) = crate::images::split_tag(&args.image);
            format!("fromImage={}&tag={}", query_escape(repository), query_escape(tag))
        }
    };
    let path = format!("/images/create?{query}");
    let mut lines = JsonLines::new(client.stream(Method::POST, &path)?, MAX_PROGRESS_LINE, Some(PROGRESS_IDLE));
    let bar = (!json && std::io::stderr().is_terminal()).then(|| {
        let bar = ProgressBar::new(0);
        let style =
            ProgressStyle::with_template("{spinner} {msg:40!} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
        bar.set_style(style);
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    });
    let mut progress = Progress::default();
    let result = (|| {
        while let Some(line) = lines.next_line()? {
            let event: Value = serde_json::from_slice(&line)
                .map_err(|source| ClientError::BadJson { what: format!("a progress line of POST {path}"), source })?;
            if json {
                output::json_line(&event)?;
            }
            if let Some(message) = event["errorDetail"]["message"].as_str().or_else(|| event["error"].as_str()) {
                return Err(CommandError::Failed(format!("pull {}: {message}", args.image)));
            }
            let step = progress.update(&event);
            match (&bar, step) {
                (_, _) if json => {}
                (Some(bar), step) => {
                    let (done, total) = progress.bytes();
                    bar.set_length(total);
                    bar.set_position(done);
                    if let Some(step) = step {
                        bar.set_message(step);
                    }
                }
                (None, Some(step)) => output::print(&format!("{step}\n"))?,
                (None, None) => {}
            }
        }
        Ok(())
    })();
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    result?;
    if !json && std::io::stderr().is_terminal() {
        // The last status line is Docker's summary (`Status: Downloaded newer image for …`); on a terminal it was
        // only the bar's message, so it is printed once the bar is gone.
        let last = progress.steps.get("").cloned().unwrap_or_else(|| format!("pulled {}", args.image));
        output::print(&format!("{last}\n"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_bytes_and_prints_each_step_once() {
        let mut progress = Progress::default();
        let lines = [
            serde_json::json!({"status": "Pulling from keel/app", "id": "1"}),
            serde_json::json!({"status": "Downloading", "id": "aaa", "progressDetail": {"current": 10, "total": 100}}),
            serde_json::json!({"status": "Downloading", "id": "aaa", "progressDetail": {"current": 50, "total": 100}}),
            serde_json::json!({"status": "Download complete", "id": "aaa", "progressDetail": {}}),
            serde_json::json!({"status": "Status: Downloaded newer image for keel/app:1"}),
        ];
        let steps: Vec<String> = lines.iter().filter_map(|line| progress.update(line)).collect();
        assert_eq!(
            steps,
            [
                "1: Pulling from keel/app",
                "aaa: Downloading",
                "aaa: Download complete",
                "Status: Downloaded newer image for keel/app:1"
            ]
        );
        assert_eq!(progress.bytes(), (100, 100));
    }
}
