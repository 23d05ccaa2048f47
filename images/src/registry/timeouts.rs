//! How long the registry client waits before it gives up on a request, and how often it tries again.

use std::time::Duration;

/// Deadlines and retries for every request to a registry. A registry that sends headers and then nothing, or a
/// byte every few seconds, must fail the pull: a pull that never ends holds its container in `Pulling` and the
/// store's writer lock for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistryTimeouts {
    /// Connecting: DNS, TCP and TLS together.
    pub connect: Duration,
    /// No byte for this long on a connection (headers or body): the attempt failed, the registry stalls.
    pub idle: Duration,
    /// The whole-request deadline for a small body (headers, body, redirects); larger ones get more, see
    /// [`RegistryTimeouts::request_deadline`].
    pub request_floor: Duration,
    /// The slowest average rate a transfer may keep before its deadline passes (bytes per second): a trickle of
    /// one byte per `idle - 1` seconds is no stall, and this is what ends it.
    pub min_bytes_per_second: u64,
    /// Tries per request, the first included; for a blob, per blob (a resumed read counts as a try).
    pub attempts: u32,
    /// The wait before the second try; it doubles for each try after.
    pub first_backoff: Duration,
}

impl Default for RegistryTimeouts {
    fn default() -> Self {
        RegistryTimeouts {
            connect: Duration::from_secs(30),
            idle: Duration::from_secs(30),
            request_floor: Duration::from_secs(120),
            // 512 kbit/s: slower links exist, but a layer that needs hours there is not one anybody waits for.
            min_bytes_per_second: 64 << 10,
            attempts: 4,
            first_backoff: Duration::from_millis(250),
        }
    }
}

impl RegistryTimeouts {
    /// The deadline of one request whose body is expected to be `expected_bytes` long: the floor plus the time
    /// that many bytes take at the slowest rate allowed.
    pub fn request_deadline(&self, expected_bytes: u64) -> Duration {
        let rate = self.min_bytes_per_second.max(1);
        self.request_floor.saturating_add(Duration::from_secs(expected_bytes / rate))
    }

    /// The wait after failed try number `failed` (1 for the first): `first_backoff` doubled `failed - 1` times.
    pub fn backoff(&self, failed: u32) -> Duration {
        self.first_backoff.saturating_mul(1u32 << failed.saturating_sub(1).min(16))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_grows_with_the_size_from_a_floor() {
        let timeouts = RegistryTimeouts::default();
        assert_eq!(timeouts.request_deadline(0), Duration::from_secs(120));
        assert_eq!(timeouts.request_deadline(1 << 30), Duration::from_secs(120 + (1 << 14)));
        // A size from the network cannot overflow it.
        assert!(timeouts.request_deadline(u64::MAX) > Duration::from_secs(1 << 40));
        let zero_rate = RegistryTimeouts { min_bytes_per_second: 0, ..timeouts };
        assert_eq!(zero_rate.request_deadline(10), Duration::from_secs(130));
    }

    #[test]
    fn backoff_doubles_and_saturates() {
        let timeouts = RegistryTimeouts::default();
        let waits: Vec<_> = (1..=4).map(|failed| timeouts.backoff(failed)).collect();
        assert_eq!(waits, [250, 500, 1000, 2000].map(Duration::from_millis));
        assert!(timeouts.backoff(u32::MAX) >= Duration::from_secs(250 * 65536 / 1000));
    }
}
