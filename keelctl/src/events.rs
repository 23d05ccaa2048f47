//! `keelctl events [--since T] [--until T]`: the host's events (`GET /events`, Docker's JSON lines) as
//! `docker events` prints them, or the server's lines as they are.

use std::time::SystemTime;

use hyper::Method;
use serde_json::Value;

use crate::client::{query_escape, Client, JsonLines};
use crate::output;
use crate::status::text;
use crate::time;
use crate::CommandError;

/// The longest event line accepted.
const MAX_EVENT_LINE: usize = 64 << 10;

#[derive(clap::Args)]
pub struct EventsArgs {
    /// Events from this time on: Unix seconds, a duration before now (10m) or RFC 3339.
    #[arg(long)]
    since: Option<String>,
    /// Events until this time, then stop (otherwise new events are printed until Ctrl-C).
    #[arg(long)]
    until: Option<String>,
}

pub fn run(client: &Client, args: &EventsArgs, json: bool) -> Result<(), CommandError> {
    let now = SystemTime::now();
    let mut query = Vec::new();
    for (key, value) in [("since", &args.since), ("until", &args.until)] {
        if let Some(value) = value {
            let unix = time::parse(value, now).map_err(|error| CommandError::Failed(format!("--{key}: {error}")))?;
            query.push(format!("{key}={}", query_escape(&unix)));
        }
    }
    let path = if query.is_empty() { "/events".to_owned() } else { format!("/events?{}", query.join("&")) };
    let mut lines = JsonLines::new(client.stream(Method::GET, &path)?, MAX_EVENT_LINE, None);
    while let Some(line) = lines.next_line()? {
        let event: Value = serde_json::from_slice(&line).map_err(|source| crate::client::ClientError::BadJson {
            what: format!("an event of GET {path}"),
            source,
        })?;
        if json {
            output::json_line(&event)?;
        } else {
            output::print(&format!("{}\n", render(&event)))?;
        }
    }
    Ok(())
}

/// `2026-11-29T20:00:00.123456789Z container start 3f4e… (image=keel/busybox, name=web)`.
fn render(event: &Value) -> String {
    let nanos = event["timeNano"].as_i64().or_else(|| event["time"].as_i64().map(|seconds| seconds * 1_000_000_000));
    let when = nanos.map_or_else(|| "-".to_owned(), time::format_nanos);
    let actor = &event["Actor"];
    let mut line = format!("{when} {} {} {}", text(&event["Type"]), text(&event["Action"]), text(&actor["ID"]));
    if let Some(attributes) = actor["Attributes"].as_object().filter(|attributes| !attributes.is_empty()) {
        let pairs: Vec<String> = attributes.iter().map(|(key, value)| format!("{key}={}", text(value))).collect();
        line.push_str(&format!(" ({})", pairs.join(", ")));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_as_docker_events() {
        let event = serde_json::json!({
            "Type": "container", "Action": "start", "scope": "local",
            "Actor": {"ID": "abc", "Attributes": {"name": "web", "image": "keel/busybox"}},
            "time": 1_795_982_400, "timeNano": 1_795_982_400_000_000_001_i64,
        });
        assert_eq!(render(&event), "2026-11-29T20:00:00.000000001Z container start abc (image=keel/busybox, name=web)");
    }
}
