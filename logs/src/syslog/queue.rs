//! Holds records between callers and the relay thread: bounded in records and in bytes, dropping (and counting)
//! the oldest record of the APP-NAME that holds the most when either bound is reached: a container that floods its
//! output pushes out its own lines, not the others'. With one APP-NAME that is simply the oldest record.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::format::Record;

/// What the relay thread gets next.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Next {
    Record(Record),
    /// This many records were dropped since the last report.
    Dropped(u64),
    /// Closing, and nothing is left.
    Closed,
}

#[derive(Debug)]
pub(crate) struct Queue {
    bound: usize,
    max_bytes: usize,
    state: Mutex<State>,
    changed: Condvar,
    /// Wakes callers of `push_waiting` when the relay thread took records out.
    space: Condvar,
}

#[derive(Debug, Default)]
struct State {
    records: VecDeque<Record>,
    /// What the queued records hold, as [`cost`] counts it.
    bytes: usize,
    /// Records and bytes queued per APP-NAME.
    per_app: HashMap<Arc<str>, (usize, usize)>,
    dropped: u64,
    unreported: u64,
    /// Set by `close`: take what is left until this instant, then stop.
    closing: Option<Instant>,
    /// Whether the relay thread sleeps in `next` (only then does a push need to wake it).
    worker_waiting: bool,
    /// Callers of `push_waiting` waiting for room.
    waiting_for_space: usize,
    /// Whether the receiver is taking lines: set by the relay thread after each send.
    draining: bool,
}

impl Queue {
    /// A queue of at most `bound` records (at least one) holding at most `max_bytes` (at least one record).
    pub(crate) fn new(bound: usize, max_bytes: usize) -> Queue {
        Queue {
            bound: bound.max(1),
            max_bytes,
            state: Mutex::default(),
            changed: Condvar::new(),
            space: Condvar::new(),
        }
    }

    /// Like `push`, but while the queue is full and the receiver is taking lines, first waits up to `max_wait`
    /// for room: a container that prints faster than the relay sends is slowed to the receiver's pace instead of
    /// losing lines, as with Docker's blocking log mode. A receiver that is away or stuck takes nothing, and then
    /// nobody waits: the oldest lines are dropped and counted, and the container never stops.
    #[cfg(test)]
    pub(crate) fn push_waiting(&self, record: Record, max_wait: Duration) {
        self.push_all_waiting(std::iter::once(record), max_wait);
    }

    /// [`push_waiting`](Self::push_waiting) for each of `records` in turn (each waits up to `max_wait`), under one
    /// lock and with at most one wake of the relay thread unless a record has to wait.
    pub(crate) fn push_all_waiting(&self, records: impl Iterator<Item = Record>, max_wait: Duration) {
        let mut state = self.lock();
        for record in records {
            let size = cost(&record);
            let mut deadline = None;
            while state.draining
                && state.closing.is_none()
                && !state.records.is_empty()
                && (state.records.len() >= self.bound || state.bytes.saturating_add(size) > self.max_bytes)
            {
                let now = Instant::now();
                let until = *deadline.get_or_insert(now + max_wait);
                if now >= until {
                    break;
                }
                // The relay thread may sleep on what was pushed so far: it has to run to make room.
                self.wake_worker(&state);
                state.waiting_for_space += 1;
                state =
                    self.space.wait_timeout(state, until - now).map(|(state, _)| state).unwrap_or_else(|poisoned| {
                        let (state, _) = poisoned.into_inner();
                        state
                    });
                state.waiting_for_space -= 1;
            }
            self.add(&mut state, record);
        }
        self.wake_worker(&state);
    }

    /// Adds a record; when full (in records or bytes), drops the oldest of the APP-NAME holding the most until it
    /// fits. After `close` the record itself is dropped. Never blocks beyond the short lock the relay thread also
    /// takes, and never holds more than `bound` records or `max_bytes` (but always the newest record).
    pub(crate) fn push(&self, record: Record) {
        let mut state = self.lock();
        self.add(&mut state, record);
        self.wake_worker(&state);
    }

