//! The health gate's decision, from snapshots of the containers' status: every `required` container ready (running,
//! and healthy where it has a health check) without a break for the window, within the timeout. Pure: the caller
//! brings the time and the snapshots.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use keel_supervision::health::HealthState;
use keel_supervision::machine::State;
use keel_supervision::ContainerStatus;
use serde::{Deserialize, Serialize};

/// How much of a failing probe's output a report keeps.
const MAX_PROBE_OUTPUT: usize = 200;

/// One required container as the gate last saw it: what the console and `last-boot.json` say about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerReport {
    pub name: String,
    pub state: String,
    pub exit_code: i32,
    /// `None` without a health check.
    pub health: Option<String>,
    /// The whole condition in words: state, exit code, restarts, health and its last probe, start error.
    pub condition: String,
}

/// Where the gate stands after a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Waiting,
    /// Why, in words.
    Passed {
        reason: String,
    },
    /// Why, and the required containers that were not ready for the window.
    Failed {
        reason: String,
        containers: Vec<ContainerReport>,
    },
}

/// A container's current run of readiness: since when, and which run of the container it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Streak {
    since: Instant,
    started_at: Option<SystemTime>,
    restart_count: u32,
}

/// The gate's memory between snapshots.
#[derive(Debug)]
pub struct HealthGate {
    window: Duration,
    timeout: Duration,
    started: Instant,
    streaks: BTreeMap<String, Streak>,
    conditions: BTreeMap<String, String>,
    all_ready: bool,
}

impl HealthGate {
    pub fn new(window: Duration, timeout: Duration, started: Instant) -> HealthGate {
        HealthGate { window, timeout, started, streaks: BTreeMap::new(), conditions: BTreeMap::new(), all_ready: false }
    }

    /// Takes one snapshot of every container at `now`; returns the progress lines worth printing (what changed)
    /// and the verdict.
    pub fn observe(&mut self, now: Instant, statuses: &[ContainerStatus]) -> (Vec<String>, Verdict) {
        let required: Vec<&ContainerStatus> = statuses.iter().filter(|status| status.required).collect();
        if required.is_empty() {
            let reason = "no container is required, and the supervisor runs".to_owned();
            return (Vec::new(), Verdict::Passed { reason });
        }
        let mut progress = Vec::new();
        for status in &required {
            let condition = condition(status);
            if self.conditions.get(&status.name) != Some(&condition) {
                progress.push(format!("{}: {condition}", status.name));
                self.conditions.insert(status.name.clone(), condition);
            }
            self.update_streak(now, status);
        }
        // A required container that stopped for good cannot become ready: no reason to wait out the timeout.
        let stopped: Vec<ContainerReport> = required
            .iter()
            .filter(|status| matches!(status.state, State::Exited | State::Dead))
            .map(|status| report(status))
            .collect();
        if !stopped.is_empty() {
            let names = stopped.iter().map(|report| report.name.as_str()).collect::<Vec<_>>().join(", ");
            let reason = format!("required container {names} stopped and will not be restarted");
            return (progress, Verdict::Failed { reason, containers: stopped });
        }
        let all_ready = required.iter().all(|status| self.streaks.contains_key(&status.name));
        if all_ready && !self.all_ready {
            progress.push(format!(
                "every required container is ready; the gate passes after {:?} without a break",
                self.window
            ));
        }
        self.all_ready = all_ready;
        let ready_for_window = |status: &&&ContainerStatus| {
            self.streaks
                .get(&status.name)
                .is_some_and(|streak| now.saturating_duration_since(streak.since) >= self.window)
        };
        if required.iter().all(|status| ready_for_window(&status)) {
            let names = required.iter().map(|status| status.name.as_str()).collect::<Vec<_>>().join(", ");
            let reason = format!("required container {names} ready for {:?} without a break", self.window);
            return (progress, Verdict::Passed { reason });
        }
        if now.saturating_duration_since(self.started) >= self.timeout {
            let containers: Vec<ContainerReport> =
                required.iter().filter(|status| !ready_for_window(status)).map(|status| report(status)).collect();
            let names = containers.iter().map(|report| report.name.as_str()).collect::<Vec<_>>().join(", ");
            let reason = format!(
                "timed out after {:?}: required container {names} was not ready for {:?} without a break",
                self.timeout, self.window
            );
            return (progress, Verdict::Failed { reason, containers });
        }
        (progress, Verdict::Waiting)
    }

    /// A ready container keeps its streak only while it is the same run: a restart between two snapshots breaks it.
    fn update_streak(&mut self, now: Instant, status: &ContainerStatus) {
        if !status.is_ready() {
            self.streaks.remove(&status.name);
            return;
        }
        let same_run =
            |streak: &Streak| streak.started_at == status.started_at && streak.restart_count == status.restart_count;
        if !self.streaks.get(&status.name).is_some_and(same_run) {
            let streak = Streak { since: now, started_at: status.started_at, restart_count: status.restart_count };
            self.streaks.insert(status.name.clone(), streak);
        }
    }
}

/// What the reports say about one container.
pub fn report(status: &ContainerStatus) -> ContainerReport {
    ContainerReport {
        name: status.name.clone(),
        state: status.state.to_string(),
        exit_code: status.exit_code,
        health: status.health.as_ref().map(|health| health.status.to_string()),
        condition: condition(status),
    }
}

