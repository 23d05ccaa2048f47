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
/// Docker's `--health-start-interval` default: how often it probes during the start period.
const DEFAULT_START_INTERVAL: Duration = Duration::from_secs(5);
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
    /// Between probes while the container is within `start_period` and has not been healthy yet.
    pub start_interval: Duration,
    pub retries: u32,
}

impl HealthSettings {
    /// The config's check merged over the image's, as moby merges them: the config's test, else the image's (none
    /// when either says `NONE`); each timing and `retries` the config leaves at 0 from the image, else Docker's
    /// default. Intervals are never below [`PROBE_INTERVAL_FLOOR`], wherever they came from: an image's
    /// `HEALTHCHECK --interval=1ns` would otherwise run probes back to back.
    pub fn resolve(config: Option<&Healthcheck>, image: Option<&ImageHealthcheck>) -> Option<HealthSettings> {
        let mut settings = HealthSettings::requested(config, image)?;
        settings.interval = settings.interval.max(PROBE_INTERVAL_FLOOR);
        settings.start_interval = settings.start_interval.max(PROBE_INTERVAL_FLOOR);
        Some(settings)
    }

    fn requested(config: Option<&Healthcheck>, image: Option<&ImageHealthcheck>) -> Option<HealthSettings> {
        let argv = match config.and_then(|check| check.test.as_ref()) {
            Some(HealthTest::Disabled) => return None,
            Some(HealthTest::Command(argv)) => argv.clone(),
            Some(HealthTest::Shell(line)) => shell(line),
            None => image.and_then(|image| image_test(&image.test))??,
        };
        let timing = |from_config: fn(&Healthcheck) -> Duration, from_image: fn(&ImageHealthcheck) -> u64, default| {
            let configured = config.map(from_config).unwrap_or_default();
            let imaged = Duration::from_nanos(image.map(from_image).unwrap_or_default());
            [configured, imaged].into_iter().find(|value| !value.is_zero()).unwrap_or(default)
        };
        let retries = [config.map(|check| check.retries), image.map(|image| image.retries)];
        Some(HealthSettings {
            argv,
            interval: timing(|check| check.interval, |image| image.interval, DEFAULT_INTERVAL),
            timeout: timing(|check| check.timeout, |image| image.timeout, DEFAULT_TIMEOUT),
            start_period: timing(|check| check.start_period, |image| image.start_period, Duration::ZERO),
            start_interval: timing(|check| check.start_interval, |image| image.start_interval, DEFAULT_START_INTERVAL),
            retries: retries.into_iter().flatten().find(|retries| *retries != 0).unwrap_or(DEFAULT_RETRIES),
        })
    }

    /// How long until the next probe, `since_start` after the start: the start interval while the container is
    /// within its start period and `starting`, else the interval (moby's `getInterval`).
    pub fn next_wait(&self, since_start: Duration, starting: bool) -> Duration {
        if since_start < self.start_period && starting {
            self.start_interval
        } else {
            self.interval
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
            start_interval: Duration::from_secs(1),
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
        assert_eq!((mixed.timeout, mixed.start_interval, mixed.retries), (DEFAULT_TIMEOUT, DEFAULT_START_INTERVAL, 3));
        let disabled = Healthcheck { test: Some(HealthTest::Disabled), ..Healthcheck::default() };
        assert_eq!(HealthSettings::resolve(Some(&disabled), Some(&image)), None);
        assert_eq!(HealthSettings::resolve(None, None), None);
    }

    /// moby's merge: a partial config table keeps the image's timings for what it leaves out.
    #[test]
    fn a_partial_config_check_inherits_the_images_timings() {
        let second = 1_000_000_000;
        let image = ImageHealthcheck {
            test: vec!["CMD".into(), "probe".into()],
            interval: 7 * second,
            timeout: 3 * second,
            start_period: 20 * second,
            start_interval: 2 * second,
            retries: 9,
        };
        let config = Healthcheck { timeout: Duration::from_secs(1), ..Healthcheck::default() };
        let merged = HealthSettings::resolve(Some(&config), Some(&image)).unwrap();
        let seconds = |value: Duration| value.as_secs();
        assert_eq!(merged.argv, ["probe"]);
        assert_eq!(
            (seconds(merged.interval), seconds(merged.timeout), seconds(merged.start_period)),
            (7, 1, 20),
            "the config's timeout, the image's others"
        );
        assert_eq!((seconds(merged.start_interval), merged.retries), (2, 9));
    }

    /// Docker probes every start interval (5 s by default) during the start period until the first success.
    #[test]
    fn probes_come_every_start_interval_while_starting_in_the_start_period() {
        let image = ImageHealthcheck { test: vec!["CMD".into(), "probe".into()], ..Default::default() };
        let config = Healthcheck { start_period: Duration::from_secs(60), ..Healthcheck::default() };
        let settings = HealthSettings::resolve(Some(&config), Some(&image)).unwrap();
        assert_eq!(settings.next_wait(Duration::ZERO, true), DEFAULT_START_INTERVAL);
        assert_eq!(settings.next_wait(Duration::from_secs(10), false), DEFAULT_INTERVAL, "healthy once");
        assert_eq!(settings.next_wait(Duration::from_secs(60), true), DEFAULT_INTERVAL, "after the start period");
        let no_period = HealthSettings::resolve(None, Some(&image)).unwrap();
        assert_eq!(no_period.next_wait(Duration::ZERO, true), DEFAULT_INTERVAL);
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