    fn add(&self, state: &mut State, record: Record) {
        if state.closing.is_some() {
            state.dropped += 1;
            return;
        }
        let size = cost(&record);
        while !state.records.is_empty()
            && (state.records.len() >= self.bound || state.bytes.saturating_add(size) > self.max_bytes)
        {
            // The bound that is reached decides what "holds the most" counts.
            let by_bytes = state.records.len() < self.bound;
            let largest =
                state.per_app.iter().max_by_key(|(_, &(records, bytes))| if by_bytes { bytes } else { records });
            let victim = largest
                .and_then(|(app, _)| state.records.iter().position(|queued| &queued.app_name == app))
                .unwrap_or(0);
            if let Some(old) = state.records.remove(victim) {
                state.forget(&old);
            }
            state.dropped += 1;
            state.unreported += 1;
        }
        state.remember(&record);
        state.records.push_back(record);
    }

    /// Wakes the relay thread if it sleeps for records and there are some.
    fn wake_worker(&self, state: &State) {
        if state.worker_waiting && !state.records.is_empty() {
            self.changed.notify_one();
        }
    }

    /// Waits for the next thing to send. A drop report comes first, but only when `report_drops` (the relay is
    /// connected), so that it goes out as soon as the receiver is back.
    pub(crate) fn next(&self, report_drops: bool) -> Next {
        let mut state = self.lock();
        loop {
            if report_drops && state.unreported > 0 {
                return Next::Dropped(std::mem::take(&mut state.unreported));
            }
            if let Some(record) = state.records.pop_front() {
                state.forget(&record);
                self.made_room(&state);
                return Next::Record(record);
            }
            if state.closing.is_some() {
                return Next::Closed;
            }
            state.worker_waiting = true;
            state = self.changed.wait(state).unwrap_or_else(PoisonError::into_inner);
            state.worker_waiting = false;
        }
    }

    /// Moves up to `max` more records into `batch` without waiting, so that the relay thread sends many lines
    /// with one write.
    pub(crate) fn take_more(&self, batch: &mut Vec<Record>, max: usize) {
        let mut state = self.lock();
        while batch.len() < max {
            let Some(record) = state.records.pop_front() else { break };
            state.forget(&record);
            batch.push(record);
        }
        self.made_room(&state);
    }

    /// Returns a batch that could not be sent to the queue's front, oldest first, where the next `next` takes it
    /// again. When the queue filled meanwhile, these (its oldest records) are the first dropped and counted.
    pub(crate) fn put_back(&self, batch: &mut Vec<Record>) {
        let mut state = self.lock();
        for record in batch.drain(..).rev() {
            state.remember(&record);
            state.records.push_front(record);
        }
        while state.records.len() > self.bound || (state.records.len() > 1 && state.bytes > self.max_bytes) {
            let Some(old) = state.records.pop_front() else { break };
            state.forget(&old);
            state.dropped += 1;
            state.unreported += 1;
        }
    }

    /// Records whether the receiver is taking lines (the relay thread's last send succeeded), which decides
    /// whether `push_waiting` waits.
    pub(crate) fn set_draining(&self, draining: bool) {
        let mut state = self.lock();
        if state.draining != draining {
            state.draining = draining;
            if !draining && state.waiting_for_space > 0 {
                self.space.notify_all();
            }
        }
    }

    fn made_room(&self, state: &State) {
        if state.waiting_for_space > 0 {
            self.space.notify_all();
        }
    }

    /// Sleeps until `until` (a retry), or until the closing deadline if that comes first. Returns whether the
    /// closing deadline has passed.
    pub(crate) fn sleep_until(&self, until: Instant) -> bool {
        let mut state = self.lock();
        loop {
            let now = Instant::now();
            if state.closing.is_some_and(|deadline| now >= deadline) {
                return true;
            }
            let wake = state.closing.map_or(until, |deadline| deadline.min(until));
            if now >= wake {
                return false;
            }
            state = self.changed.wait_timeout(state, wake - now).map(|(state, _)| state).unwrap_or_else(|poisoned| {
                let (state, _) = poisoned.into_inner();
                state
            });
        }
    }

    /// Stops taking records; the relay thread sends what is left until `deadline`.
    pub(crate) fn close(&self, deadline: Instant) {
        let mut state = self.lock();
        state.closing = Some(state.closing.map_or(deadline, |earlier| earlier.min(deadline)));
        drop(state);
        self.changed.notify_all();
        self.space.notify_all();
    }

    /// Whether the closing deadline has passed.
    pub(crate) fn expired(&self) -> bool {
        self.lock().closing.is_some_and(|deadline| Instant::now() >= deadline)
    }