/// `Restarting, exit code 1, 3 restarts, health unhealthy (last probe: exit 1 "…")`.
fn condition(status: &ContainerStatus) -> String {
    let mut parts = vec![status.state.to_string()];
    let has_exited = status.finished_at.is_some() || matches!(status.state, State::Exited | State::Restarting);
    if has_exited && status.state != State::Running {
        parts.push(format!("exit code {}", status.exit_code));
    }
    if status.oom_killed {
        parts.push("killed for lack of memory".to_owned());
    }
    if status.restart_count > 0 {
        parts.push(format!("{} restarts", status.restart_count));
    }
    if let Some(health) = &status.health {
        let mut text = format!("health {}", health.status);
        if health.status != HealthState::Healthy {
            if let Some(probe) = health.log.back() {
                let output: String = probe.output.trim().chars().take(MAX_PROBE_OUTPUT).collect();
                text.push_str(&format!(" (last probe: exit {} {output:?})", probe.exit_code));
            }
        }
        parts.push(text);
    }
    if !status.error.is_empty() {
        parts.push(status.error.clone());
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_config::containers::restart::RestartPolicy;
    use keel_supervision::health::Health;

    const WINDOW: Duration = Duration::from_secs(5);
    const TIMEOUT: Duration = Duration::from_secs(30);

    fn running(name: &str, restart_count: u32) -> ContainerStatus {
        let mut status = ContainerStatus::new(name, "busybox", RestartPolicy::Always, true);
        status.state = State::Running;
        status.started_at = Some(SystemTime::UNIX_EPOCH + Duration::from_secs(u64::from(restart_count)));
        status.restart_count = restart_count;
        status
    }

    fn at(start: Instant, seconds: u64) -> Instant {
        start + Duration::from_secs(seconds)
    }

    #[test]
    fn passes_after_the_window_without_a_break() {
        let start = Instant::now();
        let mut gate = HealthGate::new(WINDOW, TIMEOUT, start);
        let optional = ContainerStatus::new("debug", "busybox", RestartPolicy::No, false);
        assert_eq!(gate.observe(at(start, 1), &[running("web", 0), optional.clone()]).1, Verdict::Waiting);
        assert_eq!(gate.observe(at(start, 5), &[running("web", 0), optional.clone()]).1, Verdict::Waiting);
        // The optional container never ran: it does not count.
        let reason = "required container web ready for 5s without a break".to_owned();
        assert_eq!(gate.observe(at(start, 6), &[running("web", 0), optional]).1, Verdict::Passed { reason });
    }

    #[test]
    fn a_restart_or_a_failing_health_check_starts_the_window_again() {
        let start = Instant::now();
        let mut gate = HealthGate::new(WINDOW, TIMEOUT, start);
        gate.observe(at(start, 0), &[running("web", 0)]);
        // Restarted between two snapshots: running both times, but not without a break.
        assert_eq!(gate.observe(at(start, 4), &[running("web", 1)]).1, Verdict::Waiting);
        assert_eq!(gate.observe(at(start, 8), &[running("web", 1)]).1, Verdict::Waiting);
        let mut unhealthy = running("web", 1);
        unhealthy.health = Some(Health { status: HealthState::Unhealthy, ..Health::default() });
        assert_eq!(gate.observe(at(start, 9), &[unhealthy]).1, Verdict::Waiting);
        let mut healthy = running("web", 1);
        healthy.health = Some(Health { status: HealthState::Healthy, ..Health::default() });
        assert_eq!(gate.observe(at(start, 10), &[healthy.clone()]).1, Verdict::Waiting);
        assert!(matches!(gate.observe(at(start, 15), &[healthy]).1, Verdict::Passed { .. }));
    }

    #[test]
    fn fails_at_the_timeout_naming_what_was_not_ready() {
        let start = Instant::now();
        let mut gate = HealthGate::new(WINDOW, TIMEOUT, start);
        let mut crashing = running("db", 4);
        crashing.state = State::Restarting;
        crashing.exit_code = 1;
        crashing.finished_at = Some(SystemTime::UNIX_EPOCH);
        let (progress, verdict) = gate.observe(at(start, 1), &[running("web", 0), crashing.clone()]);
        assert_eq!(verdict, Verdict::Waiting);
        assert_eq!(progress, ["web: Running", "db: Restarting, exit code 1, 4 restarts"]);
        let (progress, verdict) = gate.observe(at(start, 30), &[running("web", 0), crashing]);
        assert!(progress.is_empty(), "{progress:?}");
        let Verdict::Failed { reason, containers } = verdict else { panic!("{verdict:?}") };
        assert_eq!(reason, "timed out after 30s: required container db was not ready for 5s without a break");
        assert_eq!(containers.len(), 1);
        assert_eq!((containers[0].name.as_str(), containers[0].exit_code), ("db", 1));
    }

    #[test]
    fn a_required_container_that_stopped_fails_at_once() {
        let start = Instant::now();
        let mut gate = HealthGate::new(WINDOW, TIMEOUT, start);
        let mut exited = ContainerStatus::new("web", "busybox", RestartPolicy::No, true);
        exited.state = State::Exited;
        exited.exit_code = 1;
        let Verdict::Failed { reason, containers } = gate.observe(at(start, 2), &[exited]).1 else { panic!() };
        assert_eq!(reason, "required container web stopped and will not be restarted");
        assert_eq!(containers[0].condition, "Exited, exit code 1");
    }

    #[test]
    fn with_nothing_required_it_passes_at_once() {
        let start = Instant::now();
        let mut gate = HealthGate::new(WINDOW, TIMEOUT, start);
        let optional = ContainerStatus::new("debug", "busybox", RestartPolicy::No, false);
        let passed = Verdict::Passed { reason: "no container is required, and the supervisor runs".to_owned() };
        assert_eq!(gate.observe(start, &[optional]).1, passed);
        assert_eq!(gate.observe(start, &[]).1, passed);
    }
}
