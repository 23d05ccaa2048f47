//! The per-container state machine: `match (state, event)` over named enums, returning the actions to take.
//!
//! It decides; the worker ([`super::worker`]) does, and reports back what happened as the next event. Restart
//! decisions follow moby's restart manager: `no` never, `always` on any exit, `unless-stopped` unless the user
//! stopped it, `on-failure[:N]` on a non-zero exit while fewer than N restarts happened; an exit after a requested
//! stop never restarts; every start but a restart by policy (at boot, through the API) resets the count and the
//! backoff. Every start (at boot, through the API, the second half of a restart) first has the image and then waits
//! for the dependencies; a restart after a crash does neither, as with Docker.

use std::fmt;
use std::time::Duration;

use keel_config::containers::restart::RestartPolicy;

use super::backoff::next_delay;
use super::state_file::PersistedState;

/// Where a container is, in Docker's terms plus the moments Docker folds into them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Declared, never started (Docker: `created`).
    Created,
    /// Asked to start; making sure its image is in the store, pulling it if not (Docker: `created`).
    Pulling,
    /// Has its image; waiting until every `depends_on` container meets its condition (Docker: `created`).
    Waiting,
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
            State::Created | State::Pulling | State::Waiting => "created",
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

/// What happened to a container, or what it was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Start it: at boot or on a config change (`manual: false`), or through the API (`manual: true`).
    Start { manual: bool },
    /// `docker restart`: stop it (not as a user stop), then start it as a manual start would.
    Restart,
    /// Stop it: through the API (`by_user: true`) or for reconciliation's and shutdown's sake.
    Stop { by_user: bool },
    /// Stop it for good: it never starts again, and its worker ends once it is down (`remove`: with its files).
    Shutdown { remove: bool },
    /// The image is in the store (it was, or a pull finished).
    ImageReady,
    /// The pull failed.
    PullFailed,
    /// The delay before the next pull passed.
    PullRetryElapsed,
    /// Every `depends_on` container meets its condition (started, healthy, completed successfully).
    DependenciesReady,
    /// Its first process exec'd.
    Started,
    /// Creating or starting failed; `exit_code` as Docker reports it (125, 126, 127).
    StartFailed { exit_code: i32 },
    /// Its first process ended after running for `ran_for`.
    Exited { exit_code: i32, ran_for: Duration },
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
    /// Make sure the image is in the store, pulling it if not, then report `ImageReady` or `PullFailed`.
    EnsureImage,
    /// Report `PullRetryElapsed` after this long.
    SchedulePull(Duration),
    /// Report `DependenciesReady` once every dependency is ready: now, or when the last of them becomes so.
    AwaitDependencies,
    /// Create and start the container, then report `Started` or `StartFailed`.
    Spawn,
    /// Send the stop signal and report `StopTimeoutElapsed` after the stop timeout.
    SendStopSignal,
    SendKill,
    /// Report `BackoffElapsed` after this long.
    ScheduleRestart(Duration),
    /// Forget a pending restart, pull or kill.
    CancelTimer,
    /// It is down for good: delete its files (`remove`) or just its cgroup, and end the worker.
    Finish {
        remove: bool,
    },
}

/// The state plus what the decisions need; persisted parts go to the state file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    state: State,
    policy: RestartPolicy,
    /// Restarts since the last manual start (Docker's RestartCount).
    restart_count: u32,
    /// The last restart delay; `None` after a manual start.
    last_delay: Option<Duration>,
    /// Set by a stop through the API, cleared by a start through it; kept across supervisor restarts.
    stopped_by_user: bool,
    exit_code: i32,
    /// It ran under this supervisor: stopped before its next start, it shows as exited, not created.
    ran: bool,
    /// A pull is under way. Its result comes whatever the state is by then, so a new start waits for that
    /// result instead of pulling again.
    pulling: bool,
    /// The last delay between pulls; `None` before the first failure of this start.
    pull_delay: Option<Duration>,
    /// A `docker restart` stopped it: start it once it is down.
    start_when_down: bool,
    /// Shut down for good: nothing starts it again, and `Finish` follows once it is down.
    retiring: Option<Retiring>,
}

