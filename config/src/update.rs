//! Reads the `[update]` section: where update bundles come from and how long a new slot has to prove healthy.

use std::time::Duration;

use crate::reader::{Field, Reader};
use crate::values::duration::parse_duration;

/// `[update]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateConfig {
    /// http(s) URL of the update bundles; without it, updates only come through the API.
    pub url: Option<String>,
    /// How long a trial boot has to pass the health gate before it is rolled back.
    pub health_timeout: Duration,
    /// How long every required container must be ready without a break for the gate to pass; shorter than
    /// `health_timeout`.
    pub health_window: Duration,
    pub allow_downgrade: bool,
}

impl Default for UpdateConfig {
    fn default() -> Self {
        UpdateConfig {
            url: None,
            health_timeout: Duration::from_secs(300),
            health_window: Duration::from_secs(60),
            allow_downgrade: false,
        }
    }
}

pub(crate) fn read(reader: &mut Reader, field: &Field) -> UpdateConfig {
    let mut update = UpdateConfig::default();
    let keys = ["url", "health_timeout", "health_window", "allow_downgrade"];
    let Some(table) = reader.table(field, &keys) else { return update };
    // The health gate of a trial boot acts on the durations, an install on `allow_downgrade`; no channel is polled
    // yet.
    for key in ["url"] {
        if let Some(field) = table.get(key) {
            reader.warning(
                field.node.span(),
                &field.path,
                "accepted but not acted on yet: keel cannot install updates yet",
            );
        }
    }
    update.url = table.get("url").and_then(|field| reader.parse(&field, parse_url));
    if let Some(timeout) = table.get("health_timeout").and_then(|field| reader.parse(&field, positive_duration)) {
        update.health_timeout = timeout;
    }
    if let Some(field) = table.get("health_window") {
        if let Some(window) = reader.parse(&field, positive_duration) {
            if window >= update.health_timeout {
                let message = format!(
                    "{window:?} is not shorter than health_timeout ({:?}): the health gate could never pass",
                    update.health_timeout
                );
                reader.error(field.node.span(), &field.path, message);
            } else {
                update.health_window = window;
            }
        }
    }
    if let Some(allow) = table.get("allow_downgrade").and_then(|field| reader.bool(&field)) {
        update.allow_downgrade = allow;
    }
    update
}

/// A duration above zero: the health gate needs time.
fn positive_duration(text: &str) -> Result<Duration, String> {
    match parse_duration(text) {
        Ok(duration) if duration.is_zero() => Err(format!("{text:?} is zero; the health gate needs time")),
        other => other.map_err(|error| error.to_string()),
    }
}

/// An `http://` or `https://` URL with a host.
pub(crate) fn parse_url(text: &str) -> Result<String, String> {
    let rest = text.strip_prefix("https://").or_else(|| text.strip_prefix("http://"));
    let host = rest.map(|rest| rest.split(['/', '?', '#']).next().unwrap_or(""));
    match host {
        Some(host) if !host.is_empty() && !text.contains(char::is_whitespace) => Ok(text.to_owned()),
        _ => Err(format!("{text:?} is not an http:// or https:// URL like https://updates.example.com/keel/")),
    }
}
