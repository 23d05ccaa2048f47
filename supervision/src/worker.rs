//! One thread per container: feeds events to its [`Machine`] and carries out the actions (create, start, signal,
//! timers, health probes), publishing a [`ContainerStatus`] and persisting the state file after each step.

use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use keel_config::containers::restart::RestartPolicy;
use keel_config::values::signal::parse_signal;
use keel_config::ContainerConfig;
use keel_images::ImageReference;
use keel_logs::{error_chain, spawn_reader, LogBuffer, LogStream};
use keel_runtime::{kill_container, remove_container, Container, ContainerPaths, ExitStatus};
use nix::unistd::Pid;
use sha2::{Digest as _, Sha256};

use super::health::{Health, HealthSettings, ProbeRecord};
use super::images::{ensure_image, image_run_config};
use super::machine::{Action, Event, Machine, State};
use super::state_file::{from_millis, to_millis, PersistedState};
use super::status::ContainerStatus;
use super::Shared;
use keel_logs::timeline::FirstEvents;

/// How often a container waiting for its dependencies (or its image) looks again.
const DEPENDENCY_POLL: Duration = Duration::from_millis(50);

/// What a worker is told, or told about.
pub(crate) enum Message {
    Start {
        manual: bool,
    },
    Stop {
        by_user: bool,
        done: Sender<()>,
    },
    Restart {
        done: Sender<()>,
    },
    /// Stop for good (supervisor shutdown, or reconciliation with `remove`: delete the container's files too).
    Shutdown {
        remove: bool,
        done: Sender<()>,
    },
    Exited {
        run: u64,
        status: ExitStatus,
    },
    Health {
        run: u64,
        probe: ProbeRecord,
    },
}

/// The current run's process and what goes with it.
struct CurrentRun {
    pid: Pid,
    started: Instant,
    container: Arc<Container>,
    oom_kills_at_start: Option<u64>,
    /// Dropping it ends the health-check thread.
    _health_stop: Option<Sender<()>>,
    health_settings: Option<HealthSettings>,
}

pub(crate) struct Worker {
    name: String,
    config: ContainerConfig,
    shared: Arc<Shared>,
    receiver: Receiver<Message>,
    sender: Sender<Message>,
    machine: Machine,
    status: Arc<Mutex<ContainerStatus>>,
    logs: Arc<LogBuffer>,
    first_events: Arc<FirstEvents>,
    paths: ContainerPaths,
    fingerprint: String,
    /// Counts runs, so that late messages from an earlier run are recognised and dropped.
    run: u64,
    current: Option<CurrentRun>,
    timer: Option<(Instant, Event)>,
    stop_waiters: Vec<Sender<()>>,
    restart_waiter: Option<Sender<()>>,
    shutdown: Option<(bool, Sender<()>)>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Identifies what the container's files were made for: a changed config or image means a new writable layer.
fn fingerprint(config: &ContainerConfig, image_digest: Option<&str>) -> String {
    let mut hasher = Sha256::new();
    hasher.update(format!("{config:?}").as_bytes());
    hasher.update(image_digest.unwrap_or_default().as_bytes());
    hasher.finalize().iter().map(|byte| format!("{byte:02x}")).collect()
}

impl Worker {
    pub(crate) fn new(
        name: &str,
        config: ContainerConfig,
        shared: Arc<Shared>,
        status: Arc<Mutex<ContainerStatus>>,
        logs: Arc<LogBuffer>,
    ) -> (Worker, Sender<Message>) {
        let (sender, receiver) = channel();
        let paths = ContainerPaths::new(&shared.dirs.containers_dir, name);
        let persisted = PersistedState::load(&paths.state_file);
        let mut machine = Machine::new(config.restart, persisted.stopped_by_user);
        machine.restart_count = persisted.restart_count;
        machine.exit_code = persisted.exit_code;
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
            logs,
            first_events: Arc::default(),
            paths,
            fingerprint: persisted.fingerprint,
            run: 0,
            current: None,
            timer: None,
            stop_waiters: Vec::new(),
            restart_waiter: None,
            shutdown: None,
        };
        (worker, sender)
    }

