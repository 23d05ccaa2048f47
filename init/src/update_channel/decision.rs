//! What the poller decides from a verified channel document, and when: pure functions on values, so that every
//! case is a unit test (up to date, other `compatible`, already in the other slot, rolled back, newer) and the
//! waits (the jittered interval) need no clock.

use std::cmp::Ordering;
use std::time::Duration;

use keel_config::update::{MaintenanceWindow, RebootPolicy};
use keel_os_image::channel::ChannelDocument;
use keel_os_image::version;

/// What the host is running, and what the poller installed last, as the poller needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostVersions {
    pub version: String,
    pub compatible: String,
    /// The version the poller installed last, and in which boot (`/proc/sys/kernel/random/boot_id`).
    pub last_install: Option<ChannelInstall>,
    /// This boot's id.
    pub boot_id: String,
}

/// An install the poller completed: `/var/lib/keel/update/channel.json`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChannelInstall {
    pub version: String,
    pub boot_id: String,
}

/// What to do about a channel document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelVerdict {
    /// The channel's version is the running one, or older.
    UpToDate,
    /// The channel is for other hosts.
    Incompatible { channel: String },
    /// This boot installed the channel's version already; it waits for its reboot.
    AwaitingReboot,
    /// An earlier boot installed the channel's version and the host does not run it: its trial failed (or it was
    /// rolled back by hand). Installing it again would roll back again; a newer version is installed.
    RolledBack,
    /// Install it.
    Install,
}

/// Whether the channel's document asks for an install on this host.
pub fn decide(document: &ChannelDocument, host: &HostVersions) -> ChannelVerdict {
    if document.compatible != host.compatible {
        return ChannelVerdict::Incompatible { channel: document.compatible.clone() };
    }
    if version::compare(&document.version, &host.version) != Ordering::Greater {
        return ChannelVerdict::UpToDate;
    }
    match &host.last_install {
        Some(last) if version::compare(&last.version, &document.version) == Ordering::Equal => {
            if last.boot_id == host.boot_id {
                ChannelVerdict::AwaitingReboot
            } else {
                ChannelVerdict::RolledBack
            }
        }
        _ => ChannelVerdict::Install,
    }
}

/// `interval` moved by up to ±10%: `random` in `0..=u32::MAX` maps onto `-10%..=+10%`. Hosts started together
/// (a fleet after a power cut) then spread out over the interval instead of polling the server at once.
pub fn jittered(interval: Duration, random: u32) -> Duration {
    let tenth = interval / 10;
    // 0 → -tenth, u32::MAX → +tenth.
    let span = tenth.as_nanos() * 2 * u128::from(random) / u128::from(u32::MAX);
    let offset = Duration::from_nanos(u64::try_from(span).unwrap_or(u64::MAX));
    (interval - tenth).saturating_add(offset)
}

/// The first wait after a failed poll; each further failure doubles it, up to the interval. A poll right after
/// boot often runs before DHCP has an address, and a server that is down for a minute should not cost an hour.
pub const FIRST_RETRY: Duration = Duration::from_secs(10);

/// The wait before the next poll: the interval after a poll that worked, a backoff from [`FIRST_RETRY`] after
/// `failures` failed ones in a row, never longer than the interval.
pub fn next_poll_in(interval: Duration, failures: u32) -> Duration {
    if failures == 0 {
        return interval;
    }
    let backoff = FIRST_RETRY.saturating_mul(1 << failures.saturating_sub(1).min(16));
    backoff.min(interval)
}

