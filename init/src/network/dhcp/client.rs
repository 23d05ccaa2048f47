//! The DHCPv4 client of one interface: discover, request, bind, renew at T1, rebind at T2, start over at expiry,
//! release on shutdown.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::OwnedFd;
use std::time::Duration;

use keel_config::network::IpCidr;
use keel_logs::error_chain;
use nix::sys::socket::{bind, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn};
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::time::{sleep, sleep_until, timeout_at, Instant};

use super::lease::Lease;
use super::packet::{parse_reply, MessageType, Reply, Request};
use crate::network::netlink::{Link, Netlink};
use crate::timeline;

const CLIENT_PORT: u16 = 68;
const SERVER_PORT: u16 = 67;
const FIRST_RETRANSMIT: Duration = Duration::from_secs(1);
const MAX_RETRANSMIT: Duration = Duration::from_secs(32);
/// RFC 2131 §4.4.5: while renewing or rebinding, wait half the remaining time, but at least a minute.
const MIN_RENEW_RETRANSMIT: Duration = Duration::from_secs(60);
/// A REQUEST that gets no answer after this many tries sends the client back to DISCOVER.
const REQUEST_TRIES: u32 = 4;

/// What the client tells its owner.
pub trait LeaseObserver {
    fn bound(&self, link: &Link, lease: &Lease);
    fn lost(&self, link: &Link);
}

pub struct DhcpClient<'a> {
    link: &'a Link,
    mac: [u8; 6],
    netlink: &'a Netlink,
    socket: UdpSocket,
    hostname: Option<String>,
    xid: u32,
}

impl<'a> DhcpClient<'a> {
    pub fn new(link: &'a Link, mac: [u8; 6], netlink: &'a Netlink, hostname: Option<String>) -> io::Result<Self> {
        let socket = client_socket(&link.name)?;
        // No entropy is needed: the transaction id only tells our replies from other clients'.
        let xid = u32::from_be_bytes([mac[2], mac[3], mac[4], mac[5]]) ^ (timeline::uptime_ms() as u32);
        Ok(DhcpClient { link, mac, netlink, socket, hostname, xid })
    }

    /// Runs until `stop` turns true; then releases the lease, if any.
    pub async fn run(mut self, observer: &dyn LeaseObserver, mut stop: watch::Receiver<bool>) {
        loop {
            let lease = tokio::select! {
                lease = self.acquire() => lease,
                _ = stop.wait_for(|stopped| *stopped) => return,
            };
            if let Err(error) = self.apply(&lease).await {
                log::error!("dhcp {}: {}", self.link.name, error_chain(&error));
            }
            observer.bound(self.link, &lease);
            let kept = tokio::select! {
                kept = self.keep(lease.clone()) => kept,
                _ = stop.wait_for(|stopped| *stopped) => {
                    self.release(&lease).await;
                    return;
                }
            };
            if let Err(error) = self.netlink.delete_address(self.link, kept.cidr()).await {
                log::warn!("dhcp {}: {}", self.link.name, error_chain(&error));
            }
            observer.lost(self.link);
        }
    }