    /// Empties the queue when the relay thread gives up, counting what was left (plus `extra`) as dropped.
    pub(crate) fn abandon(&self, extra: u64) {
        let mut state = self.lock();
        let left = u64::try_from(state.records.len()).unwrap_or(u64::MAX);
        state.records.clear();
        state.bytes = 0;
        state.per_app.clear();
        state.dropped = state.dropped.saturating_add(left).saturating_add(extra);
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().records.len()
    }

    /// Records dropped so far, in total.
    pub(crate) fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing in here can be left half-updated by a panic, so a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    /// Counts a record that enters the queue.
    fn remember(&mut self, record: &Record) {
        let size = cost(record);
        self.bytes += size;
        match self.per_app.get_mut(&record.app_name) {
            Some(entry) => {
                entry.0 += 1;
                entry.1 += size;
            }
            None => {
                self.per_app.insert(record.app_name.clone(), (1, size));
            }
        }
    }

    /// Takes a record that left the queue out of the counts.
    fn forget(&mut self, record: &Record) {
        let size = cost(record);
        self.bytes -= size;
        if let Some(entry) = self.per_app.get_mut(&record.app_name) {
            entry.0 -= 1;
            entry.1 -= size;
            if entry.0 == 0 {
                self.per_app.remove(&record.app_name);
            }
        }
    }
}

