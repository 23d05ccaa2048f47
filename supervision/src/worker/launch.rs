//! One run of a container: creating and starting it, its log readers, exit watcher and health checks, signalling
//! it, and what its exit and probes change in the status.

use std::sync::mpsc::{channel, Sender};
use std::sync::Arc;
use std::thread;
use std::time::{Instant, SystemTime};

use keel_config::values::signal::parse_signal;
use keel_images::ImageReference;
use keel_logs::{error_chain, spawn_reader, LogStream};
use keel_runtime::{kill_container, remove_container, Container, ContainerProcess, ExitStatus};

use super::{fingerprint, lock, Message, Worker};
use crate::health::{Health, HealthSettings, HealthState, ProbeRecord};
use crate::images::image_run_config;
use crate::machine::{Event, State};

/// The current run's process and what goes with it.
pub(super) struct CurrentRun {
    process: ContainerProcess,
    started: Instant,
    container: Arc<Container>,
    oom_kills_at_start: Option<u64>,
    /// Dropped with the run, which ends its OOM watcher.
    _oom_stop: Option<Sender<()>>,
    /// Dropping it ends the health-check thread.
    _health_stop: Option<Sender<()>>,
    health_settings: Option<HealthSettings>,
}

impl Worker {
    pub(super) fn signal(&self, signal: i32) {
        if let Some(current) = &self.current {
            self.announce("kill", &[("signal", signal.to_string())]);
            if let Err(error) = kill_container(&self.name, &current.process, signal) {
                log::warn!("{}", error_chain(&error));
            }
        }
    }

    /// The config's stop signal, else the image's STOPSIGNAL, else SIGTERM.
    pub(super) fn stop_signal(&self) -> i32 {
        if let Some(signal) = self.config.stop_signal {
            return signal.0;
        }
        let image_signal = self.current.as_ref().and_then(|current| current.container.stop_signal.clone());
        image_signal.and_then(|text| parse_signal(&text).ok()).map_or(libc::SIGTERM, |signal| signal.0)
    }