    /// DISCOVER → OFFER → REQUEST → ACK, retrying with exponential backoff until a server grants a lease.
    async fn acquire(&mut self) -> Lease {
        let mut backoff = FIRST_RETRANSMIT;
        loop {
            self.xid = self.xid.wrapping_add(1);
            let discover = self.request(MessageType::Discover, None, None);
            let Some(offer) = self.exchange(&discover, broadcast(), MessageType::Offer, backoff).await else {
                backoff = (backoff * 2).min(MAX_RETRANSMIT);
                continue;
            };
            let request = self.request(MessageType::Request, Some(offer.your_address), offer.server_id);
            for attempt in 0..REQUEST_TRIES {
                let wait = FIRST_RETRANSMIT * 2u32.pow(attempt);
                match self.exchange(&request, broadcast(), MessageType::Ack, wait).await {
                    Some(ack) if ack.kind == Some(MessageType::Ack) => match Lease::from_ack(&ack, Instant::now()) {
                        Some(lease) => return lease,
                        None => log::warn!("dhcp {}: ACK without address or server id", self.link.name),
                    },
                    Some(_nak) => break,
                    None => {}
                }
            }
            // A NAK or an unusable ACK comes back at once: without a pause, a server that always answers so would
            // get DISCOVERs as fast as it can answer them.
            sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_RETRANSMIT);
        }
    }

    /// Keeps the lease: renews at T1 (unicast to its server), rebinds at T2 (broadcast); returns the lease once it
    /// is lost (NAK or expiry).
    async fn keep(&mut self, mut lease: Lease) -> Lease {
        loop {
            sleep_until(lease.renew_at).await;
            let server = SocketAddrV4::new(lease.server, SERVER_PORT);
            match self.extend(&lease, server, lease.rebind_at).await {
                Some(renewed) => lease = renewed,
                None => match self.extend(&lease, broadcast(), lease.expires_at).await {
                    Some(rebound) => lease = rebound,
                    None => return lease,
                },
            }
        }
    }

    /// Asks to extend `lease` until `deadline`; the new lease on ACK, `None` on NAK or when the deadline passes.
    async fn extend(&mut self, lease: &Lease, to: SocketAddrV4, deadline: Instant) -> Option<Lease> {
        self.xid = self.xid.wrapping_add(1);
        let mut request = self.request(MessageType::Request, None, None);
        request.client_address = Some(lease.address);
        while Instant::now() < deadline {
            let wait = ((deadline - Instant::now()) / 2).max(MIN_RENEW_RETRANSMIT);
            let wait_until = (Instant::now() + wait).min(deadline);
            let reply = self.exchange(&request, to, MessageType::Ack, wait_until - Instant::now()).await;
            match reply {
                Some(ack) if ack.kind == Some(MessageType::Ack) => {
                    let renewed = Lease::from_ack(&ack, Instant::now());
                    if renewed.as_ref().is_some_and(|renewed| renewed.address == lease.address) {
                        return renewed;
                    }
                    return None;
                }
                Some(_nak) => return None,
                None => {}
            }
        }
        None
    }

    async fn release(&mut self, lease: &Lease) {
        let mut release = self.request(MessageType::Release, None, Some(lease.server));
        release.client_address = Some(lease.address);
        match self.socket.send_to(&release.encode(), SocketAddrV4::new(lease.server, SERVER_PORT)).await {
            Ok(_) => log::info!("dhcp {}: released {}", self.link.name, lease.cidr()),
            Err(error) => {
                log::warn!("dhcp {}: cannot release {}: {}", self.link.name, lease.cidr(), error_chain(&error))
            }
        }
    }

    async fn apply(&self, lease: &Lease) -> Result<(), crate::network::netlink::NetlinkError> {
        if let Some(mtu) = lease.mtu.filter(|mtu| *mtu >= 576) {
            self.netlink.set_up(self.link, Some(mtu.into())).await?;
        }
        self.netlink.add_address(self.link, lease.cidr()).await?;
        if let Some(router) = lease.router {
            let default = IpCidr { address: Ipv4Addr::UNSPECIFIED.into(), prefix_len: 0 };
            self.netlink.add_route(self.link, default, Some(router.into()), None).await?;
        }
        Ok(())
    }

    fn request(&self, kind: MessageType, requested_address: Option<Ipv4Addr>, server_id: Option<Ipv4Addr>) -> Request {
        Request {
            kind,
            xid: self.xid,
            mac: self.mac,
            client_address: None,
            requested_address,
            server_id,
            hostname: self.hostname.clone(),
            seconds: 0,
        }
    }

    /// Sends `request` and waits up to `wait` for an answer of `expected` kind (or a NAK) to this transaction.
    async fn exchange(
        &self,
        request: &Request,
        to: SocketAddrV4,
        expected: MessageType,
        wait: Duration,
    ) -> Option<Reply> {
        if let Err(error) = self.socket.send_to(&request.encode(), to).await {
            log::debug!("dhcp {}: send to {to}: {}", self.link.name, error_chain(&error));
            // The link may not carry traffic yet; the caller retries after the wait.
            sleep(wait).await;
            return None;
        }
        let deadline = Instant::now() + wait;
        let mut buffer = [0u8; 1500];
        loop {
            let received = timeout_at(deadline, self.socket.recv_from(&mut buffer)).await.ok()?;
            let Ok((len, _from)) = received else { continue };
            let Some(reply) = parse_reply(&buffer[..len]) else { continue };
            if reply.xid != request.xid || reply.mac != self.mac {
                continue;
            }
            if reply.kind == Some(expected) || reply.kind == Some(MessageType::Nak) {
                return Some(reply);
            }
        }
    }
}

fn broadcast() -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::BROADCAST, SERVER_PORT)
}

