//! The connections the server holds, bounded: at most [`MAX_CONNECTIONS`] at once; when all are taken, a newcomer
//! takes the place of the connection that has been idle longest (no request in flight), and a connection idle for
//! [`IDLE_TIMEOUT`] is closed. So idle clients, however many, cannot keep a fresh one out, and cost no more than
//! the bound.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use tokio::sync::Notify;

use super::Body;

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 256;
/// How long a connection may stay open without a request in flight (before its first request, or between
/// keep-alive requests). hyper's header read timeout, the same length, covers both cases too; this one holds
/// whatever hyper's timer does.
pub const IDLE_TIMEOUT: Duration = super::HEADER_TIMEOUT;
/// How often a connection looks at its idle time.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// One connection's activity.
pub struct Activity {
    /// Milliseconds after `epoch` when the last request began or ended (or the connection was accepted).
    last_active_ms: AtomicU64,
    in_flight: AtomicUsize,
    epoch: Instant,
    /// Told when the connection must close (evicted for a newcomer).
    evicted: Notify,
}

impl Activity {
    fn touch(&self) {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_active_ms.store(now, Ordering::Relaxed);
    }

    /// How long it has been idle; zero while a request is in flight.
    fn idle_for(&self) -> Duration {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return Duration::ZERO;
        }
        let last = Duration::from_millis(self.last_active_ms.load(Ordering::Relaxed));
        self.epoch.elapsed().saturating_sub(last)
    }

    /// A request begins; the guard ends it when dropped (with the reply's body, once it is sent or abandoned).
    pub fn begin(self: &Arc<Self>) -> RequestGuard {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.touch();
        RequestGuard(Arc::clone(self))
    }

    /// Resolves when the connection should close: idle too long, or evicted.
    pub async fn closing(&self) {
        loop {
            tokio::select! {
                _ = self.evicted.notified() => return,
                _ = tokio::time::sleep(IDLE_CHECK) => {
                    if self.idle_for() >= IDLE_TIMEOUT {
                        return;
                    }
                }
            }
        }
    }
}

/// A request in flight on a connection.
pub struct RequestGuard(Arc<Activity>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Every connection held.
#[derive(Default)]
pub struct Connections {
    held: Mutex<HashMap<u64, Arc<Activity>>>,
    next: AtomicU64,
}

/// A connection's place; dropping it frees the place.
pub struct Place {
    id: u64,
    connections: Arc<Connections>,
    pub activity: Arc<Activity>,
}

impl Drop for Place {
    fn drop(&mut self) {
        self.connections.held.lock().unwrap_or_else(PoisonError::into_inner).remove(&self.id);
    }
}

impl Connections {
    /// A place for a new connection, evicting the longest idle one if every place is taken; `None` when every
    /// connection has a request in flight.
    pub fn admit(self: &Arc<Self>) -> Option<Place> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        if held.len() >= MAX_CONNECTIONS {
            let idlest = held
                .iter()
                .map(|(id, activity)| (*id, activity.idle_for()))
                .filter(|(_, idle)| !idle.is_zero())
                .max_by_key(|(_, idle)| *idle)
                .map(|(id, _)| id)?;
            if let Some(evicted) = held.remove(&idlest) {
                evicted.evicted.notify_one();
            }
        }
        let activity = Arc::new(Activity {
            last_active_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            epoch: Instant::now(),
            evicted: Notify::new(),
        });
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        held.insert(id, Arc::clone(&activity));
        Some(Place { id, connections: Arc::clone(self), activity })
    }
}

/// A reply's body that ends its request (the guard) when it is dropped: sent whole, or abandoned by the client.
pub struct GuardedBody {
    inner: Body,
    _guard: RequestGuard,
}

impl GuardedBody {
    pub fn new(inner: Body, guard: RequestGuard) -> GuardedBody {
        GuardedBody { inner, _guard: guard }
    }
}

impl hyper::body::Body for GuardedBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        context: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(context)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_newcomer_takes_the_place_of_the_longest_idle_connection() {
        let connections = Arc::new(Connections::default());
        let mut places: Vec<Place> = (0..MAX_CONNECTIONS).map(|_| connections.admit().unwrap()).collect();
        // Every connection busy: no place.
        let guards: Vec<RequestGuard> = places.iter().map(|place| place.activity.begin()).collect();
        assert!(connections.admit().is_none());
        drop(guards);
        std::thread::sleep(Duration::from_millis(20));
        places[7].activity.touch();
        // Idle ones: the newcomer is admitted and the count stays at the bound.
        let newcomer = connections.admit().unwrap();
        assert_eq!(connections.held.lock().unwrap().len(), MAX_CONNECTIONS);
        assert!(connections.held.lock().unwrap().contains_key(&places[7].id), "the least idle one was evicted");
        places.truncate(1);
        drop(newcomer);
    }
}
