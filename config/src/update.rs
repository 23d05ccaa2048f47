//! Reads the `[update]` section: the channel a host polls for new versions, when it reboots into one, and how long a
//! new slot has to prove healthy.

pub mod window;

use std::time::Duration;

use crate::reader::{Field, Reader};
use crate::values::duration::parse_duration;
pub use window::MaintenanceWindow;

/// The shortest `interval`: a channel is a small file, but a fleet polling it every second is a load test.
const MIN_INTERVAL: Duration = Duration::from_secs(60);
/// The longest `interval`; beyond a week a host is effectively not updating, and the poller's clock arithmetic
/// stays far from overflow.
const MAX_INTERVAL: Duration = Duration::from_secs(7 * 86_400);

/// `[update]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateConfig {
    /// http(s) URL of the update channel document (`docs/update.md`, "Channels"); without it, updates only come
    /// through the API.
    pub url: Option<String>,
    /// How often the channel is fetched (with ±10% jitter).
    pub interval: Duration,
    /// When a host reboots into an update the channel brought.
    pub reboot: RebootPolicy,
    /// The maintenance window of [`RebootPolicy::Window`].
    pub window: Option<MaintenanceWindow>,
    /// How long a trial boot has to pass the health gate before it is rolled back.
    pub health_timeout: Duration,
    /// How long every required container must be ready without a break for the gate to pass; shorter than
    /// `health_timeout`.
    pub health_window: Duration,
    pub allow_downgrade: bool,
}

/// `reboot = "immediate" | "window" | "manual"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RebootPolicy {
    /// Reboot as soon as the install completed (Fedora CoreOS's Zincati default): the trial boot and its rollback
    /// protect the host, and an installed update that waits is an update that is not running.
    #[default]
    Immediate,
    /// Reboot at the next opening of `window`.
    Window,
    /// Never reboot by itself: the installed update waits for `keelctl reboot` or the API.
    Manual,
}

impl RebootPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            RebootPolicy::Immediate => "immediate",
            RebootPolicy::Window => "window",
            RebootPolicy::Manual => "manual",
        }
    }
}

impl Default for UpdateConfig {
    fn default() -> Self {
        UpdateConfig {
            url: None,
            interval: Duration::from_secs(3600),
            reboot: RebootPolicy::default(),
            window: None,
            health_timeout: Duration::from_secs(300),
            health_window: Duration::from_secs(60),
            allow_downgrade: false,
        }
    }
}

