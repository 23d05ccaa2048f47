//! Health checks as Docker runs them: settings from the config or the image, and the status after each probe.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, SystemTime};

use keel_config::containers::healthcheck::{HealthTest, Healthcheck, PROBE_INTERVAL_FLOOR};
use keel_runtime::ImageHealthcheck;

/// Docker keeps the last five probe results.
pub const MAX_LOG_ENTRIES: usize = 5;
const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_RETRIES: u32 = 3;

/// `Health.Status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthState {
    Starting,
    Healthy,
    Unhealthy,
}

impl fmt::Display for HealthState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HealthState::Starting => "starting",
            HealthState::Healthy => "healthy",
            HealthState::Unhealthy => "unhealthy",
        })
    }
}

/// One probe, as `Health.Log` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeRecord {
    pub start: SystemTime,
    pub end: SystemTime,
    /// 0 healthy, anything else unhealthy; -1 for a timeout.
    pub exit_code: i64,
    pub output: String,
}

/// `State.Health`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    pub status: HealthState,
    pub failing_streak: u32,
    pub log: VecDeque<ProbeRecord>,
}

/// The effective check: what to run and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthSettings {
    pub argv: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub start_period: Duration,
    pub retries: u32,
}

impl HealthSettings {
    /// The config's check, else the image's; `None` when there is none or it is disabled (`NONE`). A config
    /// check without `test` keeps the image's test with the config's timings. The interval is never below
    /// [`PROBE_INTERVAL_FLOOR`], wherever it came from: an image's `HEALTHCHECK --interval=1ns` would otherwise
    /// run probes back to back.
    pub fn resolve(config: Option<&Healthcheck>, image: Option<&ImageHealthcheck>) -> Option<HealthSettings> {
        let mut settings = HealthSettings::requested(config, image)?;
        settings.interval = settings.interval.max(PROBE_INTERVAL_FLOOR);
        Some(settings)
    }

    fn requested(config: Option<&Healthcheck>, image: Option<&ImageHealthcheck>) -> Option<HealthSettings> {
        let image_argv = image.and_then(|image| image_test(&image.test));
        let nonzero = |value: Duration, default: Duration| if value.is_zero() { default } else { value };
        match config {
            Some(check) => {
                let argv = match &check.test {
                    Some(HealthTest::Disabled) => return None,
                    Some(HealthTest::Command(argv)) => argv.clone(),
                    Some(HealthTest::Shell(line)) => shell(line),
                    None => image_argv??,
                };
                Some(HealthSettings {
                    argv,
                    interval: nonzero(check.interval, DEFAULT_INTERVAL),
                    timeout: nonzero(check.timeout, DEFAULT_TIMEOUT),
                    start_period: check.start_period,
                    retries: if check.retries == 0 { DEFAULT_RETRIES } else { check.retries },
                })
            }
            None => {
                let image = image?;
                let nanos = |value: u64| Duration::from_nanos(value);
                Some(HealthSettings {
                    argv: image_argv??,
                    interval: nonzero(nanos(image.interval), DEFAULT_INTERVAL),
                    timeout: nonzero(nanos(image.timeout), DEFAULT_TIMEOUT),
                    start_period: nanos(image.start_period),
                    retries: if image.retries == 0 { DEFAULT_RETRIES } else { image.retries },
                })
            }
        }
    }
}

fn shell(line: &str) -> Vec<String> {
    vec!["/bin/sh".to_owned(), "-c".to_owned(), line.to_owned()]
}

/// The image's `Test`: `Some(None)` for NONE, `None` for nothing usable.
fn image_test(test: &[String]) -> Option<Option<Vec<String>>> {
    match test.split_first() {
        Some((kind, _)) if kind == "NONE" => Some(None),
        Some((kind, rest)) if kind == "CMD" && !rest.is_empty() => Some(Some(rest.to_vec())),
        Some((kind, [line])) if kind == "CMD-SHELL" => Some(Some(shell(line))),
        _ => None,
    }
}

impl Default for Health {
    fn default() -> Self {
        Health { status: HealthState::Starting, failing_streak: 0, log: VecDeque::new() }
    }
}

