//! The boot timeline: one console line per boot stage, stamped with milliseconds since the kernel started.

use nix::time::{clock_gettime, ClockId};

/// Milliseconds since the kernel started, suspend included (the clock `/proc/uptime` shows).
pub fn uptime_ms() -> u64 {
    match clock_gettime(ClockId::CLOCK_BOOTTIME) {
        Ok(now) => now.tv_sec() as u64 * 1000 + now.tv_nsec() as u64 / 1_000_000,
        Err(_) => 0,
    }
}

/// Prints `keel: <ms>ms <stage>`, the line tests and `make bench` parse.
pub fn mark(stage: &str) {
    log::info!("{}ms {stage}", uptime_ms());
}
