//! A DHCPv4 lease: what the server granted and when it must be renewed, rebound, or given up.

use std::net::Ipv4Addr;
use std::time::Duration;

use keel_config::network::IpCidr;
use tokio::time::Instant;

use super::packet::{prefix_len, Reply};

/// Without a lease time the lease is treated as this long, and renewed at half of it.
const DEFAULT_LEASE: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub address: Ipv4Addr,
    pub prefix_len: u8,
    pub router: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub hostname: Option<String>,
    pub domain_name: Option<String>,
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
        // RFC 2131 §4.4.5: T1 defaults to half the lease, T2 to seven eighths.
        let lease = ack.lease_seconds.map(|seconds| Duration::from_secs(seconds.into())).unwrap_or(DEFAULT_LEASE);
        let renew = ack.renewal_seconds.map(|seconds| Duration::from_secs(seconds.into())).unwrap_or(lease / 2);
        let rebind = ack.rebinding_seconds.map(|seconds| Duration::from_secs(seconds.into())).unwrap_or(lease * 7 / 8);
        Some(Lease {
            address: ack.your_address,
            prefix_len: ack.subnet_mask.and_then(prefix_len).unwrap_or_else(|| classful_prefix(ack.your_address)),
            router: ack.routers.first().copied(),
            dns: ack.dns.clone(),
            hostname: ack.hostname.clone(),
            domain_name: ack.domain_name.clone(),
            mtu: ack.mtu,
            server,
            acquired,
            renew_at: acquired + renew.min(lease),
            rebind_at: acquired + rebind.min(lease),
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
}