/// How long after `now` (seconds since the epoch, UTC) an installed update reboots under `policy`; `None`:
/// never by itself (`manual`, or `window` without a window, which the config refuses).
pub fn reboot_delay(policy: RebootPolicy, window: Option<&MaintenanceWindow>, now: u64) -> Option<Duration> {
    match policy {
        RebootPolicy::Immediate => Some(Duration::ZERO),
        RebootPolicy::Window => window.map(|window| Duration::from_secs(window.next_reboot_at(now) - now)),
        RebootPolicy::Manual => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reboot_delays_follow_the_policy() {
        // 2026-11-28 (a Saturday) 01:00 UTC; the window opens at 02:00 on weekends.
        let now = 1_795_824_000 + 3600;
        let window = MaintenanceWindow { days: 0b110_0000, start: 2 * 3600, length: Duration::from_secs(3 * 3600) };
        assert_eq!(reboot_delay(RebootPolicy::Immediate, None, now), Some(Duration::ZERO));
        assert_eq!(reboot_delay(RebootPolicy::Window, Some(&window), now), Some(Duration::from_secs(3600)));
        assert_eq!(reboot_delay(RebootPolicy::Window, Some(&window), now + 3600), Some(Duration::ZERO));
        assert_eq!(reboot_delay(RebootPolicy::Manual, Some(&window), now), None);
    }

    /// A host running `version` in boot `this`, whose poller installed `last = (version, boot)`.
    fn host(version: &str, last: Option<(&str, &str)>) -> HostVersions {
        HostVersions {
            version: version.to_owned(),
            compatible: "keel-x86_64".to_owned(),
            last_install: last
                .map(|(version, boot_id)| ChannelInstall { version: version.to_owned(), boot_id: boot_id.to_owned() }),
            boot_id: "this".to_owned(),
        }
    }

    fn channel(version: &str) -> ChannelDocument {
        ChannelDocument::new("keel-x86_64", version, "k.bundle")
    }

    #[test]
    fn installs_only_a_newer_compatible_version_not_yet_tried() {
        assert_eq!(decide(&channel("0.2.0"), &host("0.1.0", None)), ChannelVerdict::Install);
        assert_eq!(decide(&channel("0.2.0"), &host("0.1.0", Some(("0.1.0", "earlier")))), ChannelVerdict::Install);
        assert_eq!(decide(&channel("0.3.0"), &host("0.1.0", Some(("0.2.0", "earlier")))), ChannelVerdict::Install);
        assert_eq!(decide(&channel("0.1.0"), &host("0.1.0", None)), ChannelVerdict::UpToDate);
        assert_eq!(decide(&channel("0.1"), &host("0.1.0", None)), ChannelVerdict::UpToDate, "same version");
        assert_eq!(decide(&channel("0.0.9"), &host("0.1.0", None)), ChannelVerdict::UpToDate, "never a downgrade");
        let other = ChannelDocument::new("keel-aarch64", "9.0", "k.bundle");
        assert_eq!(
            decide(&other, &host("0.1.0", None)),
            ChannelVerdict::Incompatible { channel: "keel-aarch64".into() }
        );
    }

    #[test]
    fn an_installed_version_waits_for_its_reboot_and_a_rolled_back_one_is_not_retried() {
        assert_eq!(decide(&channel("0.2.0"), &host("0.1.0", Some(("0.2.0", "this")))), ChannelVerdict::AwaitingReboot);
        assert_eq!(decide(&channel("0.2.0"), &host("0.1.0", Some(("0.2.0", "earlier")))), ChannelVerdict::RolledBack);
        // Once running it, the channel's version is simply current.
        assert_eq!(decide(&channel("0.2.0"), &host("0.2.0", Some(("0.2.0", "earlier")))), ChannelVerdict::UpToDate);
    }

    #[test]
    fn failed_polls_back_off_up_to_the_interval() {
        let hour = Duration::from_secs(3600);
        assert_eq!(next_poll_in(hour, 0), hour);
        assert_eq!(next_poll_in(hour, 1), Duration::from_secs(10));
        assert_eq!(next_poll_in(hour, 2), Duration::from_secs(20));
        assert_eq!(next_poll_in(hour, 9), Duration::from_secs(2560));
        assert_eq!(next_poll_in(hour, 10), hour);
        assert_eq!(next_poll_in(hour, u32::MAX), hour);
        assert_eq!(next_poll_in(Duration::from_secs(60), 4), Duration::from_secs(60));
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        let hour = Duration::from_secs(3600);
        assert_eq!(jittered(hour, 0), Duration::from_secs(3240));
        assert_eq!(jittered(hour, u32::MAX), Duration::from_secs(3960));
        let middle = jittered(hour, u32::MAX / 2);
        assert!(middle.abs_diff(hour) < Duration::from_millis(1), "{middle:?}");
        assert_eq!(jittered(Duration::ZERO, 12345), Duration::ZERO);
    }
}
