//! Reads a container's `healthcheck` table: Docker's test forms, interval, timeout, start period and interval,
//! retries.

use std::time::Duration;

use toml::de::DeValue;

use crate::reader::{Field, Reader};
use crate::values::duration::parse_duration;

/// `[containers.<name>.healthcheck]`. As in Docker's API, 0 (or `None`) means "not given": each such field comes
/// from the image's HEALTHCHECK, else Docker's default (the supervision resolves them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Healthcheck {
    /// `None`: keep the image's HEALTHCHECK test.
    pub test: Option<HealthTest>,
    pub interval: Duration,
    pub timeout: Duration,
    pub start_period: Duration,
    /// Between probes during `start_period` while the container has not been healthy yet.
    pub start_interval: Duration,
    pub retries: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthTest {
    /// `["NONE"]`: no health check, even if the image has one.
    Disabled,
    /// `["CMD", arg, …]`: run directly.
    Command(Vec<String>),
    /// `["CMD-SHELL", line]` or a string: run by `/bin/sh -c`.
    Shell(String),
}

/// Docker refuses shorter (non-zero) intervals, timeouts and start periods.
pub const MIN_DURATION: Duration = Duration::from_millis(1);
/// keel probes at most this often, whatever the config or the image asks: a probe is a process in the container,
/// and an image's `HEALTHCHECK --interval=1ns` must not turn the supervisor into a fork loop.
pub const PROBE_INTERVAL_FLOOR: Duration = Duration::from_millis(250);

const KEYS: [&str; 6] = ["test", "interval", "timeout", "start_period", "start_interval", "retries"];

pub(crate) fn read(reader: &mut Reader, field: &Field) -> Option<Healthcheck> {
    let table = reader.table(field, &KEYS)?;
    let mut check = Healthcheck::default();
    if let Some(field) = table.get("test") {
        check.test = test(reader, &field);
    }
    for (key, slot) in [
        ("interval", &mut check.interval),
        ("timeout", &mut check.timeout),
        ("start_period", &mut check.start_period),
        ("start_interval", &mut check.start_interval),
    ] {
        let Some(field) = table.get(key) else { continue };
        let Some(duration) = reader.parse(&field, parse_duration) else { continue };
        if !duration.is_zero() && duration < MIN_DURATION {
            reader.error(
                field.node.span(),
                &field.path,
                format!("{duration:?} is below the minimum of 1ms (0 means the default)"),
            );
            continue;
        }
        if matches!(key, "interval" | "start_interval") && duration < PROBE_INTERVAL_FLOOR && !duration.is_zero() {
            reader.warning(
                field.node.span(),
                &field.path,
                format!("{duration:?} is shorter than keel probes: every {PROBE_INTERVAL_FLOOR:?} instead"),
            );
        }
        *slot = duration;
    }
    if let Some(retries) = table.get("retries").and_then(|field| reader.integer_in(&field, 0, i64::from(u32::MAX))) {
        check.retries = u32::try_from(retries).unwrap_or(check.retries);
    }
    Some(check)
}

fn test(reader: &mut Reader, field: &Field) -> Option<HealthTest> {
    if let DeValue::String(line) = field.node.get_ref() {
        return Some(HealthTest::Shell(line.to_string()));
    }
    if !field.node.get_ref().is_array() {
        reader.wrong_type(field, "an array like [\"CMD\", …] or a string (run by /bin/sh -c)");
        return None;
    }
    let items = reader.string_array(field);
    let form =
        |message: &str| format!("{message}; the forms are [\"CMD\", arg, …], [\"CMD-SHELL\", line] or [\"NONE\"]");
    let result = match items.split_first() {
        Some((kind, rest)) if kind == "NONE" && rest.is_empty() => Ok(HealthTest::Disabled),
        Some((kind, rest)) if kind == "CMD" && !rest.is_empty() => Ok(HealthTest::Command(rest.to_vec())),
        Some((kind, [line])) if kind == "CMD-SHELL" => Ok(HealthTest::Shell(line.clone())),
        Some((kind, _)) if ["NONE", "CMD", "CMD-SHELL"].contains(&kind.as_str()) => {
            Err(form(&format!("wrong number of items after {kind:?}")))
        }
        Some((kind, _)) => Err(form(&format!("{kind:?} is not one of CMD, CMD-SHELL, NONE"))),
        None => Err(form("the array is empty")),
    };
    match result {
        Ok(test) => Some(test),
        Err(message) => {
            reader.error(field.node.span(), &field.path, message);
            None
        }
    }
}
