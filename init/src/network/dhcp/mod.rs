//! DHCPv4: the wire format, leases, and the per-interface client.

pub mod client;
pub mod lease;
pub mod packet;

pub use client::{DhcpClient, LeaseObserver};
pub use lease::Lease;
