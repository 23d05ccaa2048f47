//! One thread per container: turns what it is told into [`Machine`] events and carries out the actions the
//! machine returns, publishing a [`ContainerStatus`] and persisting the state file after each step.
//!
//! Every event goes through the machine; the worker keeps only what carries actions out (the current run's
//! process, the one pending timer, the callers waiting for an answer). It blocks on its channel alone, with the
//! pending timer as the deadline: pulls report back from their own thread, dependencies tell their dependents.

mod announce;
mod launch;
mod prepare;

use std::collections::VecDeque;
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use keel_config::ContainerConfig;
use keel_logs::error_chain;
use keel_logs::timeline::FirstEvents;
use keel_runtime::{remove_container, ContainerPaths, ExitStatus};
use sha2::{Digest as _, Sha256};

use super::health::ProbeRecord;
use super::machine::{Action, Event, Machine, State};
use super::state_file::{from_millis, to_millis, PersistedState};
use super::status::ContainerStatus;
use super::Shared;
use launch::CurrentRun;

/// What a worker is told, or told about.
pub(crate) enum Message {
    Start {
        manual: bool,
    },
    /// Answered on `done` once it is down. `timeout` overrides the container's `stop_timeout` for this stop
    /// (`docker stop -t`).
    Stop {
        by_user: bool,
        timeout: Option<Duration>,
        done: Sender<()>,
    },
    /// Answered on `done` once the stop is over and the start begun.
    Restart {
        timeout: Option<Duration>,
        done: Sender<()>,
    },
    /// `docker kill`: `signal` to a running container; SIGKILL or its stop signal also stops it for now (no
    /// restart, as Docker's kill cancels the restart policy for this exit), without a manual stop's memory.
    Kill {
        signal: i32,
        done: Sender<Result<(), String>>,
    },
    /// Stop for good (supervisor shutdown, or reconciliation with `remove`: delete the container's files too),
    /// killing it at `deadline` if its stop timeout would run later; answered on `done` as the worker ends.
    Shutdown {
        remove: bool,
        deadline: Option<Instant>,
        done: Sender<()>,
    },
    /// The pull of the image ended; the error as the status shows it.
    Pulled {
        result: Result<(), String>,
    },
    /// A container this one depends on became ready, or stopped being so.
    DependencyChanged,
    Exited {
        run: u64,
        status: ExitStatus,
    },
    Health {
        run: u64,
        probe: ProbeRecord,
    },
    /// The kernel's OOM killer killed a process of the run (`memory.events` counted it).
    OomKilled {
        run: u64,
    },
}

/// What a caller is waiting for; each is a question to the machine.
#[derive(Clone, Copy)]
enum Until {
    Down,
    Restarted,
    Finished,
}

pub(crate) struct Worker {
    name: String,
    config: ContainerConfig,
    shared: Arc<Shared>,
    receiver: Receiver<Message>,
    sender: Sender<Message>,
    machine: Machine,
    status: Arc<Mutex<ContainerStatus>>,
    first_events: Arc<FirstEvents>,
    paths: ContainerPaths,
    fingerprint: String,
    /// Counts runs, so that late messages from an earlier run are recognised and dropped.
    run: u64,
    current: Option<CurrentRun>,
    /// The one timer the machine asked for (restart delay, pull delay, stop timeout): when, and what it reports.
    timer: Option<(Instant, Event)>,
    waiters: Vec<(Until, Sender<()>)>,
    /// Set by a shutdown under a host-wide deadline: no stop timeout runs past it.
    kill_deadline: Option<Instant>,
    /// The stop timeout a caller asked for, used by the next stop signal only.
    next_stop_timeout: Option<Duration>,
    /// The signal a kill asked for, sent by the next stop in place of the stop signal.
    next_stop_signal: Option<i32>,
    /// A restart was asked for: the next start is announced as a `restart` too.
    restart_asked: bool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Identifies what the container's files were made for: a changed definition or image means a new writable layer.
/// Built from the digest of the user's own table ([`ContainerConfig::definition_digest`]), not from the parsed
/// struct, so a keel release that adds a field or changes a default keeps every container's files.
fn fingerprint(config: &ContainerConfig, image_digest: Option<&str>) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"definition ");
    hasher.update(config.definition_digest.as_bytes());
    hasher.update(b"\nimage ");
    hasher.update(image_digest.unwrap_or_default().as_bytes());
    hasher.finalize().iter().map(|byte| format!("{byte:02x}")).collect()
}

