//! The per-container state machine: `match (state, event)` over named enums, returning the actions to take.
//!
//! It decides; the worker ([`super::worker`]) does. Restart decisions follow moby's restart manager: `no` never,
//! `always` on any exit, `unless-stopped` unless the user stopped it, `on-failure[:N]` on a non-zero exit while
//! fewer than N restarts happened; an exit after a requested stop never restarts; a manual start resets the
//! count and the backoff.

use std::fmt;
use std::time::Duration;

use keel_config::containers::restart::RestartPolicy;

use super::backoff::next_delay;

/// Where a container is, in Docker's terms plus the two moments Docker folds into them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Declared, never started (Docker: `created`).
    Created,
    /// Being created and started (Docker: `created`, or `restarting` on a restart).
    Starting,
    Running,
    /// The stop signal was sent; waiting for the exit or the stop timeout (Docker: still `running`).
    Stopping,
    /// Exited; waiting out the backoff before starting again.
    Restarting,
    Exited,
    /// Could not be managed any more (its files could not be removed).
    Dead,
}

impl State {
    /// The status string `docker ps`/`inspect` show.
    pub fn docker_status(self, restarted_before: bool) -> &'static str {
        match self {
            State::Created => "created",
            State::Starting if restarted_before => "restarting",
            State::Starting => "created",
            State::Running | State::Stopping => "running",
            State::Restarting => "restarting",
            State::Exited => "exited",
            State::Dead => "dead",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// What happened to a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Start it: at boot or on a config change (`manual: false`), or through the API (`manual: true`).
    Start { manual: bool },
    /// Its first process exec'd.
    Started,
    /// Creating or starting failed; `exit_code` as Docker reports it (125, 126, 127).
    StartFailed { exit_code: i32 },
    /// Its first process ended after running for `ran_for`.
    Exited { exit_code: i32, ran_for: Duration },
    /// Stop it: through the API (`by_user: true`) or for shutdown and reconciliation.
    Stop { by_user: bool },
    /// The stop timeout passed without an exit.
    StopTimeoutElapsed,
    /// The restart delay passed.
    BackoffElapsed,
    /// Its files could not be removed.
    RemoveFailed,
}

/// What the worker must do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Create and start the container, then report `Started` or `StartFailed`.
    Spawn,
    /// Send the stop signal and report `StopTimeoutElapsed` after the stop timeout.
    SendStopSignal,
    SendKill,
    /// Report `BackoffElapsed` after this long.
    ScheduleRestart(Duration),
    /// Forget a pending restart or kill.
    CancelTimer,
}

/// The state plus what restart decisions need; persisted parts go to the state file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    pub state: State,
    pub policy: RestartPolicy,
    /// Restarts since the last manual start (Docker's RestartCount).
    pub restart_count: u32,
    /// The last restart delay; `None` after a manual start.
    pub last_delay: Option<Duration>,
    /// Set by a stop through the API, cleared by a start through it; kept across supervisor restarts.
    pub stopped_by_user: bool,
    pub exit_code: i32,
}

impl Machine {
    pub fn new(policy: RestartPolicy, stopped_by_user: bool) -> Machine {
        Machine { state: State::Created, policy, restart_count: 0, last_delay: None, stopped_by_user, exit_code: 0 }
    }

