//! A DHCPv4 lease: what the server granted and when it must be renewed, rebound, or given up. What a server sends
//! is checked here: names that are not names are dropped, timers that would have the client ask again at once
//! are clamped.

use std::net::Ipv4Addr;
use std::time::Duration;

use keel_config::network::IpCidr;
use keel_logs::error_chain;
use tokio::time::Instant;

use super::packet::{option, prefix_len, Reply};
use crate::network::domain_name::DomainName;

/// Without a lease time the lease is treated as this long, and renewed at half of it.
const DEFAULT_LEASE: Duration = Duration::from_secs(3600);
/// The shortest lease taken: a server that grants 0 s would have the client ask again at once, for ever.
const MIN_LEASE: Duration = Duration::from_secs(60);
/// The earliest renewal (T1) and rebinding (T2) after a lease is granted: at most two renewals a minute.
const MIN_RENEW: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub address: Ipv4Addr,
    pub prefix_len: u8,
    pub router: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    /// Option 12, if it is a valid host name.
    pub hostname: Option<String>,
    /// Option 15, if it is a valid domain name: it becomes `resolv.conf`'s `search`.
    pub domain_name: Option<DomainName>,
    pub mtu: Option<u16>,
    pub server: Ipv4Addr,
    pub acquired: Instant,
    pub renew_at: Instant,
    pub rebind_at: Instant,
    pub expires_at: Instant,
}

impl Lease {
    /// The lease an ACK grants, or `None` when it lacks what a lease needs (an address and a server).
    pub fn from_ack(ack: &Reply, acquired: Instant) -> Option<Lease> {
        let server = ack.server_id?;
        if ack.your_address.is_unspecified() {
            return None;
        }
        let (renew, rebind, lease) = timers(ack);
        Some(Lease {
            address: ack.your_address,
            prefix_len: ack.subnet_mask.and_then(prefix_len).unwrap_or_else(|| classful_prefix(ack.your_address)),
            router: ack.routers.first().copied(),
            dns: ack.dns.clone(),
            hostname: ack.hostname.as_deref().and_then(|name| hostname(name, server)),
            domain_name: ack.domain_name.as_deref().and_then(|name| domain_name(name, server)),
            mtu: ack.mtu,
            server,
            acquired,
            renew_at: acquired + renew,
            rebind_at: acquired + rebind,
            expires_at: acquired + lease,
        })
    }

    pub fn cidr(&self) -> IpCidr {
        IpCidr { address: self.address.into(), prefix_len: self.prefix_len }
    }

    pub fn duration(&self) -> Duration {
        self.expires_at - self.acquired
    }
}

/// T1, T2 and the lease time of `ack`, with MIN_RENEW ≤ T1 ≤ T2 ≤ lease and lease ≥ MIN_LEASE. RFC 2131 §4.4.5:
/// T1 defaults to half the lease, T2 to seven eighths; so does a timer that is missing, too short or out of order.
fn timers(ack: &Reply) -> (Duration, Duration, Duration) {
    let seconds = |value: Option<u32>| value.map(|seconds| Duration::from_secs(seconds.into()));
    let lease = seconds(ack.lease_seconds).unwrap_or(DEFAULT_LEASE).max(MIN_LEASE);
    let rebind = seconds(ack.rebinding_seconds).filter(|rebind| (MIN_RENEW..=lease).contains(rebind));
    let rebind = rebind.unwrap_or(lease * 7 / 8);
    let renew = seconds(ack.renewal_seconds).filter(|renew| (MIN_RENEW..=rebind).contains(renew));
    let renew = renew.unwrap_or((lease / 2).min(rebind));
    (renew, rebind, lease)
}

/// Option 15 as a domain name, or `None` (and a warning) if it is not one.
fn domain_name(text: &str, server: Ipv4Addr) -> Option<DomainName> {
    DomainName::parse(text)
        .inspect_err(|error| {
            log::warn!(
                "dhcp: dropping option {} (domain name) from server {server}: {}",
                option::DOMAIN_NAME,
                error_chain(&error)
            );
        })
        .ok()
}

/// Option 12, or `None` (and a warning) if it is not a host name.
fn hostname(text: &str, server: Ipv4Addr) -> Option<String> {
    keel_config::validate_hostname(text)
        .inspect_err(|error| {
            log::warn!(
                "dhcp: dropping option {} (host name) from server {server}: {}",
                option::HOSTNAME,
                error_chain(&error)
            );
        })
        .ok()
        .map(|()| text.to_owned())
}