pub(crate) fn read(reader: &mut Reader, field: &Field) -> UpdateConfig {
    let mut update = UpdateConfig::default();
    let keys = ["url", "interval", "reboot", "window", "health_timeout", "health_window", "allow_downgrade"];
    let Some(table) = reader.table(field, &keys) else { return update };
    update.url = table.get("url").and_then(|field| reader.parse(&field, parse_url));
    if let Some(interval) = table.get("interval").and_then(|field| reader.parse(&field, parse_interval)) {
        update.interval = interval;
    }
    let reboot = table.get("reboot");
    if let Some(policy) = reboot.as_ref().and_then(|field| reader.parse(field, parse_reboot_policy)) {
        update.reboot = policy;
    }
    let window = table.get("window");
    update.window = window.as_ref().and_then(|field| window::read(reader, field));
    match (&reboot, &window) {
        (Some(reboot), None) if update.reboot == RebootPolicy::Window => reader.error(
            reboot.node.span(),
            &reboot.path,
            "reboot = \"window\" needs a window, like window = { days = [\"sat\", \"sun\"], start = \"02:00\", \
             length = \"3h\" }",
        ),
        (_, Some(window)) if update.reboot != RebootPolicy::Window => reader.warning(
            window.node.span(),
            &window.path,
            format!("not acted on: the window applies only with reboot = \"window\", not {:?}", update.reboot.as_str()),
        ),
        _ => {}
    }
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

/// The poll interval, within [`MIN_INTERVAL`] and [`MAX_INTERVAL`].
fn parse_interval(text: &str) -> Result<Duration, String> {
    let interval = parse_duration(text).map_err(|error| error.to_string())?;
    if interval < MIN_INTERVAL || interval > MAX_INTERVAL {
        return Err(format!("{interval:?} is not between 1m and 168h"));
    }
    Ok(interval)
}

fn parse_reboot_policy(text: &str) -> Result<RebootPolicy, String> {
    match text {
        "immediate" => Ok(RebootPolicy::Immediate),
        "window" => Ok(RebootPolicy::Window),
        "manual" => Ok(RebootPolicy::Manual),
        _ => Err(format!("{text:?} is not one of immediate, window, manual")),
    }
}

/// An `http://` or `https://` URL with a host.
pub(crate) fn parse_url(text: &str) -> Result<String, String> {
    let rest = text.strip_prefix("https://").or_else(|| text.strip_prefix("http://"));
    let host = rest.map(|rest| rest.split(['/', '?', '#']).next().unwrap_or(""));
    match host {
        Some(host) if !host.is_empty() && !text.contains(char::is_whitespace) => Ok(text.to_owned()),
        _ => {
            Err(format!("{text:?} is not an http:// or https:// URL like https://updates.example.com/keel/stable.json"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::UserData;

    fn update(text: &str) -> UpdateConfig {
        UserData::parse("user-data", &format!("[update]\n{text}")).unwrap().update
    }

    fn errors(text: &str) -> Vec<String> {
        let errors = UserData::parse("user-data", &format!("[update]\n{text}")).unwrap_err();
        errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn defaults() {
        let update = update("");
        assert_eq!(update.interval, Duration::from_secs(3600));
        assert_eq!(update.reboot, RebootPolicy::Immediate);
        assert_eq!(update.window, None);
    }

    #[test]
    fn interval_is_a_bounded_duration() {
        assert_eq!(update("interval = \"1m\"\n").interval, Duration::from_secs(60));
        assert_eq!(update("interval = \"6h\"\n").interval, Duration::from_secs(6 * 3600));
        assert_eq!(errors("interval = \"59s\"\n"), ["user-data:2:12: update.interval: 59s is not between 1m and 168h"]);
        assert_eq!(
            errors("interval = \"169h\"\n"),
            ["user-data:2:12: update.interval: 608400s is not between 1m and 168h"]
        );
        assert_eq!(errors("interval = 60\n"), ["user-data:2:12: update.interval: 60 is not a string"],);
    }

    #[test]
    fn reboot_policies() {
        assert_eq!(update("reboot = \"manual\"\n").reboot, RebootPolicy::Manual);
        assert_eq!(update("reboot = \"immediate\"\n").reboot, RebootPolicy::Immediate);
        assert_eq!(
            errors("reboot = \"later\"\n"),
            ["user-data:2:10: update.reboot: \"later\" is not one of immediate, window, manual"]
        );
        assert_eq!(
            errors("reboot = \"window\"\n"),
            ["user-data:2:10: update.reboot: reboot = \"window\" needs a window, like window = { days = [\"sat\", \
              \"sun\"], start = \"02:00\", length = \"3h\" }"]
        );
    }

    #[test]
    fn a_window() {
        let weekend =
            update("reboot = \"window\"\nwindow = { days = [\"sat\", \"sun\"], start = \"02:30\", length = \"3h\" }\n");
        assert_eq!(weekend.reboot, RebootPolicy::Window);
        let window = weekend.window.unwrap();
        assert_eq!(window.days, 0b110_0000);
        assert_eq!(window.start, 2 * 3600 + 30 * 60);
        assert_eq!(window.length, Duration::from_secs(3 * 3600));
        let every_day = update("reboot = \"window\"\n[update.window]\nstart = \"00:00\"\nlength = \"1h\"\n");
        assert_eq!(every_day.window.unwrap().days, MaintenanceWindow::EVERY_DAY);
    }

    #[test]
    fn window_errors_are_placed() {
        let text =
            "reboot = \"window\"\nwindow = { days = [\"sat\", \"caturday\"], start = \"2am\", length = \"30s\", \
                    colour = 1 }\n";
        assert_eq!(
            errors(text),
            [
                "user-data:3:27: update.window.days[1]: \"caturday\" is not a day: mon, tue, wed, thu, fri, sat or sun",
                "user-data:3:48: update.window.start: \"2am\" is not a time of day like \"02:00\" (24-hour HH:MM, UTC)",
                "user-data:3:64: update.window.length: 30s is not between 1m and 168h (a week)",
                "user-data:3:71: update.window.colour: unknown key; expected one of days, start, length",
            ]
        );
        assert_eq!(
            errors("window = { days = [], start = \"01:00\", length = \"1h\" }\n"),
            ["user-data:2:19: update.window.days: no day given; leave days out for every day"]
        );
        assert_eq!(
            errors("window = { days = [\"mon\"] }\n"),
            [
                "user-data:2:10: update.window: a window needs start = \"HH:MM\" (UTC)",
                "user-data:2:10: update.window: a window needs a length like \"3h\"",
            ]
        );
        assert_eq!(errors("window = \"sat\"\n"), ["user-data:2:10: update.window: \"sat\" is not a table"]);
    }

    #[test]
    fn a_window_without_reboot_window_is_a_warning() {
        let text = "[update]\nreboot = \"manual\"\nwindow = { start = \"01:00\", length = \"1h\" }\n";
        let user_data = UserData::parse("user-data", text).unwrap();
        let warnings: Vec<String> = user_data.warnings.iter().map(ToString::to_string).collect();
        assert_eq!(
            warnings,
            ["user-data:3:10: update.window: not acted on: the window applies only with reboot = \"window\", not \
              \"manual\""]
        );
        assert!(user_data.update.window.is_some());
    }
}
