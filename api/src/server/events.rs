//! `GET /events`: the supervisor's events in Docker's JSON shape, one object per line. `since` replays the kept
//! events from then on, `until` ends the stream at that time (at once when it has passed), and without `until`
//! the stream follows until the client goes. Filters: `type`, `container`, `event`, `label`, `image`.
//!
//! The subscription's channel is drained, each time the supervisor wakes this task, into the reply's small bounded
//! body channel: a client that reads too slowly blocks only this task, its subscription falls behind and is
//! dropped by the supervisor, and the stream ends.

use std::collections::HashMap;
use std::sync::mpsc::TryRecvError;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hyper::{Response, StatusCode};
use keel_supervision::events::{EventType, SupervisorEvent};
use serde_json::json;
use tokio::sync::Notify;

use super::filters::Filters;
use super::logs::unix_time;
use super::{error_reply, stream_body, Body, Context, Refusal};
use crate::ids::container_id;

/// How often a follower without events looks whether `until` has passed.
const UNTIL_CHECK: Duration = Duration::from_millis(250);

/// The filters `docker events --filter` may send that keel has events for.
const EVENT_FILTERS: [&str; 5] = ["type", "container", "event", "label", "image"];

pub fn events(context: &Context, query: &HashMap<String, String>) -> Response<Body> {
    let time = |key: &str| match query.get(key).filter(|text| !text.is_empty()) {
        None => Ok(None),
        Some(text) => unix_time(text)
            .map(Some)
            .ok_or_else(|| Refusal::new(StatusCode::BAD_REQUEST, format!("{key}: {text:?} is not a Unix time"))),
    };
    let (since, until) = match (time("since"), time("until")) {
        (Ok(since), Ok(until)) => (since, until),
        (Err(refusal), _) | (_, Err(refusal)) => return refusal.reply(),
    };
    let filters = match Filters::parse(query.get("filters"), &EVENT_FILTERS) {
        Ok(filters) => filters,
        Err(refusal) => return refusal.reply(),
    };
    let arrived = Arc::new(Notify::new());
    let wake = {
        let arrived = Arc::clone(&arrived);
        Box::new(move || arrived.notify_one())
    };
    let Some((kept, subscription)) = context.supervisor.events().subscribe(wake) else {
        return error_reply(StatusCode::SERVICE_UNAVAILABLE, "too many event subscribers; try again later");
    };
    let wanted = move |event: &SupervisorEvent| {
        since.is_none_or(|since| event.time >= since)
            && until.is_none_or(|until| event.time <= until)
            && filters.all_match(|filter, value| matches(event, filter, value))
    };
    // Without `since`, only what happens from now on (Docker's default).
    let replay: Vec<u8> = match since {
        Some(_) => kept.iter().filter(|event| wanted(event)).flat_map(|event| line(event)).collect(),
        None => Vec::new(),
    };
    let (sender, body) = stream_body();
    tokio::spawn(async move {
        if !replay.is_empty() && sender.send(Bytes::from(replay)).await.is_err() {
            return;
        }
        loop {
            let mut chunk = Vec::new();
            let ended = loop {
                match subscription.receiver.try_recv() {
                    Ok(event) if wanted(&event) => chunk.extend(line(&event)),
                    Ok(_) => {}
                    Err(TryRecvError::Empty) => break false,
                    // Dropped by the supervisor: this client fell behind.
                    Err(TryRecvError::Disconnected) => break true,
                }
            };
            if !chunk.is_empty() && sender.send(Bytes::from(chunk)).await.is_err() {
                return;
            }
            if ended || until.is_some_and(|until| SystemTime::now() > until) {
                return;
            }
            // Woken by the next event; the interval bounds how late `until` is noticed.
            tokio::select! {
                _ = arrived.notified() => {}
                _ = tokio::time::sleep(UNTIL_CHECK) => {}
                _ = sender.closed() => return,
            }
        }
    });
    let mut response = Response::new(body);
    response
        .headers_mut()
        .insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
    response
}

/// Whether `event` passes one value of one filter, as Docker's daemon reads them.
fn matches(event: &SupervisorEvent, filter: &str, value: &str) -> bool {
    let attribute = |key: &str| event.attributes.get(key).map(String::as_str);
    match filter {
        "type" => event.kind.as_str() == value,
        "container" => {
            event.kind == EventType::Container
                && (event.actor == value.trim_start_matches('/')
                    || (!value.is_empty() && container_id(&event.actor).starts_with(&value.to_ascii_lowercase())))
        }
        // `health_status` matches every `health_status: …`.
        "event" => event.action == value || event.action.split(':').next() == Some(value),
        "label" => match value.split_once('=') {
            Some((key, wanted)) => attribute(key) == Some(wanted),
            None => attribute(value).is_some(),
        },
        "image" => attribute("image") == Some(value) || (event.kind == EventType::Image && event.actor == value),
        _ => false,
    }
}

/// `event` as Docker's JSON, with a newline.
fn line(event: &SupervisorEvent) -> Vec<u8> {
    let nanos = event.time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let id = match event.kind {
        EventType::Container => container_id(&event.actor),
        EventType::Image => event.actor.clone(),
    };
    let mut value = json!({
        "Type": event.kind.as_str(),
        "Action": event.action,
        "Actor": { "ID": id, "Attributes": event.attributes },
        "scope": "local",
        "time": nanos.as_secs(),
        "timeNano": nanos.as_nanos() as u64,
    });
    // The fields of API versions before 1.22, which Docker still sends for containers.
    if event.kind == EventType::Container {
        value["status"] = json!(event.action);
        value["id"] = json!(id);
        value["from"] = json!(event.attributes.get("image"));
    }
    let mut bytes = serde_json::to_vec(&value).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}