/// The prefix a server that sends no subnet mask implies (RFC 2132 asks servers to send one; old ones do not).
fn classful_prefix(address: Ipv4Addr) -> u8 {
    match address.octets()[0] {
        0..=127 => 8,
        128..=191 => 16,
        _ => 24,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_default_to_half_and_seven_eighths() {
        let ack = Reply {
            your_address: Ipv4Addr::new(10, 0, 2, 15),
            subnet_mask: Some(Ipv4Addr::new(255, 255, 255, 0)),
            server_id: Some(Ipv4Addr::new(10, 0, 2, 2)),
            lease_seconds: Some(800),
            ..Reply::default()
        };
        let now = Instant::now();
        let lease = Lease::from_ack(&ack, now).unwrap();
        assert_eq!(lease.cidr().to_string(), "10.0.2.15/24");
        assert_eq!(lease.renew_at - now, Duration::from_secs(400));
        assert_eq!(lease.rebind_at - now, Duration::from_secs(700));
        assert_eq!(lease.expires_at - now, Duration::from_secs(800));
    }

    #[test]
    fn an_ack_without_server_or_address_is_no_lease() {
        let now = Instant::now();
        assert!(Lease::from_ack(&Reply { your_address: Ipv4Addr::new(10, 0, 0, 1), ..Reply::default() }, now).is_none());
        let no_address = Reply { server_id: Some(Ipv4Addr::new(10, 0, 0, 1)), ..Reply::default() };
        assert!(Lease::from_ack(&no_address, now).is_none());
    }

    fn ack_with_timers(renewal: Option<u32>, rebinding: Option<u32>, lease: Option<u32>) -> Reply {
        Reply {
            your_address: Ipv4Addr::new(10, 0, 2, 15),
            server_id: Some(Ipv4Addr::new(10, 0, 2, 2)),
            renewal_seconds: renewal,
            rebinding_seconds: rebinding,
            lease_seconds: lease,
            ..Reply::default()
        }
    }

    /// (T1, T2, lease) in seconds as the client takes them.
    fn taken(renewal: Option<u32>, rebinding: Option<u32>, lease: Option<u32>) -> (u64, u64, u64) {
        let now = Instant::now();
        let lease = Lease::from_ack(&ack_with_timers(renewal, rebinding, lease), now).unwrap();
        let seconds = |at: Instant| (at - now).as_secs();
        (seconds(lease.renew_at), seconds(lease.rebind_at), seconds(lease.expires_at))
    }

    #[test]
    fn timers_are_clamped_into_order() {
        // What a sane server sends is kept.
        assert_eq!(taken(Some(600), Some(1000), Some(1200)), (600, 1000, 1200));
        assert_eq!(taken(None, None, None), (1800, 3150, 3600));
        // Zero everything: a minute's lease, renewed at half and rebound at seven eighths.
        assert_eq!(taken(Some(0), Some(0), Some(0)), (30, 52, 60));
        assert_eq!(taken(Some(0), None, Some(86400)), (43200, 75600, 86400));
        assert_eq!(taken(Some(1), Some(2), Some(86400)), (43200, 75600, 86400));
        // Out of order: T1 after T2, T2 after the lease.
        assert_eq!(taken(Some(900), Some(600), Some(1200)), (600, 600, 1200));
        assert_eq!(taken(Some(600), Some(5000), Some(1200)), (600, 1050, 1200));
        assert_eq!(taken(Some(5000), Some(6000), Some(1200)), (600, 1050, 1200));
        // The largest lease (RFC 2131's "infinite") does not overflow.
        assert_eq!(taken(None, None, Some(u32::MAX)).2, u64::from(u32::MAX));
    }

    /// The renewals a client that keeps its lease with `ack` sends in a minute: it renews at T1 and the server
    /// answers each renewal with the same ACK at once (the schedule `DhcpClient::keep` follows).
    fn renewals_per_minute(ack: &Reply) -> usize {
        let start = Instant::now();
        let mut lease = Lease::from_ack(ack, start).unwrap();
        let mut renewals = 0;
        // Past 1000 it spins: the count is the failure, not the loop.
        while lease.renew_at < start + Duration::from_secs(60) && renewals < 1000 {
            renewals += 1;
            lease = Lease::from_ack(ack, lease.renew_at).unwrap();
        }
        renewals
    }

    #[test]
    fn zero_timers_give_at_most_two_renewals_a_minute() {
        for (renewal, rebinding, lease) in [
            (Some(0), Some(0), Some(0)),
            (Some(0), None, Some(3600)),
            (Some(0), Some(0), Some(3600)),
            (None, None, Some(0)),
        ] {
            let count = renewals_per_minute(&ack_with_timers(renewal, rebinding, lease));
            assert!(count <= 2, "T1 {renewal:?}, T2 {rebinding:?}, lease {lease:?}: {count} renewals a minute");
        }
    }

    #[test]
    fn names_that_are_not_names_are_dropped() {
        let now = Instant::now();
        let ack = |hostname: &str, domain_name: &str| Reply {
            hostname: Some(hostname.to_owned()),
            domain_name: Some(domain_name.to_owned()),
            ..ack_with_timers(None, None, None)
        };
        let lease = Lease::from_ack(&ack("web-1", "corp.example"), now).unwrap();
        assert_eq!(lease.hostname.as_deref(), Some("web-1"));
        assert_eq!(lease.domain_name.map(|name| name.to_string()).as_deref(), Some("corp.example"));
        let lease = Lease::from_ack(&ack("web\n1", "corp\nnameserver 203.0.113.53"), now).unwrap();
        assert_eq!((lease.hostname, lease.domain_name), (None, None));
        let lease = Lease::from_ack(&ack(&"h".repeat(65), &format!("{}.example", "x".repeat(64))), now).unwrap();
        assert_eq!((lease.hostname, lease.domain_name), (None, None));
    }
}