impl Worker {
    pub(crate) fn new(
        name: &str,
        config: ContainerConfig,
        shared: Arc<Shared>,
        status: Arc<Mutex<ContainerStatus>>,
    ) -> (Worker, Sender<Message>) {
        let (sender, receiver) = channel();
        let paths = ContainerPaths::new(&shared.dirs.containers_dir, name);
        let persisted = PersistedState::load(&paths.state_file);
        let machine = Machine::resume(config.restart, &persisted);
        {
            let mut status = lock(&status);
            status.stopped_by_user = persisted.stopped_by_user;
            status.restart_count = persisted.restart_count;
            status.exit_code = persisted.exit_code;
            status.oom_killed = persisted.oom_killed;
            status.started_at = persisted.started_at_ms.map(from_millis);
            status.finished_at = persisted.finished_at_ms.map(from_millis);
            status.labels = persisted.labels;
        }
        let worker = Worker {
            name: name.to_owned(),
            config,
            shared,
            receiver,
            sender: sender.clone(),
            machine,
            status,
            first_events: Arc::default(),
            paths,
            fingerprint: persisted.fingerprint,
            run: 0,
            current: None,
            timer: None,
            waiters: Vec::new(),
            kill_deadline: None,
            next_stop_timeout: None,
            next_stop_signal: None,
            restart_asked: false,
        };
        (worker, sender)
    }