/// A UDP socket on port 68 of this interface only, allowed to broadcast, usable before the interface has an
/// address: the kernel sends limited broadcasts out of the bound device from 0.0.0.0.
fn client_socket(interface: &str) -> io::Result<UdpSocket> {
    let fd: OwnedFd =
        socket(AddressFamily::Inet, SockType::Datagram, SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK, None)?;
    setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    setsockopt(&fd, sockopt::Broadcast, &true)?;
    setsockopt(&fd, sockopt::BindToDevice, &std::ffi::OsString::from(interface))?;
    bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrIn::new(0, 0, 0, 0, CLIENT_PORT))?;
    UdpSocket::from_std(std::net::UdpSocket::from(fd))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;
    use crate::network::dhcp::packet::Reply;

    const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
    /// The hostile server's address: on loopback, port 67 as the client expects.
    const SERVER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 67);

    /// A DHCP server on `SERVER` that answers every request with `ack` (its xid and MAC), counting the requests.
    struct HostileServer {
        requests: Arc<AtomicUsize>,
        stop: Arc<AtomicBool>,
        thread: Option<std::thread::JoinHandle<()>>,
    }

    impl HostileServer {
        fn start(ack: Reply) -> HostileServer {
            let socket = std::net::UdpSocket::bind((SERVER, SERVER_PORT)).expect("binding 127.0.0.67:67 (root?)");
            socket.set_read_timeout(Some(Duration::from_millis(50))).expect("a read timeout");
            let requests = Arc::new(AtomicUsize::new(0));
            let stop = Arc::new(AtomicBool::new(false));
            let (counted, stopped) = (Arc::clone(&requests), Arc::clone(&stop));
            let thread = std::thread::spawn(move || {
                let mut buffer = [0u8; 1500];
                while !stopped.load(Ordering::SeqCst) {
                    let Ok((len, from)) = socket.recv_from(&mut buffer) else { continue };
                    if len < 34 {
                        continue;
                    }
                    counted.fetch_add(1, Ordering::SeqCst);
                    let mut mac = [0u8; 6];
                    mac.copy_from_slice(&buffer[28..34]);
                    let xid = u32::from_be_bytes([buffer[4], buffer[5], buffer[6], buffer[7]]);
                    let _ = socket.send_to(&Reply { xid, mac, ..ack.clone() }.encode(), from);
                }
            });
            HostileServer { requests, stop, thread: Some(thread) }
        }

        fn stop(mut self) -> usize {
            self.stop.store(true, Ordering::SeqCst);
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
            self.requests.load(Ordering::SeqCst)
        }
    }

    /// Keeps a lease from a server whose every ACK has the timers `(T1, T2, lease)`, due for renewal at once, for
    /// 3 s; returns whether the client still held it and how many requests the server got.
    async fn keep_for_three_seconds(timers: (Option<u32>, Option<u32>, Option<u32>)) -> (bool, usize) {
        let ack = Reply {
            kind: Some(MessageType::Ack),
            your_address: Ipv4Addr::new(10, 0, 2, 15),
            server_id: Some(SERVER),
            renewal_seconds: timers.0,
            rebinding_seconds: timers.1,
            lease_seconds: timers.2,
            ..Reply::default()
        };
        let server = HostileServer::start(ack.clone());
        let link = Link { index: 1, name: "lo".to_owned(), mac: None, is_ethernet: false };
        let netlink = Netlink::connect().expect("a netlink socket");
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.expect("a client socket");
        let mut client = DhcpClient { link: &link, mac: MAC, netlink: &netlink, socket, hostname: None, xid: 1 };
        let now = Instant::now();
        let mut lease = Lease::from_ack(&ack, now).expect("a lease");
        lease.renew_at = now;
        let kept = tokio::time::timeout(Duration::from_secs(3), client.keep(lease)).await.is_err();
        (kept, server.stop())
    }

    /// A server that answers every renewal with T1 = 0 at once: a client that took it literally would renew again
    /// at once, thousands of times a second. With a lease due for renewal at the start of a 3 s window, the
    /// client sends exactly one request in it (and two a minute at most, by the clamp); the same with every
    /// timer 0, where a literal client would lose the lease at once and start over.
    #[tokio::test]
    async fn zero_timers_from_a_real_server_give_one_renewal_not_a_flood() {
        for timers in [(Some(0), None, Some(3600)), (Some(0), Some(0), Some(0))] {
            let (kept, requests) = keep_for_three_seconds(timers).await;
            assert_eq!(requests, 1, "requests in 3 s to a server that sends (T1, T2, lease) {timers:?}");
            assert!(kept, "the lease was given up with (T1, T2, lease) {timers:?}");
        }
    }
}
