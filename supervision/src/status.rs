//! `ContainerStatus`: what `docker ps`/`inspect` and the update gate read about a container.

use std::collections::BTreeMap;
use std::time::SystemTime;

use keel_config::containers::dependencies::DependencyCondition;
use keel_config::containers::restart::RestartPolicy;

use super::health::{Health, HealthState};
use super::machine::State;

/// A snapshot of one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerStatus {
    pub name: String,
    /// The image reference as configured.
    pub image: String,
    /// The manifest digest the container was created from, once it was.
    pub image_digest: Option<String>,
    pub state: State,
    /// Docker's status word: created, running, restarting, exited, dead.
    pub status: &'static str,
    /// The container's PID 1 as the host sees it, while it runs.
    pub pid: Option<i32>,
    pub exit_code: i32,
    pub oom_killed: bool,
    /// Why the last start failed, empty otherwise.
    pub error: String,
    pub started_at: Option<SystemTime>,
    pub finished_at: Option<SystemTime>,
    pub restart_count: u32,
    pub restart_policy: RestartPolicy,
    pub stopped_by_user: bool,
    /// `None` without a health check.
    pub health: Option<Health>,
    /// Part of the update gate.
    pub required: bool,
    pub hostname: String,
    pub labels: BTreeMap<String, String>,
}

impl ContainerStatus {
    pub fn new(name: &str, image: &str, restart_policy: RestartPolicy, required: bool) -> ContainerStatus {
        ContainerStatus {
            name: name.to_owned(),
            image: image.to_owned(),
            image_digest: None,
            state: State::Created,
            status: "created",
            pid: None,
            exit_code: 0,
            oom_killed: false,
            error: String::new(),
            started_at: None,
            finished_at: None,
            restart_count: 0,
            restart_policy,
            stopped_by_user: false,
            health: None,
            required,
            hostname: String::new(),
            labels: BTreeMap::new(),
        }
    }

    /// Running, and healthy if it has a health check: what `depends_on` waits for and the update gate asks.
    pub fn is_ready(&self) -> bool {
        self.state == State::Running && self.health.as_ref().is_none_or(|health| health.status == HealthState::Healthy)
    }

    /// Whether a container that depends on this one with `condition` may start (Compose's conditions).
    pub fn meets(&self, condition: DependencyCondition) -> bool {
        match condition {
            DependencyCondition::Started => self.state == State::Running,
            DependencyCondition::Healthy => self.is_ready(),
            DependencyCondition::CompletedSuccessfully => {
                self.state == State::Exited && self.exit_code == 0 && self.finished_at.is_some()
            }
        }
    }

    /// Why `condition` does not hold and will not without a change here (what Compose reports as a failed
    /// dependency); `None` while this container is on its way.
    pub fn fails(&self, condition: DependencyCondition) -> Option<String> {
        let unhealthy = self.health.as_ref().is_some_and(|health| health.status == HealthState::Unhealthy);
        match (condition, self.state) {
            (DependencyCondition::Healthy, State::Running) if unhealthy => Some("is unhealthy".to_owned()),
            (DependencyCondition::CompletedSuccessfully, State::Exited) if self.exit_code != 0 => {
                Some(format!("exited with {}", self.exit_code))
            }
            (DependencyCondition::Started | DependencyCondition::Healthy, State::Exited) => {
                Some(format!("exited with {}", self.exit_code))
            }
            (_, State::Dead) => Some("is dead".to_owned()),
            _ => None,
        }
    }
}
