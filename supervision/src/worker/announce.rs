//! The worker's events for `docker events`, with the attributes Docker gives them: the container's name, image
//! and labels, and per action its `exitCode` or `signal`.

use std::collections::BTreeMap;
use std::time::SystemTime;

use super::{lock, Worker};
use crate::events::{EventType, SupervisorEvent};

impl Worker {
    /// Publishes `action` about this container with `extra` attributes.
    pub(super) fn announce(&self, action: &str, extra: &[(&str, String)]) {
        let mut attributes: BTreeMap<String, String> = lock(&self.status).labels.clone();
        if attributes.is_empty() {
            attributes.extend(self.config.labels.iter().map(|(key, value)| (key.clone(), value.clone())));
        }
        attributes.insert("name".to_owned(), self.name.clone());
        attributes.insert("image".to_owned(), self.config.image.clone());
        for (key, value) in extra {
            attributes.insert((*key).to_owned(), value.clone());
        }
        self.shared.events.publish(SupervisorEvent {
            kind: EventType::Container,
            action: action.to_owned(),
            actor: self.name.clone(),
            attributes,
            time: SystemTime::now(),
        });
    }
}
