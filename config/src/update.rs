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
    pub allow_downgrade: bool,
}

impl Default for UpdateConfig {
    fn default() -> Self {
        UpdateConfig { url: None, health_timeout: Duration::from_secs(300), allow_downgrade: false }
    }
}

pub(crate) fn read(reader: &mut Reader, field: &Field) -> UpdateConfig {
    let mut update = UpdateConfig::default();
    let Some(table) = reader.table(field, &["url", "health_timeout", "allow_downgrade"]) else { return update };
    update.url = table.get("url").and_then(|field| reader.parse(&field, parse_url));
    if let Some(field) = table.get("health_timeout") {
        let positive = |text: &str| match parse_duration(text) {
            Ok(duration) if duration.is_zero() => Err(format!("{text:?} is zero; the health gate needs time")),
            other => other.map_err(|error| error.to_string()),
        };
        if let Some(timeout) = reader.parse(&field, positive) {
            update.health_timeout = timeout;
        }
    }
    if let Some(allow) = table.get("allow_downgrade").and_then(|field| reader.bool(&field)) {
        update.allow_downgrade = allow;
    }
    update
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