/// What a queued record holds: its text and its own size.
fn cost(record: &Record) -> usize {
    std::mem::size_of::<Record>() + record.app_name.len() + record.message.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syslog::Severity;
    use std::time::Duration;

    fn record(message: &str) -> Record {
        Record::now("app", Severity::Notice, message)
    }

    fn message(next: Next) -> String {
        match next {
            Next::Record(record) => record.message,
            other => panic!("expected a record, got {other:?}"),
        }
    }

    #[test]
    fn a_full_queue_makes_a_container_wait_while_the_receiver_drains_and_drop_when_it_does_not() {
        let queue = std::sync::Arc::new(Queue::new(2, usize::MAX));
        queue.push(record("a"));
        queue.push(record("b"));
        // Not draining (no send succeeded yet): no wait, the oldest goes.
        let started = Instant::now();
        queue.push_waiting(record("c"), Duration::from_secs(10));
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(queue.dropped(), 1);
        // Draining: the push waits until the relay thread takes a record, and nothing is dropped.
        queue.set_draining(true);
        let taker = {
            let queue = queue.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(200));
                message(queue.next(false))
            })
        };
        queue.push_waiting(record("d"), Duration::from_secs(30));
        assert_eq!(taker.join().unwrap(), "b");
        assert_eq!((queue.len(), queue.dropped()), (2, 1));
        // Draining but nobody takes: the wait ends at its bound and the oldest goes.
        let started = Instant::now();
        queue.push_waiting(record("e"), Duration::from_millis(100));
        assert!(started.elapsed() >= Duration::from_millis(100));
        assert_eq!(queue.dropped(), 2);
        // A receiver that goes away releases a waiting container at once.
        let waiter = {
            let queue = queue.clone();
            std::thread::spawn(move || queue.push_waiting(record("f"), Duration::from_secs(60)))
        };
        std::thread::sleep(Duration::from_millis(100));
        let released = Instant::now();
        queue.set_draining(false);
        waiter.join().unwrap();
        assert!(released.elapsed() < Duration::from_secs(10));
        assert_eq!(queue.dropped(), 3);
    }

    #[test]
    fn lines_read_together_wait_for_room_one_by_one_and_none_is_lost_while_the_receiver_drains() {
        // A queue of 2 and a read of 50 lines: the relay thread, asleep on an empty queue, has to be woken by the
        // first records before the later ones can find room.
        let queue = std::sync::Arc::new(Queue::new(2, usize::MAX));
        queue.set_draining(true);
        let taker = {
            let queue = queue.clone();
            std::thread::spawn(move || (0..50).map(|_| message(queue.next(false))).collect::<Vec<_>>())
        };
        std::thread::sleep(Duration::from_millis(100));
        queue.push_all_waiting((0..50).map(|n| record(&n.to_string())), Duration::from_secs(30));
        let taken = taker.join().unwrap();
        assert_eq!(taken, (0..50).map(|n| n.to_string()).collect::<Vec<_>>());
        assert_eq!(queue.dropped(), 0);
    }

    #[test]
    fn a_batch_put_back_is_taken_again_first_and_keeps_the_bound() {
        let queue = Queue::new(3, usize::MAX);
        for text in ["a", "b", "c"] {
            queue.push(record(text));
        }
        let mut batch = Vec::new();
        queue.take_more(&mut batch, 2);
        queue.push(record("d"));
        queue.push(record("e"));
        queue.put_back(&mut batch);
        // a and b come back in front of c, d, e; the bound of 3 drops the oldest two.
        assert_eq!((queue.len(), queue.dropped()), (3, 2));
        assert_eq!(queue.next(true), Next::Dropped(2));
        let rest: Vec<String> = (0..3).map(|_| message(queue.next(true))).collect();
        assert_eq!(rest, ["c", "d", "e"]);
    }

    #[test]
    fn drops_the_oldest_when_full_and_reports_the_count_once() {
        let queue = Queue::new(2, usize::MAX);
        for text in ["a", "b", "c", "d"] {
            queue.push(record(text));
        }
        assert_eq!((queue.len(), queue.dropped()), (2, 2));
        assert_eq!(message(queue.next(false)), "c");
        assert_eq!(queue.next(true), Next::Dropped(2));
        assert_eq!(message(queue.next(true)), "d");
        queue.close(Instant::now());
        assert_eq!(queue.next(true), Next::Closed);
        assert_eq!(queue.dropped(), 2);
    }

    #[test]
    fn drops_the_oldest_to_stay_within_its_bytes() {
        let one = cost(&record(&"x".repeat(1000)));
        let queue = Queue::new(1_000_000, 3 * one);
        for _ in 0..10 {
            queue.push(record(&"x".repeat(1000)));
        }
        assert_eq!((queue.len(), queue.dropped()), (3, 7));
        assert_eq!(queue.lock().bytes, 3 * one);
        // A record bigger than the whole bound still goes out (the relay cuts messages long before that).
        queue.push(record(&"y".repeat(4 * one)));
        assert_eq!((queue.len(), queue.dropped()), (1, 10));
        assert!(message(queue.next(false)).starts_with('y'));
        assert_eq!(queue.lock().bytes, 0);
    }

    #[test]
    fn a_flooding_app_pushes_out_its_own_records_not_the_others() {
        let queue = Queue::new(10, usize::MAX);
        queue.push(Record::now("tick", Severity::Notice, "tick 1"));
        for n in 0..100 {
            queue.push(Record::now("flood", Severity::Notice, format!("flood {n}")));
        }
        queue.push(Record::now("tick", Severity::Notice, "tick 2"));
        for n in 100..200 {
            queue.push(Record::now("flood", Severity::Notice, format!("flood {n}")));
        }
        let mut kept = Vec::new();
        queue.close(Instant::now() + Duration::from_secs(60));
        while let Next::Record(record) = queue.next(false) {
            kept.push(record.message);
        }
        assert_eq!(kept.len(), 10);
        assert_eq!(&kept[..2], ["tick 1", "tick 2"]);
        assert_eq!(kept[9], "flood 199");
        assert_eq!(queue.dropped(), 192);
    }

    #[test]
    fn drops_records_pushed_after_close() {
        let queue = Queue::new(5, usize::MAX);
        queue.push(record("kept"));
        queue.close(Instant::now() + Duration::from_secs(60));
        queue.push(record("late"));
        assert_eq!(message(queue.next(true)), "kept");
        assert_eq!(queue.next(true), Next::Closed);
        assert_eq!(queue.dropped(), 1);
    }

    #[test]
    fn close_cuts_a_retry_sleep_short() {
        let queue = std::sync::Arc::new(Queue::new(1, usize::MAX));
        let closer = {
            let queue = queue.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                queue.close(Instant::now());
            })
        };
        let started = Instant::now();
        assert!(queue.sleep_until(Instant::now() + Duration::from_secs(30)));
        assert!(started.elapsed() < Duration::from_secs(10));
        closer.join().unwrap();
        assert!(!Queue::new(1, usize::MAX).sleep_until(Instant::now() + Duration::from_millis(10)));
    }

    #[test]
    fn abandon_counts_what_was_left() {
        let queue = Queue::new(5, usize::MAX);
        queue.push(record("a"));
        queue.push(record("b"));
        queue.abandon(1);
        assert_eq!((queue.len(), queue.dropped()), (0, 3));
    }
}
