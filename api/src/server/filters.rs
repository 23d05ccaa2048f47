//! Docker's `filters` query parameter (JSON: `{"name": ["web"]}`, or the older `{"name": {"web": true}}`) and the
//! container filters `docker ps --filter` sends: `name`, `id`, `status`, `label`, `health`.

use std::collections::BTreeMap;

use keel_supervision::ContainerStatus;
use serde_json::Value;

use super::Refusal;
use crate::ids::container_id;

/// Each filter's accepted values; a container must match one value of every filter.
#[derive(Debug, Default)]
pub struct Filters(BTreeMap<String, Vec<String>>);

impl Filters {
    /// Parses `text` (absent: no filters); an unknown filter name is refused as Docker refuses it.
    pub fn parse(text: Option<&String>, known: &[&str]) -> Result<Filters, Refusal> {
        let Some(text) = text.filter(|text| !text.is_empty()) else { return Ok(Filters::default()) };
        let bad = |why: String| Refusal::new(hyper::StatusCode::BAD_REQUEST, why);
        let value: Value = serde_json::from_str(text).map_err(|error| bad(format!("invalid filter: {error}")))?;
        let Value::Object(map) = value else { return Err(bad("invalid filter: not a JSON object".to_owned())) };
        let mut filters = BTreeMap::new();
        for (name, values) in map {
            if !known.contains(&name.as_str()) {
                return Err(bad(format!("invalid filter '{name}'")));
            }
            let values: Vec<String> = match values {
                Value::Array(items) => items.into_iter().filter_map(|item| item.as_str().map(str::to_owned)).collect(),
                Value::Object(items) => items.into_iter().map(|(item, _)| item).collect(),
                _ => return Err(bad(format!("invalid filter '{name}': not a list"))),
            };
            filters.insert(name, values);
        }
        Ok(Filters(filters))
    }

    /// Whether every filter has a value that `matches(filter, value)` accepts.
    pub fn all_match(&self, matches: impl Fn(&str, &str) -> bool) -> bool {
        self.0.iter().all(|(name, values)| values.iter().any(|value| matches(name, value)))
    }

    /// Whether `status` passes every filter.
    pub fn containers_match(&self, status: &ContainerStatus) -> bool {
        self.0.iter().all(|(name, values)| {
            values.iter().any(|value| match name.as_str() {
                "name" => status.name.contains(value.trim_start_matches('/')),
                "id" => container_id(&status.name).starts_with(&value.to_ascii_lowercase()),
                "status" => status.status == value,
                "label" => match value.split_once('=') {
                    Some((key, wanted)) => status.labels.get(key).is_some_and(|have| have == wanted),
                    None => status.labels.contains_key(value),
                },
                "health" => {
                    let health = status.health.as_ref().map_or("none".to_owned(), |health| health.status.to_string());
                    health == *value
                }
                _ => false,
            })
        })
    }
}

/// The filters `GET /containers/json` understands.
pub const CONTAINER_FILTERS: [&str; 5] = ["name", "id", "status", "label", "health"];

#[cfg(test)]
mod tests {
    use super::*;
    use keel_config::containers::restart::RestartPolicy;

    #[test]
    fn parses_both_shapes_and_matches() {
        let mut status = ContainerStatus::new("web", "busybox", RestartPolicy::No, false);
        status.status = "running";
        status.labels.insert("tier".to_owned(), "front".to_owned());
        let filters = |text: &str| Filters::parse(Some(&text.to_owned()), &CONTAINER_FILTERS).ok().unwrap();
        assert!(filters(r#"{"name":["we"],"status":["running"]}"#).containers_match(&status));
        assert!(filters(r#"{"label":{"tier=front":true}}"#).containers_match(&status));
        assert!(filters(r#"{"health":["none"]}"#).containers_match(&status));
        assert!(!filters(r#"{"status":["exited"]}"#).containers_match(&status));
        assert!(!filters(r#"{"label":["tier=back"]}"#).containers_match(&status));
        assert!(Filters::parse(Some(&r#"{"colour":["red"]}"#.to_owned()), &CONTAINER_FILTERS).is_err());
        assert!(Filters::parse(Some(&"not json".to_owned()), &CONTAINER_FILTERS).is_err());
    }
}
