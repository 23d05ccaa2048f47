//! `keelctl status`: keel's own view of the host (`GET /keel/v1/status`) as a summary and a container table.

use serde_json::Value;

use crate::client::Client;
use crate::output;
use crate::CommandError;

pub fn run(client: &Client, json: bool) -> Result<(), CommandError> {
    let status: Value = client.get_json("/keel/v1/status")?;
    if json {
        return Ok(output::json_line(&status)?);
    }
    Ok(output::print(&render(&status))?)
}

/// The summary lines, then the containers. Fields a host does not report are left out.
fn render(status: &Value) -> String {
    let mut lines: Vec<(&str, String)> = Vec::new();
    lines.push(("version", text(&status["version"])));
    lines.push(("slot", if status["slot"].is_string() { text(&status["slot"]) } else { "-".to_owned() }));
    if let Some(boot) = status.get("boot").filter(|boot| boot.is_object()) {
        let mut line = text(&boot["state"]);
        if let Some(rollback) = boot.get("rollback").filter(|rollback| rollback.is_object()) {
            line.push_str(&format!(
                " (rolled back from {}: {})",
                text(&rollback["from_version"]),
                text(&rollback["reason"])
            ));
        }
        lines.push(("boot", line));
    }
    if let Some(uptime) = status["uptime_s"].as_u64() {
        lines.push(("uptime", output::duration_words(uptime)));
    }
    let mut config_errors = Vec::new();
    if let Some(config) = status.get("config").filter(|config| config.is_object()) {
        let errors = config["errors"].as_array().cloned().unwrap_or_default();
        let mut line = format!("generation {}", text(&config["generation"]));
        if !errors.is_empty() {
            line.push_str(&format!("; the last one sent was rejected with {} error(s):", errors.len()));
        }
        lines.push(("config", line));
        config_errors = errors
            .iter()
            .map(|error| format!("  {}:{}: {}", text(&error["line"]), text(&error["column"]), text(&error["message"])))
            .collect();
    }
    if let Some(syslog) = status.get("syslog").and_then(Value::as_object) {
        let counters: Vec<String> = syslog.iter().map(|(key, value)| format!("{key} {}", text(value))).collect();
        lines.push(("syslog", counters.join(", ")));
    }
    if let Some(update) = status.get("update") {
        lines.push(("update", update_line(update)));
    }
    let width = lines.iter().map(|(key, _)| key.len()).max().unwrap_or(0);
    let mut rendered = String::new();
    for (key, value) in &lines {
        rendered.push_str(&format!("{key:<width$}   {value}\n"));
        if *key == "config" {
            for error in &config_errors {
                rendered.push_str(error);
                rendered.push('\n');
            }
        }
    }
    let containers = status["containers"].as_array().cloned().unwrap_or_default();
    if !containers.is_empty() {
        rendered.push('\n');
        let rows: Vec<Vec<String>> = containers
            .iter()
            .map(|container| {
                vec![text(&container["name"]), text(&container["state"]), text(&container["restart_count"])]
            })
            .collect();
        rendered.push_str(&output::table(&["NAME", "STATE", "RESTARTS"], &rows));
    }
    rendered
}

/// `none`, `downloading 1.2.0: 45% (…/… bytes)`, `failed 1.2.0: why`.
fn update_line(update: &Value) -> String {
    if update.is_null() {
        return "none".to_owned();
    }
    let mut line = format!("{} {}", text(&update["state"]), text(&update["version"]));
    if let Some(percent) = update["percent"].as_f64() {
        line.push_str(&format!(
            ": {percent:.0}% ({} of {} bytes)",
            text(&update["bytes_done"]),
            text(&update["bytes_total"])
        ));
    }
    if update["error"].is_string() {
        line.push_str(&format!(": {}", text(&update["error"])));
    }
    line
}

/// A JSON value as people read it: strings without quotes, null as `-`.
pub fn text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_reported_field() {
        let status = serde_json::json!({
            "version": "0.2.0", "slot": "b", "uptime_s": 7200,
            "boot": {"state": "blessed", "rollback": {"from_version": "0.3.0", "reason": "web not healthy"}},
            "config": {"generation": 3, "errors": [{"line": 4, "column": 11, "message": "containers.web.restart: bad"}]},
            "syslog": {"sent": 10, "dropped": 0},
            "update": {"state": "downloading", "version": "0.3.1", "bytes_done": 5, "bytes_total": 10, "percent": 50.0, "error": null},
            "containers": [{"name": "web", "state": "Up 5 seconds", "restart_count": 0}],
        });
        let text = render(&status);
        assert!(text.contains("slot      b\n"), "{text}");
        assert!(text.contains("boot      blessed (rolled back from 0.3.0: web not healthy)\n"), "{text}");
        assert!(text.contains("uptime    2 hours\n"), "{text}");
        assert!(text.contains("\n  4:11: containers.web.restart: bad\n"), "{text}");
        assert!(text.contains("syslog    dropped 0, sent 10\n"), "{text}");
        assert!(text.contains("update    downloading 0.3.1: 50% (5 of 10 bytes)\n"), "{text}");
        assert!(text.contains("NAME   STATE          RESTARTS\nweb    Up 5 seconds   0\n"), "{text}");
    }
}
