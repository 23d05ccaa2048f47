//! keel's update endpoints: `POST /keel/v1/update` starts an install through PID 1's [`UpdateControl`] and answers
//! once the bundle's manifest verified, or with `?wait=true` once the install ended; `POST /keel/v1/rollback` makes the other slot boot next and reboots. The
//! install runs on a thread of PID 1's; the API only starts it and reads its progress (`status.update`).

use std::collections::HashMap;
use std::sync::Arc;

use http_body_util::BodyExt;
use hyper::{Response, StatusCode};

use super::{error_reply, json, ApiRequest, Body, Context};
use crate::update::{BootStatus, UpdateAccepted, UpdateRequest, UpdateStatus};

/// The most an update request's body may take: `{"source": "<URL>"}`.
const MAX_REQUEST_BODY: usize = 16 * 1024;

/// Why an update or rollback was not started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateRefusal {
    /// The request or the bundle is refused (bad source, signature, `compatible`, downgrade): 400.
    Invalid(String),
    /// Not now or not here (an install runs, no slots, no other good entry): 409.
    Conflict(String),
    /// Something on the host failed: 500.
    Failed(String),
}

/// An install that started: its bundle's version, and its outcome once it ends.
pub struct StartedInstall {
    pub version: String,
    /// Sent once when the install ends: `Ok` once the new entry is on the ESP.
    pub outcome: tokio::sync::oneshot::Receiver<Result<(), UpdateRefusal>>,
}

/// What the API asks of the host about updates; PID 1 implements it, `keel supervise` has none.
pub trait UpdateControl: Send + Sync {
    /// Opens `source` and verifies the bundle's head; on success the install goes on on a thread of its own
    /// (rebooting into the new slot afterwards when `reboot`) and this returns the bundle's version and the way to
    /// its outcome. Blocks for the download of the head.
    fn install(&self, source: &str, reboot: bool) -> Result<StartedInstall, UpdateRefusal>;
    /// Makes the other slot's good entry the one that boots next and asks for the reboot; returns its version.
    fn rollback(&self) -> Result<String, UpdateRefusal>;
    /// The current or last install.
    fn progress(&self) -> Option<UpdateStatus>;
    /// The running slot, `a` or `b`.
    fn slot(&self) -> Option<String>;
    /// This boot's assessment.
    fn boot(&self) -> BootStatus;
}

/// `POST /keel/v1/update[?reboot=true][&wait=true]`: 202 once the head verified; with `wait`, 200 with
/// `status.update` once the install ended, or the failure's status and message.
pub async fn update(context: &Context, request: ApiRequest, query: &HashMap<String, String>) -> Response<Body> {
    let Some(control) = context.hooks.update.clone() else { return no_slots() };
    let flag = |name: &str| query.get(name).is_some_and(|value| value == "true" || value == "1");
    let (reboot, wait) = (flag("reboot"), flag("wait"));
    let body = match read_body(request).await {
        Ok(body) => body,
        Err(reply) => return *reply,
    };
    let request: UpdateRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => {
            return error_reply(StatusCode::BAD_REQUEST, &format!("the body is not {{\"source\": \"…\"}}: {error}"))
        }
    };
    let starting = Arc::clone(&control);
    let started = tokio::task::spawn_blocking(move || starting.install(&request.source, reboot)).await;
    match started {
        Ok(Ok(started)) if wait => match started.outcome.await {
            Ok(Ok(())) => json(StatusCode::OK, &control.progress()),
            Ok(Err(refusal)) => refusal_reply(refusal),
            Err(_) => error_reply(StatusCode::INTERNAL_SERVER_ERROR, "the install ended without an outcome"),
        },
        Ok(Ok(started)) => json(StatusCode::ACCEPTED, &UpdateAccepted { version: started.version }),
        Ok(Err(refusal)) => refusal_reply(refusal),
        Err(error) => error_reply(StatusCode::INTERNAL_SERVER_ERROR, &format!("the install did not start: {error}")),
    }
}

/// `POST /keel/v1/rollback`.
pub async fn rollback(context: &Context) -> Response<Body> {
    let Some(control) = context.hooks.update.clone() else { return no_slots() };
    match tokio::task::spawn_blocking(move || control.rollback()).await {
        Ok(Ok(version)) => json(StatusCode::ACCEPTED, &UpdateAccepted { version }),
        Ok(Err(refusal)) => refusal_reply(refusal),
        Err(error) => error_reply(StatusCode::INTERNAL_SERVER_ERROR, &format!("the rollback did not start: {error}")),
    }
}

/// The `slot`, `boot` and `update` fields of `GET /keel/v1/status`.
pub fn status_fields(context: &Context) -> serde_json::Value {
    match &context.hooks.update {
        Some(control) => serde_json::json!({
            "slot": control.slot(),
            "boot": control.boot(),
            "update": control.progress(),
        }),
        None => serde_json::json!({
            "slot": null,
            "boot": BootStatus { state: "untracked".to_owned(), rollback: None },
            "update": null,
        }),
    }
}

fn no_slots() -> Response<Body> {
    error_reply(StatusCode::CONFLICT, "this host has no root slots to update or roll back (keel supervise)")
}

fn refusal_reply(refusal: UpdateRefusal) -> Response<Body> {
    match refusal {
        UpdateRefusal::Invalid(message) => error_reply(StatusCode::BAD_REQUEST, &message),
        UpdateRefusal::Conflict(message) => error_reply(StatusCode::CONFLICT, &message),
        UpdateRefusal::Failed(message) => error_reply(StatusCode::INTERNAL_SERVER_ERROR, &message),
    }
}

/// The request's body, at most [`MAX_REQUEST_BODY`] bytes.
async fn read_body(request: ApiRequest) -> Result<Vec<u8>, Box<Response<Body>>> {
    let limited = http_body_util::Limited::new(request.into_body(), MAX_REQUEST_BODY);
    match limited.collect().await {
        Ok(collected) => Ok(collected.to_bytes().to_vec()),
        Err(error) => Err(Box::new(error_reply(
            StatusCode::BAD_REQUEST,
            &format!("cannot read the request body (at most {MAX_REQUEST_BODY} bytes): {error}"),
        ))),
    }
}
