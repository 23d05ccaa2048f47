//! Boot timeline marks for a container's first start and first line of output, in PID 1's timeline format.
//!
//! `keel: <ms>ms container-started <name>` is printed once the container's command has been exec'd (the start
//! returned), `keel: <ms>ms container-output <name>` when the log reader has read the first line, before it is
//! passed on. Each is printed once per container worker, so `make bench` sees the first start after boot and not
//! the restarts.

use std::sync::atomic::{AtomicBool, Ordering};

use nix::time::{clock_gettime, ClockId};

/// Whether a container's first start and first output line have been marked yet.
#[derive(Debug, Default)]
pub struct FirstEvents {
    started: AtomicBool,
    output: AtomicBool,
}

impl FirstEvents {
    /// Marks `container-started <container>` the first time it is called.
    pub fn started(&self, container: &str) {
        if !self.started.swap(true, Ordering::Relaxed) {
            mark("container-started", container);
        }
    }

    /// Marks `container-output <container>` the first time it is called.
    pub fn output(&self, container: &str) {
        if !self.output.swap(true, Ordering::Relaxed) {
            mark("container-output", container);
        }
    }
}

/// Prints the mark through the log, as PID 1's own timeline marks are (the clock is the same: CLOCK_BOOTTIME).
fn mark(stage: &str, container: &str) {
    // Without the clock there is no honest time to print; the mark is left out rather than faked.
    if let Ok(now) = clock_gettime(ClockId::CLOCK_BOOTTIME) {
        let ms = now.tv_sec() as u64 * 1000 + now.tv_nsec() as u64 / 1_000_000;
        log::info!("{ms}ms {stage} {container}");
    }
}