    /// Applies `event`; returns the actions to take, in order.
    pub fn handle(&mut self, event: Event) -> Vec<Action> {
        use Event as E;
        use State as S;
        match (self.state, event) {
            (S::Created | S::Exited, E::Start { manual }) | (S::Restarting, E::Start { manual }) => {
                if manual {
                    self.restart_count = 0;
                    self.last_delay = None;
                    self.stopped_by_user = false;
                }
                let was_restarting = self.state == S::Restarting;
                self.state = S::Starting;
                if was_restarting {
                    vec![Action::CancelTimer, Action::Spawn]
                } else {
                    vec![Action::Spawn]
                }
            }
            (S::Starting | S::Running | S::Stopping | S::Dead, E::Start { .. }) => vec![],

            (S::Starting, E::Started) => {
                self.state = S::Running;
                vec![]
            }
            (S::Starting, E::StartFailed { exit_code }) => {
                // Docker does not restart a container whose start failed (a bad command stays down, reported).
                self.exit_code = exit_code;
                self.state = S::Exited;
                vec![]
            }
            (_, E::Started | E::StartFailed { .. }) => vec![],

            (S::Running, E::Exited { exit_code, ran_for }) => {
                self.exit_code = exit_code;
                if self.should_restart(exit_code) {
                    let delay = next_delay(self.last_delay, ran_for);
                    self.last_delay = Some(delay);
                    self.restart_count += 1;
                    self.state = S::Restarting;
                    vec![Action::ScheduleRestart(delay)]
                } else {
                    self.state = S::Exited;
                    vec![]
                }
            }
            (S::Stopping, E::Exited { exit_code, .. }) => {
                self.exit_code = exit_code;
                self.state = S::Exited;
                vec![Action::CancelTimer]
            }
            // Only a running (or stopping) container has a process that can exit.
            (S::Created | S::Starting | S::Restarting | S::Exited | S::Dead, E::Exited { .. }) => vec![],

            (S::Running, E::Stop { by_user }) => {
                self.stopped_by_user |= by_user;
                self.state = S::Stopping;
                vec![Action::SendStopSignal]
            }
            (S::Stopping, E::Stop { by_user }) => {
                self.stopped_by_user |= by_user;
                vec![]
            }
            (S::Restarting, E::Stop { by_user }) => {
                self.stopped_by_user |= by_user;
                self.state = S::Exited;
                vec![Action::CancelTimer]
            }
            // Docker: stopping a container that does not run changes nothing. A start in progress completes
            // within one worker step, before the next event is read, so Starting never sees a stop.
            (S::Created | S::Starting | S::Exited | S::Dead, E::Stop { .. }) => vec![],

            (S::Stopping, E::StopTimeoutElapsed) => vec![Action::SendKill],
            (_, E::StopTimeoutElapsed) => vec![],

            (S::Restarting, E::BackoffElapsed) => {
                self.state = S::Starting;
                vec![Action::Spawn]
            }
            (_, E::BackoffElapsed) => vec![],

            (_, E::RemoveFailed) => {
                self.state = S::Dead;
                vec![Action::CancelTimer]
            }
        }
    }

