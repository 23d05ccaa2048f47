//! The supervisor's events, for `docker events`: what happened to containers (create, start, kill, die, stop,
//! restart, health_status, destroy) and images (pull), kept in a ring of recent events bounded in items and bytes, and
//! handed to subscribers through bounded channels.
//!
//! Publishing never waits: a subscriber whose channel is full (its client reads too slowly) is dropped, and
//! learns so when its channel ends; the supervisor goes on. Subscribing takes the ring and the channel under one
//! lock, so that a subscriber sees every event once, with neither a gap nor a repeat between the two.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use super::lock;

/// Events kept for `docker events --since`.
pub const RECENT_EVENTS: usize = 1024;
/// Bytes (names, actions and attributes) the kept events may take.
pub const RECENT_BYTES: usize = 256 * 1024;
/// Events a subscriber may have waiting before it is dropped.
pub const SUBSCRIBER_QUEUE: usize = 256;
/// Subscribers at once; more are refused.
pub const MAX_SUBSCRIBERS: usize = 256;

/// What an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Container,
    Image,
}

impl EventType {
    /// Docker's name of the type.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Container => "container",
            EventType::Image => "image",
        }
    }
}

/// One event, in Docker's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupervisorEvent {
    pub kind: EventType,
    /// `start`, `die`, `health_status: healthy`, `pull`, …
    pub action: String,
    /// The container's name, or the image's reference.
    pub actor: String,
    /// `name`, `image`, the container's labels, and per action `exitCode` or `signal`.
    pub attributes: BTreeMap<String, String>,
    pub time: SystemTime,
}

impl SupervisorEvent {
    /// What it costs to keep, roughly.
    fn bytes(&self) -> usize {
        let attributes: usize = self.attributes.iter().map(|(key, value)| key.len() + value.len() + 16).sum();
        64 + self.action.len() + self.actor.len() + attributes
    }
}

/// The ring of recent events and the subscribers.
#[derive(Default)]
pub struct EventLog {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    recent: VecDeque<Arc<SupervisorEvent>>,
    bytes: usize,
    subscribers: Vec<Subscriber>,
}

/// A subscriber's end of the channel, whether it is gone, and how to wake it.
struct Subscriber {
    sender: SyncSender<Arc<SupervisorEvent>>,
    gone: Arc<AtomicBool>,
    wake: Waker,
}

/// Told after each event is queued for its subscriber (under the log's lock: it must return at once).
pub type Waker = Box<dyn Fn() + Send + Sync>;

/// A subscriber's events: [`Subscription::receiver`] ends when it fell behind. Dropping it frees its place at once,
/// even if no event comes to find it gone.
pub struct Subscription {
    pub receiver: Receiver<Arc<SupervisorEvent>>,
    gone: Arc<AtomicBool>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.gone.store(true, Ordering::Relaxed);
    }
}

impl EventLog {
    /// Keeps `event` (the oldest go when the ring is over a bound) and hands it to every subscriber that has room.
    pub fn publish(&self, event: SupervisorEvent) {
        let event = Arc::new(event);
        let mut inner = lock(&self.inner);
        inner.bytes += event.bytes();
        inner.recent.push_back(Arc::clone(&event));
        while inner.recent.len() > RECENT_EVENTS || (inner.bytes > RECENT_BYTES && inner.recent.len() > 1) {
            if let Some(old) = inner.recent.pop_front() {
                inner.bytes = inner.bytes.saturating_sub(old.bytes());
            }
        }
        inner.subscribers.retain(|subscriber| match subscriber.sender.try_send(Arc::clone(&event)) {
            Ok(()) => {
                (subscriber.wake)();
                true
            }
            Err(TrySendError::Full(_)) => {
                log::warn!("events: a subscriber fell {SUBSCRIBER_QUEUE} events behind; dropping it");
                false
            }
            Err(TrySendError::Disconnected(_)) => false,
        });
    }

    /// The kept events, oldest first, and a channel of every later one, with `wake` called after each; `None`
    /// when [`MAX_SUBSCRIBERS`] already listen. The channel ends when the subscriber falls behind.
    pub fn subscribe(&self, wake: Waker) -> Option<(Vec<Arc<SupervisorEvent>>, Subscription)> {
        let mut inner = lock(&self.inner);
        inner.subscribers.retain(|subscriber| !subscriber.gone.load(Ordering::Relaxed));
        if inner.subscribers.len() >= MAX_SUBSCRIBERS {
            return None;
        }
        let (sender, receiver) = sync_channel(SUBSCRIBER_QUEUE);
        let gone = Arc::new(AtomicBool::new(false));
        inner.subscribers.push(Subscriber { sender, gone: Arc::clone(&gone), wake });
        Some((inner.recent.iter().cloned().collect(), Subscription { receiver, gone }))
    }

    /// The kept events, oldest first.
    pub fn recent(&self) -> Vec<Arc<SupervisorEvent>> {
        lock(&self.inner).recent.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(action: &str, attribute_bytes: usize) -> SupervisorEvent {
        let attributes = BTreeMap::from([("name".to_owned(), "x".repeat(attribute_bytes))]);
        SupervisorEvent {
            kind: EventType::Container,
            action: action.to_owned(),
            actor: "web".to_owned(),
            attributes,
            time: SystemTime::now(),
        }
    }

    #[test]
    fn the_ring_is_bounded_in_items_and_bytes() {
        let log = EventLog::default();
        for index in 0..RECENT_EVENTS + 10 {
            log.publish(event(&format!("a{index}"), 1));
        }
        let recent = log.recent();
        assert_eq!(recent.len(), RECENT_EVENTS);
        assert_eq!(recent[0].action, "a10");
        for _ in 0..20 {
            log.publish(event("big", 32 * 1024));
        }
        let recent = log.recent();
        assert!(recent.len() <= RECENT_BYTES / (32 * 1024), "{} events kept", recent.len());
        assert!(recent.iter().all(|event| event.action == "big"));
    }

    #[test]
    fn a_subscriber_sees_each_event_once_and_a_slow_one_is_dropped() {
        let log = EventLog::default();
        log.publish(event("before", 1));
        let (backlog, subscription) = log.subscribe(Box::new(|| {})).unwrap();
        let receiver = &subscription.receiver;
        assert_eq!(backlog.len(), 1);
        log.publish(event("after", 1));
        assert_eq!(receiver.try_recv().unwrap().action, "after");
        // Nobody reads: after SUBSCRIBER_QUEUE more the subscriber is dropped and its channel ends.
        for _ in 0..=SUBSCRIBER_QUEUE {
            log.publish(event("flood", 1));
        }
        let received = receiver.try_iter().count();
        assert_eq!(received, SUBSCRIBER_QUEUE);
        assert!(matches!(receiver.try_recv(), Err(std::sync::mpsc::TryRecvError::Disconnected)));
        drop(subscription);
        // Subscribers that go away free their places without an event to find them gone.
        for _ in 0..MAX_SUBSCRIBERS * 2 {
            let (_, subscription) = log.subscribe(Box::new(|| {})).unwrap();
            drop(subscription);
        }
        let held: Vec<Subscription> = (0..MAX_SUBSCRIBERS).map(|_| log.subscribe(Box::new(|| {})).unwrap().1).collect();
        assert!(log.subscribe(Box::new(|| {})).is_none(), "more than {MAX_SUBSCRIBERS} subscribers at once");
        drop(held);
    }
}
