//! The restart delay, exactly as moby's restart manager computes it: 100 ms, doubling to 1 min, reset after 10 s.

use std::time::Duration;

/// The first delay, and the one after a run of at least [`RESET_AFTER`].
pub const FIRST_DELAY: Duration = Duration::from_millis(100);
pub const MAX_DELAY: Duration = Duration::from_secs(60);
/// A run at least this long counts as healthy: the next delay starts over.
pub const RESET_AFTER: Duration = Duration::from_secs(10);

/// The delay before the next restart, given the previous delay (`None` before the first restart or after a
/// manual start) and how long the container ran this time.
pub fn next_delay(previous: Option<Duration>, ran_for: Duration) -> Duration {
    match previous {
        _ if ran_for >= RESET_AFTER => FIRST_DELAY,
        None => FIRST_DELAY,
        Some(previous) => previous.saturating_mul(2).min(MAX_DELAY),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_100ms_and_stays_at_one_minute() {
        let mut delays = Vec::new();
        let mut previous = None;
        for _ in 0..12 {
            let delay = next_delay(previous, Duration::from_millis(5));
            delays.push(delay.as_millis());
            previous = Some(delay);
        }
        assert_eq!(delays, [100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 51200, 60000, 60000]);
    }

    #[test]
    fn a_run_of_ten_seconds_resets_the_delay() {
        assert_eq!(next_delay(Some(MAX_DELAY), Duration::from_secs(10)), FIRST_DELAY);
        assert_eq!(next_delay(Some(MAX_DELAY), Duration::from_millis(9999)), MAX_DELAY);
        assert_eq!(next_delay(Some(Duration::from_millis(400)), Duration::from_secs(11)), FIRST_DELAY);
    }
}
