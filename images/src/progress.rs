//! Pull progress events (bytes and layers) and the sinks that receive them: a channel for the API, a closure for
//! `keelctl pull`, or nothing.

use std::sync::mpsc::{Sender, SyncSender};

use super::digest::Digest;

/// One step of a pull, in the order they happen. Byte counts are of the compressed blob as it arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullEvent {
    /// The manifest was fetched and resolved to one platform.
    Resolved { reference: String, manifest: Digest, layers: usize, total_bytes: u64 },
    /// A layer starts downloading (or unpacking from a blob already in the store).
    LayerStarted { layer: Digest, index: usize, size: u64 },
    /// More bytes of a layer arrived; sent at most every [`PROGRESS_STEP_BYTES`].
    LayerProgress { layer: Digest, downloaded: u64, size: u64 },
    /// A layer is verified and unpacked; `reused` if nothing had to be fetched.
    LayerDone { layer: Digest, index: usize, reused: bool },
    /// The image is complete and tagged in the store.
    Done { reference: String, manifest: Digest },
}

/// Granularity of [`PullEvent::LayerProgress`]: often enough for a progress bar, rare enough to be free.
pub const PROGRESS_STEP_BYTES: u64 = 1 << 20;

/// Where pull progress goes. Implementations must not block for long: they run on the pulling thread.
pub trait ProgressSink: Send + Sync {
    fn report(&self, event: PullEvent);
}

/// Discards every event.
pub struct NoProgress;

impl ProgressSink for NoProgress {
    fn report(&self, _event: PullEvent) {}
}

/// A receiver that went away only means nobody watches any more; the pull goes on.
impl ProgressSink for Sender<PullEvent> {
    fn report(&self, event: PullEvent) {
        let _ = self.send(event);
    }
}

/// Bounded channel: drops an event instead of stalling the download when the watcher lags behind.
impl ProgressSink for SyncSender<PullEvent> {
    fn report(&self, event: PullEvent) {
        let _ = self.try_send(event);
    }
}

/// Wraps a closure, e.g. one that draws a progress bar.
pub struct ProgressFn<F>(pub F);

impl<F: Fn(PullEvent) + Send + Sync> ProgressSink for ProgressFn<F> {
    fn report(&self, event: PullEvent) {
        (self.0)(event)
    }
}

/// Counts bytes flowing through a reader and reports them in steps.
pub(crate) struct ProgressReader<'a, R> {
    inner: R,
    sink: &'a dyn ProgressSink,
    layer: Digest,
    size: u64,
    downloaded: u64,
    last_reported: u64,
}

impl<'a, R> ProgressReader<'a, R> {
    pub(crate) fn new(inner: R, sink: &'a dyn ProgressSink, layer: Digest, size: u64) -> Self {
        ProgressReader { inner, sink, layer, size, downloaded: 0, last_reported: 0 }
    }
}

impl<R: std::io::Read> std::io::Read for ProgressReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let count = self.inner.read(buf)?;
        self.downloaded += count as u64;
        if self.downloaded - self.last_reported >= PROGRESS_STEP_BYTES
            || (count == 0 && self.downloaded > self.last_reported)
        {
            self.last_reported = self.downloaded;
            self.sink.report(PullEvent::LayerProgress {
                layer: self.layer.clone(),
                downloaded: self.downloaded,
                size: self.size,
            });
        }
        Ok(count)
    }
}
