//! Before a start: the image in the store (pulled on a thread of its own, so that the worker keeps answering) and
//! the dependencies ready (told by their workers, not polled).

use std::sync::Arc;
use std::thread;

use keel_images::ImageReference;
use keel_logs::error_chain;

use super::{lock, Message, Worker};
use crate::images::ensure_image;
use crate::machine::Event;

impl Worker {
    /// `ImageReady` at once if the store has the image; otherwise pulls it on a thread that reports `Pulled`.
    pub(super) fn ensure_image(&mut self) -> Option<Event> {
        if let Ok(reference) = self.config.image.parse::<ImageReference>() {
            if self.shared.store.is_complete(&reference) {
                return Some(Event::ImageReady);
            }
        }
        // An invalid reference fails on the thread too, and is reported and retried like any failed pull.
        let shared = Arc::clone(&self.shared);
        let image = self.config.image.clone();
        let sender = self.sender.clone();
        let spawned = thread::Builder::new().name(format!("pull-{}", self.name)).spawn(move || {
            let result = ensure_image(&shared, &image).map_err(|error| error_chain(&error));
            // The worker may be gone (shut down meanwhile): the image is in the store for the next one.
            let _ = sender.send(Message::Pulled { result });
        });
        match spawned {
            Ok(_) => None,
            Err(error) => {
                self.pull_failed(format!("cannot start the pull thread: {}", error_chain(&error)));
                Some(Event::PullFailed)
            }
        }
    }

    /// Reports a failed pull; the machine decides when to try again.
    pub(super) fn pull_failed(&self, error: String) {
        log::warn!("{}: {error}", self.name);
        lock(&self.status).error = error;
    }

    /// `DependenciesReady` at once if every dependency meets its condition; otherwise their workers tell this one
    /// (`DependencyChanged`) whenever one of them changes state or health.
    pub(super) fn await_dependencies(&self) -> Option<Event> {
        let waiting_for = self.unready_dependencies();
        if waiting_for.is_empty() {
            return Some(Event::DependenciesReady);
        }
        let waiting: Vec<String> = waiting_for
            .iter()
            .map(|dependency| format!("{dependency} ({})", self.config.dependency_condition(dependency)))
            .collect();
        log::info!("{}: waiting for {}", self.name, waiting.join(", "));
        self.report_failed_dependencies();
        None
    }

    /// The `depends_on` containers whose condition does not hold yet.
    pub(super) fn unready_dependencies(&self) -> Vec<&str> {
        let dependencies = self.config.depends_on.iter();
        let unmet = |dependency: &&String| {
            !self.shared.dependency_met(dependency, self.config.dependency_condition(dependency))
        };
        dependencies.filter(unmet).map(String::as_str).collect()
    }

    /// A dependency that will not get there without a change (it exited, or is unhealthy) is reported in this
    /// container's status and log, as Compose reports it, rather than waited on silently; the wait goes on, and
    /// the container starts if the dependency recovers.
    pub(super) fn report_failed_dependencies(&self) {
        let failures: Vec<String> = self
            .config
            .depends_on
            .iter()
            .filter_map(|dependency| {
                let condition = self.config.dependency_condition(dependency);
                let why = self.shared.dependency_failure(dependency, condition)?;
                Some(format!("dependency {dependency} {why} (waiting for {condition})"))
            })
            .collect();
        let message = failures.join("; ");
        let mut status = lock(&self.status);
        if status.error != message {
            if !message.is_empty() {
                log::warn!("{}: {message}", self.name);
            }
            status.error = message;
        }
    }
}