/// How a container is shut down for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Retiring {
    remove: bool,
}

impl Machine {
    pub fn new(policy: RestartPolicy, stopped_by_user: bool) -> Machine {
        Machine {
            state: State::Created,
            policy,
            restart_count: 0,
            last_delay: None,
            stopped_by_user,
            exit_code: 0,
            ran: false,
            pulling: false,
            pull_delay: None,
            start_when_down: false,
            retiring: None,
        }
    }

    /// A machine for a container that an earlier supervisor ran: the manual stop, count and last exit carry over.
    pub fn resume(policy: RestartPolicy, persisted: &PersistedState) -> Machine {
        Machine {
            restart_count: persisted.restart_count,
            exit_code: persisted.exit_code,
            ..Machine::new(policy, persisted.stopped_by_user)
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn restart_count(&self) -> u32 {
        self.restart_count
    }

    pub fn stopped_by_user(&self) -> bool {
        self.stopped_by_user
    }

    pub fn exit_code(&self) -> i32 {
        self.exit_code
    }

    /// No process of it runs or is being started or stopped: what a `docker stop` waits for.
    pub fn is_down(&self) -> bool {
        !matches!(self.state, State::Starting | State::Running | State::Stopping)
    }

    /// A `docker restart` is done with: the stop is over and the start begun (or the restart was overtaken by a
    /// stop or a shutdown).
    pub fn restart_done(&self) -> bool {
        !self.start_when_down && self.state != State::Stopping
    }

    /// Shut down for good and down: its worker has nothing left to do.
    pub fn is_finished(&self) -> bool {
        self.retiring.is_some() && self.is_down()
    }

    /// Applies `event`; returns the actions to take, in order.
    pub fn handle(&mut self, event: Event) -> Vec<Action> {
        use Event as E;
        use State as S;
        match (self.state, event) {
            // Shut down for good: whatever was asked before or after, it stays down.
            (_, E::Start { .. } | E::Restart) if self.retiring.is_some() => vec![],

            // Docker leaves an unless-stopped container that the user stopped alone when the daemon starts.
            (S::Created | S::Exited, E::Start { manual: false })
                if self.policy == RestartPolicy::UnlessStopped && self.stopped_by_user =>
            {
                vec![]
            }
            (S::Created | S::Exited | S::Restarting, E::Start { manual }) => {
                let cancel = self.state == S::Restarting;
                // Docker resets the count and the backoff on every start that is not a restart by policy: a
                // `docker start`, and each container it starts when the daemon starts (a boot here).
                self.reset_restarts();
                if manual {
                    self.stopped_by_user = false;
                }
                let mut actions = if cancel { vec![Action::CancelTimer] } else { vec![] };
                actions.extend(self.begin_start());
                actions
            }
            (S::Pulling | S::Waiting, E::Start { manual }) => {
                // Already on its way: a manual start only resets what a manual start resets.
                if manual {
                    self.reset_for_manual_start();
                }
                vec![]
            }
            (S::Starting | S::Running | S::Stopping | S::Dead, E::Start { .. }) => vec![],

            (S::Running, E::Restart) => {
                self.start_when_down = true;
                self.state = S::Stopping;
                vec![Action::SendStopSignal]
            }
            (S::Stopping, E::Restart) => {
                self.start_when_down = true;
                vec![]
            }
            (S::Created | S::Exited | S::Restarting | S::Pulling | S::Waiting, E::Restart) => {
                self.handle(E::Start { manual: true })
            }
            // A start in progress completes within one worker step, before the next event is read.
            (S::Starting | S::Dead, E::Restart) => vec![],

            (S::Running, E::Stop { by_user }) => {
                self.stopped_by_user |= by_user;
                self.start_when_down = false;
                self.state = S::Stopping;
                vec![Action::SendStopSignal]
            }
            (S::Stopping, E::Stop { by_user }) => {
                // A stop overtakes a restart in progress: it stays down.
                self.stopped_by_user |= by_user;
                self.start_when_down = false;
                vec![]
            }
            (S::Restarting | S::Pulling | S::Waiting, E::Stop { by_user }) => {
                // Nothing runs yet: it is down at once. A pull under way goes on; its result changes nothing.
                self.stopped_by_user |= by_user;
                let mut actions = vec![Action::CancelTimer];
                actions.extend(self.down(if self.ran { S::Exited } else { S::Created }));
                actions
            }
            // Docker: stopping a container that does not run changes nothing. A start in progress completes
            // within one worker step, before the next event is read, so Starting never sees a stop.
            (S::Created | S::Starting | S::Exited | S::Dead, E::Stop { .. }) => vec![],

            (state, E::Shutdown { remove }) => {
                self.retiring = Some(Retiring { remove });
                self.start_when_down = false;
                match state {
                    S::Running => {
                        self.state = S::Stopping;
                        vec![Action::SendStopSignal]
                    }
                    S::Restarting | S::Pulling | S::Waiting => {
                        let mut actions = vec![Action::CancelTimer];
                        actions.extend(self.down(if self.ran { S::Exited } else { S::Created }));
                        actions
                    }
                    S::Created | S::Exited | S::Dead => self.down(state),
                    // Stopping: `Finish` follows the exit; Starting: follows `Started`'s stop.
                    S::Stopping | S::Starting => vec![],
                }
            }

            (S::Pulling, E::ImageReady) => {
                self.pulling = false;
                self.pull_delay = None;
                self.state = S::Waiting;
                vec![Action::AwaitDependencies]
            }
            (_, E::ImageReady) => {
                self.pulling = false;
                self.pull_delay = None;
                vec![]
            }
            (S::Pulling, E::PullFailed) => {
                self.pulling = false;
                let delay = next_delay(self.pull_delay, Duration::ZERO);
                self.pull_delay = Some(delay);
                vec![Action::SchedulePull(delay)]
            }
            (_, E::PullFailed) => {
                self.pulling = false;
                vec![]
            }
            (S::Pulling, E::PullRetryElapsed) => self.ensure_image(),
            (_, E::PullRetryElapsed) => vec![],

            (S::Waiting, E::DependenciesReady) => {
                self.state = S::Starting;
                vec![Action::Spawn]
            }
            (_, E::DependenciesReady) => vec![],

            (S::Starting, E::Started) => {
                // Docker's ExitCode is the last run's only while it is down: a start sets it back to 0.
                self.exit_code = 0;
                self.ran = true;
                self.state = S::Running;
                if self.retiring.is_some() {
                    self.state = S::Stopping;
                    vec![Action::SendStopSignal]
                } else {
                    vec![]
                }
            }
            (S::Starting, E::StartFailed { exit_code }) => {
                // Docker does not restart a container whose start failed (a bad command stays down, reported), and
                // one that never ran stays `created`.
                self.exit_code = exit_code;
                self.down(if self.ran { S::Exited } else { S::Created })
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
                // Never a restart by policy: the exit was asked for.
                self.exit_code = exit_code;
                let mut actions = vec![Action::CancelTimer];
                if self.start_when_down {
                    self.start_when_down = false;
                    self.state = S::Exited;
                    actions.extend(self.handle(E::Start { manual: true }));
                } else {
                    actions.extend(self.down(S::Exited));
                }
                actions
            }
            // Only a running (or stopping) container has a process that can exit.
            (
                S::Created | S::Pulling | S::Waiting | S::Starting | S::Restarting | S::Exited | S::Dead,
                E::Exited { .. },
            ) => {
                vec![]
            }

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

    fn reset_for_manual_start(&mut self) {
        self.reset_restarts();
        self.stopped_by_user = false;
    }

    fn reset_restarts(&mut self) {
        self.restart_count = 0;
        self.last_delay = None;
    }

    /// The first step of every start but a restart after a crash: the image.
    fn begin_start(&mut self) -> Vec<Action> {
        self.state = State::Pulling;
        self.pull_delay = None;
        self.ensure_image()
    }

    /// Asks for the image unless a pull is already under way (its result will do).
    fn ensure_image(&mut self) -> Vec<Action> {
        if self.pulling {
            return vec![];
        }
        self.pulling = true;
        vec![Action::EnsureImage]
    }

    /// Down in `state`; if shut down for good, that is the end.
    fn down(&mut self, state: State) -> Vec<Action> {
        self.state = state;
        match self.retiring {
            Some(Retiring { remove }) => vec![Action::Finish { remove }],
            None => vec![],
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

    /// Takes a start from its first step to a running process.
    fn start_to_running(machine: &mut Machine) {
        assert_eq!(machine.handle(Event::ImageReady), [Action::AwaitDependencies]);
        assert_eq!(machine.state, State::Waiting);
        assert_eq!(machine.handle(Event::DependenciesReady), [Action::Spawn]);
        assert_eq!(machine.handle(Event::Started), []);
        assert_eq!(machine.state, State::Running);
    }

    fn running(policy: RestartPolicy) -> Machine {
        let mut machine = Machine::new(policy, false);
        assert_eq!(machine.handle(Event::Start { manual: false }), [Action::EnsureImage]);
        start_to_running(&mut machine);
        machine
    }

    fn exit(machine: &mut Machine, exit_code: i32) -> Vec<Action> {
        machine.handle(Event::Exited { exit_code, ran_for: QUICK })
    }

    /// A machine in each state, reached through events only.
    fn in_every_state() -> Vec<Machine> {
        let created = Machine::new(RestartPolicy::Always, false);
        let mut pulling = created.clone();
        pulling.handle(Event::Start { manual: false });
        let mut waiting = pulling.clone();
        waiting.handle(Event::ImageReady);
        let mut starting = waiting.clone();
        starting.handle(Event::DependenciesReady);
        let running = running(RestartPolicy::Always);
        let mut stopping = running.clone();
        stopping.handle(Event::Stop { by_user: false });
        let mut restarting = running.clone();
        exit(&mut restarting, 1);
        let mut exited = stopping.clone();
        exit(&mut exited, 0);
        let mut dead = running.clone();
        dead.handle(Event::RemoveFailed);
        let machines = vec![created, pulling, waiting, starting, running, stopping, restarting, exited, dead];
        let states: Vec<State> = machines.iter().map(|machine| machine.state).collect();
        use State as S;
        let all = [S::Created, S::Pulling, S::Waiting, S::Starting, S::Running, S::Stopping, S::Restarting, S::Exited];
        assert_eq!(states, [all.as_slice(), &[S::Dead]].concat());
        machines
    }

    fn every_event() -> Vec<Event> {
        vec![
            Event::Start { manual: false },
            Event::Start { manual: true },
            Event::Restart,
            Event::Stop { by_user: false },
            Event::Stop { by_user: true },
            Event::Shutdown { remove: false },
            Event::Shutdown { remove: true },
            Event::ImageReady,
            Event::PullFailed,
            Event::PullRetryElapsed,
            Event::DependenciesReady,
            Event::Started,
            Event::StartFailed { exit_code: 127 },
            Event::Exited { exit_code: 1, ran_for: QUICK },
            Event::StopTimeoutElapsed,
            Event::BackoffElapsed,
            Event::RemoveFailed,
        ]
    }

    /// Restarts until it stops restarting; returns the restart count.
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
            assert!(!machine.is_down());
            assert_eq!(machine.handle(Event::StopTimeoutElapsed), [Action::SendKill]);
            assert_eq!(exit(&mut machine, 137), [Action::CancelTimer]);
            assert_eq!((machine.state, machine.exit_code, machine.stopped_by_user), (State::Exited, 137, false));
            assert!(machine.is_down());
        }
    }

    #[test]
    fn a_user_stop_is_remembered_until_a_manual_start() {
        let mut machine = running(RestartPolicy::UnlessStopped);
        machine.handle(Event::Stop { by_user: true });
        exit(&mut machine, 0);
        assert!(machine.stopped_by_user);
        assert_eq!(machine.handle(Event::Start { manual: true }), [Action::EnsureImage]);
        assert!(!machine.stopped_by_user);
    }

    #[test]
    fn an_unless_stopped_container_the_user_stopped_does_not_start_at_boot() {
        let persisted = PersistedState { stopped_by_user: true, restart_count: 2, ..PersistedState::default() };
        let mut machine = Machine::resume(RestartPolicy::UnlessStopped, &persisted);
        assert_eq!(machine.handle(Event::Start { manual: false }), []);
        assert_eq!((machine.state, machine.restart_count), (State::Created, 2));
        assert_eq!(machine.handle(Event::Start { manual: true }), [Action::EnsureImage]);
        assert_eq!((machine.restart_count, machine.stopped_by_user), (0, false));

        let mut always = Machine::resume(RestartPolicy::Always, &persisted);
        assert_eq!(always.handle(Event::Start { manual: false }), [Action::EnsureImage], "Docker starts it");
        assert_eq!(always.restart_count, 0, "and resets its count");
    }

    #[test]
    fn a_boot_start_resets_the_restart_count_as_dockers_daemon_start_does() {
        let on_failure_2 = RestartPolicy::OnFailure { max_retries: Some(2) };
        let persisted = PersistedState { restart_count: 2, exit_code: 1, ..PersistedState::default() };
        let mut machine = Machine::resume(on_failure_2, &persisted);
        assert_eq!(machine.restart_count, 2, "shown until it starts");
        assert_eq!(machine.handle(Event::Start { manual: false }), [Action::EnsureImage]);
        assert_eq!((machine.restart_count, machine.last_delay), (0, None));
        start_to_running(&mut machine);
        assert_eq!(exit(&mut machine, 1), [Action::ScheduleRestart(Duration::from_millis(100))], "retries again");
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
        assert_eq!(machine.handle(Event::Start { manual: true }), [Action::EnsureImage]);
        assert_eq!((machine.restart_count, machine.last_delay), (0, None));
        start_to_running(&mut machine);
        assert_eq!(exit(&mut machine, 1), [Action::ScheduleRestart(Duration::from_millis(100))]);
    }

    #[test]
    fn a_manual_start_while_restarting_cancels_the_backoff() {
        let mut machine = running(RestartPolicy::Always);
        exit(&mut machine, 1);
        assert_eq!(machine.handle(Event::Start { manual: true }), [Action::CancelTimer, Action::EnsureImage]);
        assert_eq!((machine.state, machine.restart_count), (State::Pulling, 0));
    }

    #[test]
    fn the_exit_code_resets_when_it_starts_again() {
        let mut machine = running(RestartPolicy::OnFailure { max_retries: None });
        exit(&mut machine, 3);
        assert_eq!(machine.exit_code, 3, "shown while it waits to restart");
        machine.handle(Event::BackoffElapsed);
        machine.handle(Event::Started);
        assert_eq!(machine.exit_code, 0);
    }

    #[test]
    fn failed_starts_are_not_restarted() {
        let mut machine = Machine::new(RestartPolicy::Always, false);
        machine.handle(Event::Start { manual: false });
        machine.handle(Event::ImageReady);
        machine.handle(Event::DependenciesReady);
        assert_eq!(machine.handle(Event::StartFailed { exit_code: 127 }), []);
        assert_eq!((machine.state, machine.exit_code), (State::Created, 127), "it never ran");

        let mut ran = running(RestartPolicy::Always);
        exit(&mut ran, 1);
        ran.handle(Event::BackoffElapsed);
        assert_eq!(ran.handle(Event::StartFailed { exit_code: 126 }), []);
        assert_eq!((ran.state, ran.exit_code), (State::Exited, 126));
    }

    #[test]
    fn pulls_are_retried_with_the_backoff_until_the_image_is_in() {
        let mut machine = Machine::new(RestartPolicy::No, false);
        assert_eq!(machine.handle(Event::Start { manual: false }), [Action::EnsureImage]);
        let mut delays = Vec::new();
        for _ in 0..3 {
            match machine.handle(Event::PullFailed).as_slice() {
                [Action::SchedulePull(delay)] => delays.push(delay.as_millis()),
                other => panic!("unexpected {other:?}"),
            }
            assert_eq!(machine.state, State::Pulling);
            assert_eq!(machine.handle(Event::PullRetryElapsed), [Action::EnsureImage]);
        }
        assert_eq!(delays, [100, 200, 400]);
        assert_eq!(machine.handle(Event::ImageReady), [Action::AwaitDependencies]);
        assert_eq!(machine.pull_delay, None);
    }

    /// The bug of issue 9: a stop during a pull, then a start, spawned with no image.
    #[test]
    fn a_start_after_a_stop_during_a_pull_waits_for_the_image() {
        let mut machine = Machine::new(RestartPolicy::Always, false);
        assert_eq!(machine.handle(Event::Start { manual: false }), [Action::EnsureImage]);
        assert_eq!(machine.handle(Event::Stop { by_user: true }), [Action::CancelTimer]);
        assert_eq!((machine.state, machine.stopped_by_user), (State::Created, true));
        assert!(machine.is_down());
        // The pull is still under way: the start waits for its result rather than spawning or pulling again.
        assert_eq!(machine.handle(Event::Start { manual: true }), []);
        assert_eq!(machine.state, State::Pulling);
        assert_eq!(machine.handle(Event::PullFailed), [Action::SchedulePull(Duration::from_millis(100))]);
        // Stopped during the wait between pulls, then started: it pulls again.
        machine.handle(Event::Stop { by_user: true });
        assert_eq!(machine.handle(Event::PullRetryElapsed), [], "a stale timer does nothing");
        assert_eq!(machine.handle(Event::Start { manual: true }), [Action::EnsureImage]);
        assert_eq!(machine.handle(Event::ImageReady), [Action::AwaitDependencies]);
        assert_eq!(machine.handle(Event::DependenciesReady), [Action::Spawn]);
    }

    #[test]
    fn a_pull_result_after_a_stop_changes_nothing() {
        for result in [Event::ImageReady, Event::PullFailed] {
            let mut machine = Machine::new(RestartPolicy::Always, false);
            machine.handle(Event::Start { manual: false });
            machine.handle(Event::Stop { by_user: false });
            assert_eq!(machine.handle(result), [], "{result:?}");
            assert_eq!(machine.state, State::Created);
            assert_eq!(machine.handle(Event::Start { manual: false }), [Action::EnsureImage], "pulls anew");
        }
    }

    #[test]
    fn waits_for_dependencies_and_a_stop_meanwhile_leaves_it_down() {
        let mut machine = Machine::new(RestartPolicy::Always, false);
        machine.handle(Event::Start { manual: false });
        assert_eq!(machine.handle(Event::ImageReady), [Action::AwaitDependencies]);
        assert_eq!(machine.state.docker_status(false), "created");
        assert_eq!(machine.handle(Event::Stop { by_user: true }), [Action::CancelTimer]);
        assert_eq!(machine.handle(Event::DependenciesReady), [], "a late readiness starts nothing");
        assert_eq!(machine.state, State::Created);

        // After a run, a stop before the next start leaves it exited, as Docker shows it.
        let mut machine = running(RestartPolicy::Always);
        machine.handle(Event::Stop { by_user: false });
        exit(&mut machine, 0);
        machine.handle(Event::Start { manual: true });
        machine.handle(Event::Stop { by_user: false });
        assert_eq!(machine.state, State::Exited);
    }

    #[test]
    fn a_restart_stops_then_starts_as_a_manual_start() {
        let mut machine = running(RestartPolicy::Always);
        exit(&mut machine, 1);
        machine.handle(Event::BackoffElapsed);
        machine.handle(Event::Started);
        assert_eq!(machine.restart_count, 1);
        assert_eq!(machine.handle(Event::Restart), [Action::SendStopSignal]);
        assert!(!machine.restart_done());
        assert_eq!(exit(&mut machine, 143), [Action::CancelTimer, Action::EnsureImage]);
        assert_eq!((machine.state, machine.restart_count, machine.exit_code), (State::Pulling, 0, 143));
        assert!(machine.restart_done());
        assert!(!machine.stopped_by_user);

        let mut exited = Machine::new(RestartPolicy::No, false);
        assert_eq!(exited.handle(Event::Restart), [Action::EnsureImage], "a restart of a stopped one starts it");
    }

    #[test]
    fn a_stop_overtakes_a_restart() {
        let mut machine = running(RestartPolicy::Always);
        machine.handle(Event::Restart);
        assert_eq!(machine.handle(Event::Stop { by_user: true }), []);
        assert_eq!(exit(&mut machine, 143), [Action::CancelTimer]);
        assert_eq!((machine.state, machine.stopped_by_user), (State::Exited, true));
        assert!(machine.restart_done() && machine.is_down());
    }

    #[test]
    fn shutdown_stops_for_good_then_finishes() {
        let mut machine = running(RestartPolicy::Always);
        assert_eq!(machine.handle(Event::Shutdown { remove: true }), [Action::SendStopSignal]);
        assert_eq!(machine.handle(Event::Start { manual: true }), []);
        assert_eq!(machine.handle(Event::Restart), []);
        assert!(!machine.is_finished());
        assert_eq!(exit(&mut machine, 0), [Action::CancelTimer, Action::Finish { remove: true }]);
        assert!(machine.is_finished());

        let mut idle = Machine::new(RestartPolicy::Always, false);
        assert_eq!(idle.handle(Event::Shutdown { remove: false }), [Action::Finish { remove: false }]);
        let mut restarting = running(RestartPolicy::Always);
        exit(&mut restarting, 1);
        let finish = [Action::CancelTimer, Action::Finish { remove: false }];
        assert_eq!(restarting.handle(Event::Shutdown { remove: false }), finish);
        let mut pulling = Machine::new(RestartPolicy::Always, false);
        pulling.handle(Event::Start { manual: false });
        assert_eq!(pulling.handle(Event::Shutdown { remove: false }), finish);
        assert_eq!(pulling.handle(Event::ImageReady), []);
        assert!(pulling.is_finished());
    }

    #[test]
    fn a_shutdown_during_a_start_stops_what_started() {
        let mut machine = Machine::new(RestartPolicy::Always, false);
        machine.handle(Event::Start { manual: false });
        machine.handle(Event::ImageReady);
        machine.handle(Event::DependenciesReady);
        assert_eq!(machine.handle(Event::Shutdown { remove: false }), []);
        assert_eq!(machine.handle(Event::Started), [Action::SendStopSignal]);
        assert_eq!(exit(&mut machine, 0), [Action::CancelTimer, Action::Finish { remove: false }]);
    }

    /// Over every (state, event) pair: a process is only spawned once the image is in and the dependencies are
    /// ready (or on a restart after a crash), and only a shutdown ends the worker.
    #[test]
    fn every_pair_spawns_only_when_startable_and_finishes_only_when_shut_down() {
        for machine in in_every_state() {
            for event in every_event() {
                let mut after = machine.clone();
                let actions = after.handle(event);
                let pair = (machine.state, event);
                if actions.contains(&Action::Spawn) {
                    let startable = matches!(
                        pair,
                        (State::Waiting, Event::DependenciesReady) | (State::Restarting, Event::BackoffElapsed)
                    );
                    assert!(startable, "{pair:?} spawned");
                }
                if actions.iter().any(|action| matches!(action, Action::Finish { .. })) {
                    assert!(matches!(event, Event::Shutdown { .. }), "{pair:?} finished");
                }
                if after.is_finished() {
                    assert!(after.is_down(), "{pair:?}");
                }
            }
        }
    }

    #[test]
    fn events_that_do_not_apply_change_nothing() {
        let idle = Machine::new(RestartPolicy::Always, false);
        for event in [
            Event::ImageReady,
            Event::PullFailed,
            Event::PullRetryElapsed,
            Event::DependenciesReady,
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
        assert_eq!(State::Pulling.docker_status(true), "created");
    }
}