    /// moby's `ShouldRestart` for an exit that nobody asked for.
    fn should_restart(&self, exit_code: i32) -> bool {
        match self.policy {
            RestartPolicy::No => false,
            RestartPolicy::Always => true,
            RestartPolicy::UnlessStopped => !self.stopped_by_user,
            RestartPolicy::OnFailure { max_retries } => {
                exit_code != 0 && max_retries.is_none_or(|max| self.restart_count < max)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUICK: Duration = Duration::from_millis(10);

    fn running(policy: RestartPolicy) -> Machine {
        let mut machine = Machine::new(policy, false);
        assert_eq!(machine.handle(Event::Start { manual: false }), [Action::Spawn]);
        assert_eq!(machine.handle(Event::Started), []);
        assert_eq!(machine.state, State::Running);
        machine
    }

    fn exit(machine: &mut Machine, exit_code: i32) -> Vec<Action> {
        machine.handle(Event::Exited { exit_code, ran_for: QUICK })
    }

    /// Runs the machine through exits with `exit_code` until it stops restarting; returns the restart count.
    fn restarts_until_exited(policy: RestartPolicy, exit_code: i32, limit: u32) -> u32 {
        let mut machine = running(policy);
        for _ in 0..limit {
            match exit(&mut machine, exit_code).as_slice() {
                [Action::ScheduleRestart(_)] => {
                    assert_eq!(machine.handle(Event::BackoffElapsed), [Action::Spawn]);
                    machine.handle(Event::Started);
                }
                [] => {
                    assert_eq!(machine.state, State::Exited);
                    return machine.restart_count;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        machine.restart_count
    }

    #[test]
    fn policies_restart_exactly_as_docker() {
        let on_failure_3 = RestartPolicy::OnFailure { max_retries: Some(3) };
        assert_eq!(restarts_until_exited(on_failure_3, 1, 100), 3);
        assert_eq!(restarts_until_exited(on_failure_3, 0, 100), 0);
        assert_eq!(restarts_until_exited(RestartPolicy::OnFailure { max_retries: None }, 1, 50), 50);
        assert_eq!(restarts_until_exited(RestartPolicy::OnFailure { max_retries: None }, 0, 50), 0);
        assert_eq!(restarts_until_exited(RestartPolicy::No, 1, 50), 0);
        assert_eq!(restarts_until_exited(RestartPolicy::Always, 0, 50), 50);
        assert_eq!(restarts_until_exited(RestartPolicy::UnlessStopped, 0, 50), 50);
    }

    #[test]
    fn restart_delays_follow_the_backoff() {
        let mut machine = running(RestartPolicy::Always);
        let mut delays = Vec::new();
        for _ in 0..4 {
            if let [Action::ScheduleRestart(delay)] = exit(&mut machine, 1).as_slice() {
                delays.push(delay.as_millis());
            }
            machine.handle(Event::BackoffElapsed);
            machine.handle(Event::Started);
        }
        assert_eq!(delays, [100, 200, 400, 800]);
        let long_run = machine.handle(Event::Exited { exit_code: 1, ran_for: Duration::from_secs(10) });
        assert_eq!(long_run, [Action::ScheduleRestart(Duration::from_millis(100))]);
    }

    #[test]
    fn a_requested_stop_never_restarts() {
        for policy in
            [RestartPolicy::Always, RestartPolicy::UnlessStopped, RestartPolicy::OnFailure { max_retries: None }]
        {
            let mut machine = running(policy);
            assert_eq!(machine.handle(Event::Stop { by_user: false }), [Action::SendStopSignal]);
            assert_eq!(machine.state, State::Stopping);
            assert_eq!(machine.handle(Event::StopTimeoutElapsed), [Action::SendKill]);
            assert_eq!(exit(&mut machine, 137), [Action::CancelTimer]);
            assert_eq!((machine.state, machine.exit_code, machine.stopped_by_user), (State::Exited, 137, false));
        }
    }

    #[test]
    fn a_user_stop_is_remembered_until_a_manual_start() {
        let mut machine = running(RestartPolicy::UnlessStopped);
        machine.handle(Event::Stop { by_user: true });
        exit(&mut machine, 0);
        assert!(machine.stopped_by_user);
        assert_eq!(machine.handle(Event::Start { manual: true }), [Action::Spawn]);
        assert!(!machine.stopped_by_user);
    }

    #[test]
    fn stopping_while_restarting_cancels_the_restart() {
        let mut machine = running(RestartPolicy::Always);
        exit(&mut machine, 1);
        assert_eq!(machine.state, State::Restarting);
        assert_eq!(machine.handle(Event::Stop { by_user: true }), [Action::CancelTimer]);
        assert_eq!(machine.state, State::Exited);
        assert_eq!(machine.handle(Event::BackoffElapsed), [], "a stale timer does nothing");
    }

    #[test]
    fn a_manual_start_resets_count_and_backoff() {
        let mut machine = running(RestartPolicy::OnFailure { max_retries: Some(1) });
        exit(&mut machine, 1);
        machine.handle(Event::BackoffElapsed);
        machine.handle(Event::Started);
        assert_eq!(exit(&mut machine, 1), []);
        assert_eq!((machine.state, machine.restart_count), (State::Exited, 1));
        machine.handle(Event::Start { manual: true });
        assert_eq!((machine.restart_count, machine.last_delay), (0, None));
        machine.handle(Event::Started);
        assert_eq!(exit(&mut machine, 1), [Action::ScheduleRestart(Duration::from_millis(100))]);
    }

    #[test]
    fn failed_starts_are_not_restarted() {
        let mut machine = Machine::new(RestartPolicy::Always, false);
        machine.handle(Event::Start { manual: false });
        assert_eq!(machine.handle(Event::StartFailed { exit_code: 127 }), []);
        assert_eq!((machine.state, machine.exit_code), (State::Exited, 127));
    }

    #[test]
    fn events_that_do_not_apply_change_nothing() {
        let idle = Machine::new(RestartPolicy::Always, false);
        for event in [
            Event::Started,
            Event::StartFailed { exit_code: 1 },
            Event::Exited { exit_code: 1, ran_for: QUICK },
            Event::Stop { by_user: false },
            Event::StopTimeoutElapsed,
            Event::BackoffElapsed,
        ] {
            let mut machine = idle.clone();
            assert_eq!(machine.handle(event), [], "{event:?}");
            assert_eq!(machine, idle, "{event:?}");
        }
        let mut machine = running(RestartPolicy::Always);
        assert_eq!(machine.handle(Event::Start { manual: true }), []);
        assert_eq!(machine.handle(Event::RemoveFailed), [Action::CancelTimer]);
        assert_eq!(machine.state.docker_status(false), "dead");
    }

    #[test]
    fn docker_status_strings() {
        assert_eq!(State::Stopping.docker_status(false), "running");
        assert_eq!(State::Starting.docker_status(true), "restarting");
        assert_eq!(State::Created.docker_status(false), "created");
    }
}
