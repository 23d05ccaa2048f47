//! The containers as readers see them: a snapshot that writers replace whole, so that a read never waits on a
//! stop, a pull or a start.
//!
//! Readers (`status`, `container`, `logs`, a worker asking whether its dependencies are ready) clone the current
//! `Arc` under a lock held for that clone only. Writers (`apply`, `shutdown`, serialised by the handle's own lock)
//! build the next snapshot and swap it in; they never hold this lock while they wait for a worker.

use std::collections::BTreeMap;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

use super::lock;
use super::reconcile::Definition;
use super::status::ContainerStatus;
use super::worker::Message;

/// One container's worker as readers reach it.
pub(crate) struct Entry {
    pub sender: Sender<Message>,
    /// Written by the worker only, each time for a moment (it never holds it across a wait).
    pub status: Arc<Mutex<ContainerStatus>>,
    pub definition: Definition,
}

/// Every container's worker, and the start order of the current config.
#[derive(Clone, Default)]
pub(crate) struct Registry {
    pub order: Vec<String>,
    pub by_name: BTreeMap<String, Arc<Entry>>,
}

impl Registry {
    /// Names in start order, then any not in it (a config's order lists every container; this is defensive).
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> =
            self.order.iter().filter(|name| self.by_name.contains_key(*name)).cloned().collect();
        names.extend(self.by_name.keys().filter(|name| !self.order.contains(name)).cloned());
        names
    }
}

/// The current snapshot.
#[derive(Default)]
pub(crate) struct Containers {
    current: Mutex<Arc<Registry>>,
}

impl Containers {
    pub fn snapshot(&self) -> Arc<Registry> {
        Arc::clone(&lock(&self.current))
    }

    /// Replaces the snapshot with `change` applied to a copy of it. Readers holding the old one keep it.
    pub fn update(&self, change: impl FnOnce(&mut Registry)) {
        let mut current = lock(&self.current);
        let mut next = Registry::clone(&current);
        change(&mut next);
        *current = Arc::new(next);
    }

    pub fn get(&self, name: &str) -> Option<Arc<Entry>> {
        self.snapshot().by_name.get(name).cloned()
    }
}
