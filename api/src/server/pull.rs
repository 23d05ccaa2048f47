//! `POST /images/create?fromImage=…&tag=…`: `docker pull` through the supervisor's pull (the config's registry
//! settings; `X-Registry-Auth` is not read), answered with Docker's progress stream: one JSON object per line
//! (`status`, `id`, `progressDetail`), ending in `Status: Downloaded newer image for …` or `Status: Image is up
//! to date for …`, or an `error`.
//!
//! The pull runs on the blocking pool and reports into a bounded channel without waiting (a progress step that
//! finds it full is dropped; the outcome never is): a slow client does not slow the pull, and a client that goes
//! away does not stop it.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use hyper::{Response, StatusCode};
use keel_supervision::{ProgressSink, PullEvent};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::{error_reply, stream_body, Body, Context};

/// Progress steps that may wait for the reply's task.
const PROGRESS_QUEUE: usize = 64;

/// What the pulling thread tells the reply's task.
enum Report {
    Progress(PullEvent),
    Finished(Result<keel_supervision::PullOutcome, String>),
}

/// Hands progress to the reply's task, dropping a step when it lags.
struct ChannelProgress(mpsc::Sender<Report>);

impl ProgressSink for ChannelProgress {
    fn report(&self, event: PullEvent) {
        let _ = self.0.try_send(Report::Progress(event));
    }
}

pub fn create(context: &Context, query: &HashMap<String, String>) -> Response<Body> {
    if query.get("fromSrc").is_some_and(|source| !source.is_empty()) {
        return error_reply(StatusCode::BAD_REQUEST, "importing images is not supported by keel; pull from a registry");
    }
    let Some(image) = query.get("fromImage").filter(|image| !image.is_empty()) else {
        return error_reply(StatusCode::BAD_REQUEST, "fromImage: the image to pull is missing");
    };
    let reference = match query.get("tag").map(String::as_str) {
        None | Some("") => image.clone(),
        Some(digest) if digest.contains(':') => format!("{image}@{digest}"),
        Some(tag) => format!("{image}:{tag}"),
    };
    let (reports, mut received) = mpsc::channel(PROGRESS_QUEUE);
    let supervisor = Arc::clone(&context.supervisor);
    let pulled = reference.clone();
    tokio::task::spawn_blocking(move || {
        let outcome =
            supervisor.pull(&pulled, &ChannelProgress(reports.clone())).map_err(|error| keel_logs::error_chain(&error));
        if let Err(message) = &outcome {
            log::warn!("API: {message}");
        }
        // The outcome waits for room: it is the one report the client must get.
        let _ = reports.blocking_send(Report::Finished(outcome));
    });
    let (sender, body) = stream_body();
    tokio::spawn(async move {
        while let Some(report) = received.recv().await {
            let (lines, finished) = match report {
                Report::Progress(event) => (progress_lines(&event, &reference), false),
                Report::Finished(outcome) => (outcome_lines(outcome), true),
            };
            let mut chunk = Vec::new();
            for line in lines {
                chunk.extend(serde_json::to_vec(&line).unwrap_or_default());
                chunk.push(b'\n');
            }
            if !chunk.is_empty() && sender.send(Bytes::from(chunk)).await.is_err() {
                return;
            }
            if finished {
                return;
            }
        }
    });
    let mut response = Response::new(body);
    response
        .headers_mut()
        .insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
    response
}

/// 12 hex digits of a layer digest: Docker's short id in progress lines.
fn short(digest: &impl std::fmt::Display) -> String {
    let text = digest.to_string();
    let hex = text.split_once(':').map_or(text.as_str(), |(_, hex)| hex);
    hex.chars().take(12).collect()
}

fn progress_lines(event: &PullEvent, reference: &str) -> Vec<Value> {
    match event {
        PullEvent::Resolved { .. } => {
            let (repository, tag) =
                reference.rsplit_once(':').filter(|(_, tag)| !tag.contains('/')).unwrap_or((reference, "latest"));
            vec![json!({ "status": format!("Pulling from {repository}"), "id": tag })]
        }
        PullEvent::LayerStarted { layer, .. } => {
            vec![json!({ "status": "Pulling fs layer", "progressDetail": {}, "id": short(layer) })]
        }
        PullEvent::LayerProgress { layer, downloaded, size } => vec![json!({
            "status": "Downloading",
            "progressDetail": { "current": downloaded, "total": size },
            "id": short(layer),
        })],
        PullEvent::LayerDone { layer, reused, .. } => {
            let status = if *reused { "Already exists" } else { "Pull complete" };
            vec![json!({ "status": status, "progressDetail": {}, "id": short(layer) })]
        }
        PullEvent::Done { .. } => Vec::new(),
    }
}

fn outcome_lines(outcome: Result<keel_supervision::PullOutcome, String>) -> Vec<Value> {
    match outcome {
        Ok(outcome) => {
            let status = if outcome.up_to_date {
                format!("Status: Image is up to date for {}", outcome.reference)
            } else {
                format!("Status: Downloaded newer image for {}", outcome.reference)
            };
            vec![json!({ "status": format!("Digest: {}", outcome.manifest_digest) }), json!({ "status": status })]
        }
        Err(message) => vec![json!({ "errorDetail": { "message": message }, "error": message })],
    }
}
