//! What the poller decides from a verified channel document, and when: pure functions on values, so that every
//! case is a unit test (up to date, other `compatible`, already in the other slot, rolled back, newer) and the
//! waits (the jittered interval) need no clock.

use std::cmp::Ordering;
use std::time::Duration;

use keel_config::update::{MaintenanceWindow, RebootPolicy};
use keel_os_image::channel::ChannelDocument;
use keel_os_image::version;

/// What the host is running and what its other slot holds, as the poller needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostVersions {
    pub version: String,
    pub compatible: String,
    /// The version of the other slot's boot entry, and whether that entry was marked bad (a rolled-back trial).
    pub other_slot: Option<OtherSlot>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtherSlot {
    pub version: String,
    /// Its entry has no tries left: the trial of this version failed.
    pub marked_bad: bool,
}

/// What to do about a channel document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelVerdict {
    /// The channel's version is the running one, or older.
    UpToDate,
    /// The channel is for other hosts.
    Incompatible { channel: String },
    /// The other slot holds the channel's version already, installed and waiting for a reboot.
    AlreadyInstalled,
    /// The other slot's trial of the channel's version failed: installing it again would roll back again.
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
    match &host.other_slot {
        Some(other) if version::compare(&other.version, &document.version) == Ordering::Equal => {
            if other.marked_bad {
                ChannelVerdict::RolledBack
            } else {
                ChannelVerdict::AlreadyInstalled
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

    fn host(version: &str, other: Option<(&str, bool)>) -> HostVersions {
        HostVersions {
            version: version.to_owned(),
            compatible: "keel-x86_64".to_owned(),
            other_slot: other.map(|(version, marked_bad)| OtherSlot { version: version.to_owned(), marked_bad }),
        }
    }

    fn channel(version: &str) -> ChannelDocument {
        ChannelDocument::new("keel-x86_64", version, "k.bundle")
    }

    #[test]
    fn installs_only_a_newer_compatible_version_not_yet_tried() {
        assert_eq!(decide(&channel("0.2.0"), &host("0.1.0", None)), ChannelVerdict::Install);
        assert_eq!(decide(&channel("0.2.0"), &host("0.1.0", Some(("0.0.9", false)))), ChannelVerdict::Install);
        assert_eq!(decide(&channel("0.3.0"), &host("0.1.0", Some(("0.2.0", true)))), ChannelVerdict::Install);
        assert_eq!(decide(&channel("0.1.0"), &host("0.1.0", None)), ChannelVerdict::UpToDate);
        assert_eq!(decide(&channel("0.1"), &host("0.1.0", None)), ChannelVerdict::UpToDate, "same version");
        assert_eq!(decide(&channel("0.0.9"), &host("0.1.0", None)), ChannelVerdict::UpToDate, "never a downgrade");
        assert_eq!(decide(&channel("0.2.0"), &host("0.1.0", Some(("0.2.0", false)))), ChannelVerdict::AlreadyInstalled);
        assert_eq!(decide(&channel("0.2.0"), &host("0.1.0", Some(("0.2.0", true)))), ChannelVerdict::RolledBack);
        let other = ChannelDocument::new("keel-aarch64", "9.0", "k.bundle");
        assert_eq!(
            decide(&other, &host("0.1.0", None)),
            ChannelVerdict::Incompatible { channel: "keel-aarch64".into() }
        );
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