    /// The thread's body: the boot start, then messages and timers until the machine says it is finished.
    pub(crate) fn run(mut self) {
        self.apply(Event::Start { manual: false });
        if self.machine.state() == State::Created {
            log::info!("{}: stopped by the user before; not starting it (unless-stopped)", self.name);
        }
        while !self.machine.is_finished() {
            match self.timer {
                Some((deadline, event)) => {
                    match self.receiver.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                        Ok(message) => self.handle(message),
                        Err(RecvTimeoutError::Timeout) => {
                            self.timer = None;
                            self.apply(event);
                        }
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
                None => match self.receiver.recv() {
                    Ok(message) => self.handle(message),
                    Err(_) => break,
                },
            }
            self.answer_waiters();
        }
        // Finished: whoever still waits learns that it is down for good.
        for (_, waiter) in self.waiters.drain(..) {
            let _ = waiter.send(());
        }
    }

    fn handle(&mut self, message: Message) {
        match message {
            Message::Start { manual } => self.apply(Event::Start { manual }),
            Message::Stop { by_user, timeout, done } => {
                self.waiters.push((Until::Down, done));
                self.next_stop_timeout = timeout;
                self.apply(Event::Stop { by_user });
                self.next_stop_timeout = None;
            }
            Message::Restart { timeout, done } => {
                self.restart_asked = true;
                self.waiters.push((Until::Restarted, done));
                self.next_stop_timeout = timeout;
                self.apply(Event::Restart);
                self.next_stop_timeout = None;
            }
            Message::Kill { signal, done } => {
                let result = if self.machine.state() != State::Running {
                    Err(format!("container {} is not running", self.name))
                } else if signal == libc::SIGKILL || signal == self.stop_signal() {
                    self.next_stop_signal = Some(signal);
                    self.apply(Event::Stop { by_user: false });
                    self.next_stop_signal = None;
                    Ok(())
                } else {
                    self.signal(signal);
                    Ok(())
                };
                let _ = done.send(result);
            }
            Message::Shutdown { remove, deadline, done } => {
                self.waiters.push((Until::Finished, done));
                self.kill_deadline = deadline;
                self.apply(Event::Shutdown { remove });
                // A stop already under way (a user's `stop`) keeps its signal but not a later timeout.
                if let (Some((when, Event::StopTimeoutElapsed)), Some(deadline)) = (&mut self.timer, deadline) {
                    *when = (*when).min(deadline);
                }
            }
            Message::Pulled { result: Ok(()) } => self.apply(Event::ImageReady),
            Message::Pulled { result: Err(error) } => {
                self.pull_failed(error);
                self.apply(Event::PullFailed);
            }
            // The machine heeds it only while waiting; reading the dependencies is cheap.
            Message::DependencyChanged => {
                if self.unready_dependencies().is_empty() {
                    self.apply(Event::DependenciesReady);
                } else if self.machine.state() == State::Waiting {
                    self.report_failed_dependencies();
                }
            }
            Message::Exited { run, status } if run == self.run => self.exited(status),
            Message::Health { run, probe } if run == self.run => self.health(probe),
            Message::OomKilled { run } if run == self.run => self.oom_killed(),
            Message::Exited { .. } | Message::Health { .. } | Message::OomKilled { .. } => {}
        }
    }

    /// Answers the callers whose wait is over, as the machine now stands.
    fn answer_waiters(&mut self) {
        let machine = &self.machine;
        self.waiters.retain(|(until, waiter)| {
            let over = match until {
                Until::Down => machine.is_down(),
                Until::Restarted => machine.restart_done(),
                Until::Finished => machine.is_finished(),
            };
            if over {
                let _ = waiter.send(());
            }
            !over
        });
    }

    /// Feeds `event` to the machine and carries out its actions; what an action reports (the image is in, the
    /// process started) is the next event, taken after every action of this one.
    fn apply(&mut self, event: Event) {
        let mut events = VecDeque::from([event]);
        while let Some(event) = events.pop_front() {
            let before = self.machine.clone();
            let actions = self.machine.handle(event);
            if self.machine.state() != before.state() {
                log::debug!("{}: {} --{event:?}--> {}", self.name, before.state(), self.machine.state());
            }
            if self.machine != before {
                self.publish();
            }
            for action in actions {
                events.extend(self.perform(action));
            }
        }
    }

    fn perform(&mut self, action: Action) -> Option<Event> {
        match action {
            Action::EnsureImage => self.ensure_image(),
            Action::SchedulePull(delay) => {
                log::info!("{}: pulling again in {delay:?}", self.name);
                self.timer = Some((Instant::now() + delay, Event::PullRetryElapsed));
                None
            }
            Action::AwaitDependencies => self.await_dependencies(),
            Action::Spawn => match self.spawn() {
                Ok(()) => Some(Event::Started),
                Err((exit_code, message)) => {
                    log::warn!("{message}");
                    lock(&self.status).error = message;
                    Some(Event::StartFailed { exit_code })
                }
            },
            Action::SendStopSignal => {
                let signal = self.next_stop_signal.take().unwrap_or_else(|| self.stop_signal());
                self.signal(signal);
                let configured = Duration::from_secs(u64::from(self.config.stop_timeout));
                let timeout = self.next_stop_timeout.take().unwrap_or(configured);
                let mut kill_at = Instant::now() + timeout;
                if let Some(deadline) = self.kill_deadline {
                    kill_at = kill_at.min(deadline);
                }
                self.timer = Some((kill_at, Event::StopTimeoutElapsed));
                None
            }
            Action::SendKill => {
                self.signal(libc::SIGKILL);
                None
            }
            Action::ScheduleRestart(delay) => {
                log::info!("{}: restarting in {delay:?} (restart {})", self.name, self.machine.restart_count());
                self.timer = Some((Instant::now() + delay, Event::BackoffElapsed));
                None
            }
            Action::CancelTimer => {
                self.timer = None;
                None
            }
            Action::Finish { remove } => self.finish(remove),
        }
    }

    /// Copies the machine into the shared status and writes the state file; tells the dependents if that made
    /// the container ready or no longer so.
    fn publish(&self) {
        let mut status = lock(&self.status);
        let was = (status.is_ready(), status.state);
        status.state = self.machine.state();
        status.status = self.machine.state().docker_status(self.machine.restart_count() > 0);
        status.restart_count = self.machine.restart_count();
        status.stopped_by_user = self.machine.stopped_by_user();
        status.exit_code = self.machine.exit_code();
        let ready = status.is_ready();
        let persisted = PersistedState {
            stopped_by_user: self.machine.stopped_by_user(),
            restart_count: self.machine.restart_count(),
            fingerprint: self.fingerprint.clone(),
            status: status.status.to_owned(),
            exit_code: self.machine.exit_code(),
            oom_killed: status.oom_killed,
            started_at_ms: status.started_at.map(to_millis),
            finished_at_ms: status.finished_at.map(to_millis),
            labels: status.labels.clone(),
        };
        let state = status.state;
        drop(status);
        // Any change of state may meet or fail a dependent's condition (`completed_successfully` on an exit).
        if (ready, state) != was {
            self.shared.notify_dependents(&self.name);
        }
        if std::fs::create_dir_all(&self.paths.dir).is_ok() {
            if let Err(error) = persisted.save(&self.paths.state_file) {
                log::warn!("{}: cannot write {}: {}", self.name, self.paths.state_file.display(), error_chain(&error));
            }
        }
    }

    /// Down for good: removes the container's files (reconciliation) or just its cgroup (shutdown).
    fn finish(&self, remove: bool) -> Option<Event> {
        let cgroup_root = self.shared.dirs.cgroup_root.as_deref();
        if remove {
            if let Err(error) = remove_container(&self.shared.dirs.containers_dir, &self.name, cgroup_root) {
                log::warn!("{}", error_chain(&error));
                return Some(Event::RemoveFailed);
            }
            self.announce("destroy", &[]);
        } else if let Some(root) = cgroup_root {
            keel_runtime::ContainerCgroup { path: root.join("keel").join(&self.name) }.remove();
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_config::UserData;

    fn config(text: &str) -> ContainerConfig {
        UserData::parse("test", text).unwrap().containers.remove("web").unwrap()
    }

    /// The fingerprint of this definition and image is fixed forever: if it changes, every host that updates to
    /// that release loses the writable layers of its containers. It is built from the user's table only, so a new
    /// `ContainerConfig` field (with its default) or a changed default leaves it as it is.
    #[test]
    fn golden_fingerprint_of_a_fixed_definition() {
        let text = "[containers.web]\nimage = \"nginx:1.27\"\ncommand = [\"nginx\", \"-g\", \"daemon off;\"]\n\
                    restart = \"unless-stopped\"\nmemory = \"256M\"\nenv = { MODE = \"prod\" }\n";
        let digest = "sha256:0d2c4a0a0d3c0d2b7a8a0ac66f0b6d1b4d1c0a8e2f3c4b5a69788796a5b4c3d2";
        // sha256("definition " + sha256(canonical table) + "\nimage " + digest), computed independently.
        let golden = "422e26c76ebe57f5fbc0101ccd803c0abad9a9128349da4035f42caa96ae0243";
        assert_eq!(fingerprint(&config(text), Some(digest)), golden);
        // The same definition written in another order and spelling: the same files.
        let reordered = "[containers.web]\nenv.MODE = 'prod'\nmemory = \"256M\"\nrestart = \"unless-stopped\"\n\
                         command = ['nginx', '-g', 'daemon off;']\nimage = \"nginx:1.27\"\n";
        assert_eq!(fingerprint(&config(reordered), Some(digest)), golden);
        // A real change, or another image: new files.
        assert_ne!(fingerprint(&config(&text.replace("256M", "512M")), Some(digest)), golden);
        assert_ne!(fingerprint(&config(text), Some(&digest.replace("0d2c", "1d2c"))), golden);
    }
}