impl Health {
    /// Applies one probe result, as moby's `handleProbeResult`: success makes it healthy and resets the streak;
    /// a failure counts unless the container is still starting within its start period, and `retries` failures
    /// in a row make it unhealthy.
    pub fn record(&mut self, probe: ProbeRecord, since_start: Duration, settings: &HealthSettings) {
        if probe.exit_code == 0 {
            self.failing_streak = 0;
            self.status = HealthState::Healthy;
        } else if !(self.status == HealthState::Starting && since_start < settings.start_period) {
            self.failing_streak += 1;
            if self.failing_streak >= settings.retries {
                self.status = HealthState::Unhealthy;
            }
        }
        self.log.push_back(probe);
        while self.log.len() > MAX_LOG_ENTRIES {
            self.log.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(retries: u32, start_period: Duration) -> HealthSettings {
        HealthSettings {
            argv: vec!["true".into()],
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            start_period,
            retries,
        }
    }

    fn probe(exit_code: i64) -> ProbeRecord {
        ProbeRecord { start: SystemTime::UNIX_EPOCH, end: SystemTime::UNIX_EPOCH, exit_code, output: String::new() }
    }

    #[test]
    fn starting_then_healthy_then_unhealthy_after_retries() {
        let settings = settings(3, Duration::ZERO);
        let mut health = Health::default();
        assert_eq!(health.status, HealthState::Starting);
        health.record(probe(0), Duration::from_secs(1), &settings);
        assert_eq!(health.status, HealthState::Healthy);
        for streak in 1..=2 {
            health.record(probe(1), Duration::from_secs(2), &settings);
            assert_eq!((health.status, health.failing_streak), (HealthState::Healthy, streak));
        }
        health.record(probe(1), Duration::from_secs(3), &settings);
        assert_eq!((health.status, health.failing_streak), (HealthState::Unhealthy, 3));
        health.record(probe(0), Duration::from_secs(4), &settings);
        assert_eq!((health.status, health.failing_streak), (HealthState::Healthy, 0));
    }

    #[test]
    fn failures_in_the_start_period_do_not_count_while_starting() {
        let settings = settings(1, Duration::from_secs(10));
        let mut health = Health::default();
        health.record(probe(1), Duration::from_secs(5), &settings);
        assert_eq!((health.status, health.failing_streak), (HealthState::Starting, 0));
        health.record(probe(1), Duration::from_secs(11), &settings);
        assert_eq!(health.status, HealthState::Unhealthy);
    }

    #[test]
    fn keeps_the_last_five_probes() {
        let mut health = Health::default();
        for code in 0..7 {
            health.record(probe(code), Duration::ZERO, &settings(100, Duration::ZERO));
        }
        let codes: Vec<i64> = health.log.iter().map(|probe| probe.exit_code).collect();
        assert_eq!(codes, [2, 3, 4, 5, 6]);
    }

    #[test]
    fn settings_come_from_config_or_image() {
        let image =
            ImageHealthcheck { test: vec!["CMD-SHELL".into(), "check".into()], retries: 0, ..Default::default() };
        let from_image = HealthSettings::resolve(None, Some(&image)).unwrap();
        assert_eq!(from_image.argv, ["/bin/sh", "-c", "check"]);
        assert_eq!((from_image.interval, from_image.retries), (DEFAULT_INTERVAL, 3));
        let config = Healthcheck { interval: Duration::from_secs(2), ..Healthcheck::default() };
        let mixed = HealthSettings::resolve(Some(&config), Some(&image)).unwrap();
        assert_eq!((mixed.argv.len(), mixed.interval), (3, Duration::from_secs(2)));
        let disabled = Healthcheck { test: Some(HealthTest::Disabled), ..Healthcheck::default() };
        assert_eq!(HealthSettings::resolve(Some(&disabled), Some(&image)), None);
        assert_eq!(HealthSettings::resolve(None, None), None);
    }

    #[test]
    fn an_images_nanosecond_interval_is_raised_to_the_floor() {
        let image = ImageHealthcheck { test: vec!["CMD".into(), "true".into()], interval: 1, ..Default::default() };
        assert_eq!(HealthSettings::resolve(None, Some(&image)).unwrap().interval, PROBE_INTERVAL_FLOOR);
        let config = Healthcheck { interval: Duration::from_millis(1), ..Healthcheck::default() };
        assert_eq!(HealthSettings::resolve(Some(&config), Some(&image)).unwrap().interval, PROBE_INTERVAL_FLOOR);
        let slow = ImageHealthcheck { interval: 2_000_000_000, ..image };
        assert_eq!(HealthSettings::resolve(None, Some(&slow)).unwrap().interval, Duration::from_secs(2));
    }
}