    /// The thread's body: the boot start (unless the user stopped an `unless-stopped` container), then events
    /// until shutdown.
    pub(crate) fn run(mut self) {
        let stopped_for_good = self.config.restart == RestartPolicy::UnlessStopped && self.machine.stopped_by_user;
        if stopped_for_good {
            log::info!("{}: stopped by the user before; not starting it (unless-stopped)", self.name);
        } else if self.wait_until_startable() {
            self.apply(Event::Start { manual: false });
        }
        while !self.finished() {
            let message = match self.timer {
                Some((deadline, event)) => {
                    match self.receiver.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                        Ok(message) => message,
                        Err(RecvTimeoutError::Timeout) => {
                            self.timer = None;
                            self.apply(event);
                            continue;
                        }
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
                None => match self.receiver.recv() {
                    Ok(message) => message,
                    Err(_) => break,
                },
            };
            self.handle(message);
        }
        self.finish();
    }

    /// Waits for the image and for every dependency to be running (and healthy, if it has a health check).
    /// Returns false if told to stop or shut down meanwhile.
    fn wait_until_startable(&mut self) -> bool {
        let mut image_ready = false;
        let mut next_pull = Instant::now();
        let mut pull_delay = None;
        let mut reported_wait = false;
        loop {
            if !image_ready && Instant::now() >= next_pull {
                match ensure_image(&self.shared, &self.config.image) {
                    Ok(()) => image_ready = true,
                    Err(error) => {
                        let delay = super::backoff::next_delay(pull_delay, Duration::ZERO);
                        log::warn!("{}: {error}; retrying in {delay:?}", self.name);
                        lock(&self.status).error = error.to_string();
                        pull_delay = Some(delay);
                        next_pull = Instant::now() + delay;
                    }
                }
            }
            let waiting_for: Vec<String> =
                self.config.depends_on.iter().filter(|dependency| !self.shared.is_ready(dependency)).cloned().collect();
            if image_ready && waiting_for.is_empty() {
                return true;
            }
            if image_ready && !reported_wait {
                log::info!("{}: waiting for {}", self.name, waiting_for.join(", "));
                reported_wait = true;
            }
            match self.receiver.recv_timeout(DEPENDENCY_POLL) {
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return false,
                Ok(Message::Shutdown { remove, done }) => {
                    self.shutdown = Some((remove, done));
                    return false;
                }
                Ok(Message::Stop { by_user, done }) => {
                    self.machine.stopped_by_user |= by_user;
                    self.publish();
                    let _ = done.send(());
                    return false;
                }
                // A start asked for while waiting is the start already pending.
                Ok(Message::Start { .. } | Message::Exited { .. } | Message::Health { .. }) => {}
                Ok(Message::Restart { done }) => {
                    let _ = done.send(());
                }
            }
        }
    }

    fn finished(&self) -> bool {
        self.shutdown.is_some() && !matches!(self.machine.state, State::Running | State::Stopping | State::Starting)
    }

    fn handle(&mut self, message: Message) {
        match message {
            Message::Start { manual } => self.apply(Event::Start { manual }),
            Message::Stop { by_user, done } => {
                self.stop_waiters.push(done);
                self.apply(Event::Stop { by_user });
            }
            Message::Restart { done } => {
                if matches!(self.machine.state, State::Running | State::Stopping) {
                    self.restart_waiter = Some(done);
                    self.apply(Event::Stop { by_user: false });
                } else {
                    self.apply(Event::Start { manual: true });
                    let _ = done.send(());
                }
            }
            Message::Shutdown { remove, done } => {
                self.shutdown = Some((remove, done));
                self.apply(Event::Stop { by_user: false });
            }
            Message::Exited { run, status } if run == self.run => self.exited(status),
            Message::Health { run, probe } if run == self.run => self.health(probe),
            Message::Exited { .. } | Message::Health { .. } => {}
        }
        self.notify_waiters();
    }

    fn notify_waiters(&mut self) {
        if matches!(self.machine.state, State::Running | State::Stopping | State::Starting) {
            return;
        }
        for waiter in self.stop_waiters.drain(..) {
            let _ = waiter.send(());
        }
        if let Some(waiter) = self.restart_waiter.take() {
            if self.shutdown.is_none() {
                self.apply(Event::Start { manual: true });
            }
            let _ = waiter.send(());
        }
    }

    fn apply(&mut self, event: Event) {
        let before = self.machine.state;
        let actions = self.machine.handle(event);
        if self.machine.state != before {
            log::debug!("{}: {before} --{event:?}--> {}", self.name, self.machine.state);
        }
        self.publish();
        for action in actions {
            self.perform(action);
        }
    }

    fn perform(&mut self, action: Action) {
        match action {
            Action::Spawn => match self.spawn() {
                Ok(()) => self.apply(Event::Started),
                Err((exit_code, message)) => {
                    log::warn!("{message}");
                    lock(&self.status).error = message;
                    self.apply(Event::StartFailed { exit_code });
                }
            },
            Action::SendStopSignal => {
                let signal = self.stop_signal();
                self.signal(signal);
                let timeout = Duration::from_secs(u64::from(self.config.stop_timeout));
                self.timer = Some((Instant::now() + timeout, Event::StopTimeoutElapsed));
            }
            Action::SendKill => self.signal(libc::SIGKILL),
            Action::ScheduleRestart(delay) => {
                log::info!("{}: restarting in {delay:?} (restart {})", self.name, self.machine.restart_count);
                self.timer = Some((Instant::now() + delay, Event::BackoffElapsed));
            }
            Action::CancelTimer => self.timer = None,
        }
    }

    fn signal(&self, signal: i32) {
        if let Some(current) = &self.current {
            if let Err(error) = kill_container(&self.name, current.pid, signal) {
                log::warn!("{error}");
            }
        }
    }

    /// The config's stop signal, else the image's STOPSIGNAL, else SIGTERM.
    fn stop_signal(&self) -> i32 {
        if let Some(signal) = self.config.stop_signal {
            return signal.0;
        }
        let image_signal = self.current.as_ref().and_then(|current| current.container.stop_signal.clone());
        image_signal.and_then(|text| parse_signal(&text).ok()).map_or(libc::SIGTERM, |signal| signal.0)
    }

    /// Creates and starts the container; on failure, the exit code and message Docker would show.
    fn spawn(&mut self) -> Result<(), (i32, String)> {
        const SETUP_FAILED: i32 = 125;
        let failed = |message: String| (SETUP_FAILED, message);
        let reference: ImageReference = self
            .config
            .image
            .parse()
            .map_err(|error| failed(format!("{}: image {}: {error}", self.name, self.config.image)))?;
        let image = self.shared.store.image(&reference).map_err(|error| failed(format!("{}: {error}", self.name)))?;
        let image_config =
            image_run_config(&self.shared.store, &image).map_err(|error| failed(format!("{}: {error}", self.name)))?;
        let image_digest = image.manifest_digest.to_string();
        let fingerprint = fingerprint(&self.config, Some(&image_digest));
        if fingerprint != self.fingerprint {
            // Made for another config or image (changed while the supervisor was down): start from a fresh layer.
            if self.paths.upper.exists() {
                log::info!("{}: config or image changed; recreating its writable layer", self.name);
                let _ = remove_container(&self.shared.dirs.containers_dir, &self.name, None);
            }
            self.fingerprint = fingerprint;
        }
        let container =
            Container::create(&self.name, &self.config, &image.layer_dirs, &image_config, &self.shared.dirs)
                .map_err(|error| failed(error_chain(&error)))?;
        let running = container.start(&self.shared.reaper).map_err(|error| (error.exit_code(), error_chain(&error)))?;
        // The command has been exec'd by now (start waits for it): the container is running.
        self.first_events.started(&self.name);

        self.run += 1;
        let run = self.run;
        let sinks = Arc::clone(&self.shared.sinks);
        for (stream, pipe) in [(LogStream::Stdout, running.stdout), (LogStream::Stderr, running.stderr)] {
            if let Err(error) = spawn_reader(
                self.name.clone(),
                stream,
                pipe,
                Arc::clone(&self.logs),
                Arc::clone(&sinks),
                Arc::clone(&self.first_events),
            ) {
                log::warn!("{}: cannot start a log reader: {error}", self.name);
            }
        }
        let exits = running.exit;
        let sender = self.sender.clone();
        let forwarded = thread::Builder::new().name(format!("exit-{}", self.name)).spawn(move || {
            if let Ok(status) = exits.recv() {
                let _ = sender.send(Message::Exited { run, status });
            }
        });
        if let Err(error) = forwarded {
            // Without the forwarder the exit would never be seen: stop the container rather than lose track.
            let _ = kill_container(&self.name, running.pid, libc::SIGKILL);
            return Err(failed(format!("{}: cannot start the exit watcher: {error}", self.name)));
        }

        let container = Arc::new(container);
        let health_settings =
            HealthSettings::resolve(self.config.healthcheck.as_ref(), image_config.healthcheck.as_ref());
        let health_stop = health_settings.as_ref().map(|settings| {
            let (stop, stopped) = channel();
            super::probe::spawn_prober(
                Arc::clone(&container),
                running.pid,
                settings.clone(),
                Arc::clone(&self.shared.reaper),
                self.sender.clone(),
                run,
                stopped,
            );
            stop
        });
        {
            let mut status = lock(&self.status);
            status.pid = Some(running.pid.as_raw());
            status.started_at = Some(running.started_at);
            status.image_digest = Some(image_digest);
            status.error.clear();
            status.oom_killed = false;
            status.hostname = container.hostname.clone();
            status.labels = container.labels.clone();
            status.health = health_settings.as_ref().map(|_| Health::default());
        }
        log::info!("{}: started (pid {})", self.name, running.pid);
        self.current = Some(CurrentRun {
            pid: running.pid,
            started: Instant::now(),
            container,
            oom_kills_at_start: running.oom_kills_at_start,
            _health_stop: health_stop,
            health_settings,
        });
        Ok(())
    }

    fn exited(&mut self, exit: ExitStatus) {
        let Some(current) = self.current.take() else { return };
        let oom_killed =
            match (current.container.cgroup.as_ref().and_then(|cgroup| cgroup.oom_kills()), current.oom_kills_at_start)
            {
                (Some(now), before) => now > before.unwrap_or(0),
                (None, _) => false,
            };
        {
            let mut status = lock(&self.status);
            status.pid = None;
            status.finished_at = Some(SystemTime::now());
            status.oom_killed = oom_killed;
        }
        log::info!("{}: exited with {}{}", self.name, exit.code(), if oom_killed { " (OOM killed)" } else { "" });
        self.apply(Event::Exited { exit_code: exit.code(), ran_for: current.started.elapsed() });
    }

    fn health(&mut self, probe: ProbeRecord) {
        let Some(current) = &self.current else { return };
        let Some(settings) = &current.health_settings else { return };
        let since_start = current.started.elapsed();
        let mut status = lock(&self.status);
        let before = status.health.as_ref().map(|health| health.status);
        let health = status.health.get_or_insert_with(Health::default);
        health.record(probe, since_start, settings);
        if before != Some(health.status) {
            log::info!("{}: health {}", self.name, health.status);
        }
    }

    /// Copies the machine into the shared status and writes the state file.
    fn publish(&self) {
        let mut status = lock(&self.status);
        status.state = self.machine.state;
        status.status = self.machine.state.docker_status(self.machine.restart_count > 0);
        status.restart_count = self.machine.restart_count;
        status.stopped_by_user = self.machine.stopped_by_user;
        status.exit_code = self.machine.exit_code;
        let persisted = PersistedState {
            stopped_by_user: self.machine.stopped_by_user,
            restart_count: self.machine.restart_count,
            fingerprint: self.fingerprint.clone(),
            status: status.status.to_owned(),
            exit_code: self.machine.exit_code,
            oom_killed: status.oom_killed,
            started_at_ms: status.started_at.map(to_millis),
            finished_at_ms: status.finished_at.map(to_millis),
            labels: status.labels.clone(),
        };
        drop(status);
        if std::fs::create_dir_all(&self.paths.dir).is_ok() {
            if let Err(error) = persisted.save(&self.paths.state_file) {
                log::warn!("{}: cannot write {}: {error}", self.name, self.paths.state_file.display());
            }
        }
    }

    /// After the last stop: removes the container's files (reconciliation) or just its cgroup (shutdown).
    fn finish(mut self) {
        let Some((remove, done)) = self.shutdown.take() else { return };
        let cgroup_root = self.shared.dirs.cgroup_root.as_deref();
        if remove {
            if let Err(error) = remove_container(&self.shared.dirs.containers_dir, &self.name, cgroup_root) {
                log::warn!("{}", error_chain(&error));
                self.apply(Event::RemoveFailed);
            }
        } else if let Some(root) = cgroup_root {
            keel_runtime::ContainerCgroup { path: root.join("keel").join(&self.name) }.remove();
        }
        for waiter in self.stop_waiters.drain(..) {
            let _ = waiter.send(());
        }
        let _ = done.send(());
    }
}