    /// Creates and starts the container; on failure, the exit code and message Docker would show.
    pub(super) fn spawn(&mut self) -> Result<(), (i32, String)> {
        const SETUP_FAILED: i32 = 125;
        let failed = |message: String| (SETUP_FAILED, message);
        let reference: ImageReference =
            self.config.image.parse().map_err(|error| {
                failed(format!("{}: image {}: {}", self.name, self.config.image, error_chain(&error)))
            })?;
        let image = self
            .shared
            .store
            .image(&reference)
            .map_err(|error| failed(format!("{}: {}", self.name, error_chain(&error))))?;
        let image_config = image_run_config(&self.shared.store, &image)
            .map_err(|error| failed(format!("{}: {}", self.name, error_chain(&error))))?;
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
        // Docker's `create`: the container's files are made (a restart reuses them).
        let creating = !self.paths.upper.exists();
        let container =
            Container::create(&self.name, &self.config, &image.layer_dirs, &image_config, &self.shared.dirs)
                .map_err(|error| failed(error_chain(&error)))?;
        if creating {
            self.announce("create", &[]);
        }
        let running = container.start(&self.shared.reaper).map_err(|error| (error.exit_code(), error_chain(&error)))?;
        // The command has been exec'd by now (start waits for it): the container is running.
        self.first_events.started(&self.name);

        self.run += 1;
        let run = self.run;
        let sinks = Arc::clone(&self.shared.sinks);
        for sink in sinks.iter() {
            sink.container_starting(&self.name, &self.config.image);
        }
        for (stream, pipe) in [(LogStream::Stdout, running.stdout), (LogStream::Stderr, running.stderr)] {
            if let Err(error) =
                spawn_reader(self.name.clone(), stream, pipe, Arc::clone(&sinks), Arc::clone(&self.first_events))
            {
                log::warn!("{}: cannot start a log reader: {}", self.name, error_chain(&error));
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
            let _ = kill_container(&self.name, &running.process, libc::SIGKILL);
            return Err(failed(format!("{}: cannot start the exit watcher: {}", self.name, error_chain(&error))));
        }

        let container = Arc::new(container);
        let health_settings =
            HealthSettings::resolve(self.config.healthcheck.as_ref(), image_config.healthcheck.as_ref());
        let health_stop = health_settings.as_ref().map(|settings| {
            let (stop, stopped) = channel();
            let status = Arc::clone(&self.status);
            let is_starting =
                move || lock(&status).health.as_ref().is_none_or(|health| health.status == HealthState::Starting);
            crate::probe::spawn_prober(
                Arc::clone(&container),
                running.process.clone(),
                settings.clone(),
                Arc::clone(&self.shared.reaper),
                self.sender.clone(),
                run,
                stopped,
                is_starting,
            );
            stop
        });
        {
            let mut status = lock(&self.status);
            status.pid = Some(running.process.pid().as_raw());
            status.started_at = Some(running.started_at);
            status.image_digest = Some(image_digest);
            status.error.clear();
            status.oom_killed = false;
            status.hostname = container.hostname.clone();
            status.labels = container.labels.clone();
            status.health = health_settings.as_ref().map(|_| Health::default());
        }
        log::info!("{}: started (pid {})", self.name, running.process);
        self.announce("start", &[]);
        if std::mem::take(&mut self.restart_asked) {
            self.announce("restart", &[]);
        }
        let oom_stop = container.cgroup.as_ref().map(|cgroup| {
            let (stop, stopped) = channel();
            let kills_at_start = running.oom_kills_at_start.unwrap_or(0);
            crate::oom_watch::spawn(&self.name, cgroup, kills_at_start, run, self.sender.clone(), stopped);
            stop
        });
        self.current = Some(CurrentRun {
            process: running.process,
            started: Instant::now(),
            container,
            oom_kills_at_start: running.oom_kills_at_start,
            _oom_stop: oom_stop,
            _health_stop: health_stop,
            health_settings,
        });
        Ok(())
    }

    /// Docker's `oom` event: `OOMKilled` is set at the kill, while the container may still run.
    pub(super) fn oom_killed(&mut self) {
        lock(&self.status).oom_killed = true;
        log::info!("{}: a process was killed for lack of memory (OOM)", self.name);
        self.announce("oom", &[]);
    }

    pub(super) fn exited(&mut self, exit: ExitStatus) {
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
        self.announce("die", &[("exitCode", exit.code().to_string())]);
        // Docker's `stop`: the exit ends a stop that was asked for (a user's, a restart's, a shutdown's).
        if self.machine.state() == State::Stopping {
            self.announce("stop", &[]);
        }
        self.apply(Event::Exited { exit_code: exit.code(), ran_for: current.started.elapsed() });
    }

    /// Records a probe; a change of health can make the container ready for its dependents, or no longer so.
    /// Health does not go through the machine: Docker does not stop or restart an unhealthy container.
    pub(super) fn health(&mut self, probe: ProbeRecord) {
        let Some(current) = &self.current else { return };
        let Some(settings) = &current.health_settings else { return };
        // Docker measures the start period to when the probe started, not to when its result came in.
        let since_probe_start = SystemTime::now().duration_since(probe.start).unwrap_or_default();
        let since_start = current.started.elapsed().saturating_sub(since_probe_start);
        let mut status = lock(&self.status);
        let was_ready = status.is_ready();
        let before = status.health.as_ref().map(|health| health.status);
        let health = status.health.get_or_insert_with(Health::default);
        health.record(probe, since_start, settings);
        let changed = (before != Some(health.status)).then(|| health.status.to_string());
        if let Some(health) = &changed {
            log::info!("{}: health {health}", self.name);
        }
        let ready = status.is_ready();
        drop(status);
        let health_changed = changed.is_some();
        if let Some(health) = changed {
            self.announce(&format!("health_status: {health}"), &[]);
        }
        // A change of health may meet or fail a dependent's `healthy` condition.
        if ready != was_ready || health_changed {
            self.shared.notify_dependents(&self.name);
        }
    }
}
