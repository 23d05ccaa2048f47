//! Networking, on its own thread: links up, static addresses and routes, a DHCPv4 client per DHCP interface,
//! and the generated `resolv.conf`, `hosts` and `hostname`. `NetworkHandle::stop` releases the leases.

use keel_logs::error_chain;

mod dhcp;
mod domain_name;
pub mod host_files;
mod netlink;
mod plan;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use keel_config::network::{InterfaceConfig, IpCidr, NetworkConfig};
use tokio::sync::watch;

use crate::timeline;
use dhcp::{DhcpClient, Lease, LeaseObserver};
use domain_name::DomainName;
use netlink::{Link, Netlink, NetlinkError};

/// Who named the host: a name from the user-data or meta-data stays; otherwise DHCP may supply one.
#[derive(Debug, Clone)]
pub struct HostName {
    pub name: String,
    pub configured: bool,
}

/// The running network thread.
pub struct NetworkHandle {
    stop: watch::Sender<bool>,
    done: mpsc::Receiver<()>,
    thread: JoinHandle<()>,
}

impl NetworkHandle {
    /// Asks every DHCP client to release its lease and waits up to `timeout` for them.
    pub fn stop(self, timeout: Duration) {
        let _ = self.stop.send(true);
        match self.done.recv_timeout(timeout) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                let _ = self.thread.join();
            }
            Err(mpsc::RecvTimeoutError::Timeout) => log::warn!("network: leases not released within {timeout:?}"),
        }
    }
}

/// Starts the network thread. Failures are logged there: a host without network still runs its containers.
pub fn start(config: NetworkConfig, hostname: HostName) -> std::io::Result<NetworkHandle> {
    let (stop, stopped) = watch::channel(false);
    let (done_sender, done) = mpsc::channel();
    let thread = std::thread::Builder::new().name("network".to_owned()).spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_io().enable_time().build();
        match runtime {
            Ok(runtime) => {
                if let Err(error) = runtime.block_on(run(&config, hostname, stopped)) {
                    log::error!("network: {}", error_chain(&error));
                }
            }
            Err(error) => log::error!("network: cannot start its runtime: {}", error_chain(&error)),
        }
        let _ = done_sender.send(());
    })?;
    Ok(NetworkHandle { stop, done, thread })
}

async fn run(config: &NetworkConfig, hostname: HostName, stop: watch::Receiver<bool>) -> Result<(), NetlinkError> {
    let netlink = Netlink::connect()?;
    let links = netlink.links().await?;
    let default = plan::default_dhcp();
    let planned = plan::plan(config, &links, is_device, &default);
    if planned.is_empty() {
        log::warn!("network: no interface to configure");
    }
    let state = HostNetworkState::new(hostname);

    let mut clients = Vec::new();
    for (link, entry) in &planned {
        if let Err(error) = configure_static(&netlink, link, entry).await {
            log::error!("network {}: {}", link.name, error_chain(&error));
        }
        state.set_static_dns(link, entry);
        if !entry.addresses.is_empty() {
            let addresses: Vec<String> = entry.addresses.iter().map(IpCidr::to_string).collect();
            timeline::mark(&format!("network {} {} static", link.name, addresses.join(",")));
        }
        if entry.dhcp {
            let Some(mac) = link.mac else {
                log::error!("network {}: DHCP needs a hardware address", link.name);
                continue;
            };
            let name = state.hostname.borrow().name.clone();
            match DhcpClient::new(link, mac, &netlink, Some(name)) {
                Ok(client) => clients.push(client),
                Err(error) => {
                    log::error!("network {}: cannot open the DHCP socket: {}", link.name, error_chain(&error))
                }
            }
        }
    }
    let runs = clients.into_iter().map(|client| client.run(&state, stop.clone()));
    futures_util::future::join_all(runs).await;
    Ok(())
}

/// Links up, static addresses, gateways and routes of one interface.
async fn configure_static(netlink: &Netlink, link: &Link, entry: &InterfaceConfig) -> Result<(), NetlinkError> {
    netlink.set_up(link, entry.mtu).await?;
    timeline::mark(&format!("link {} up", link.name));
    for address in &entry.addresses {
        netlink.add_address(link, *address).await?;
    }
    let defaults = [
        entry.gateway.map(|gateway| (IpCidr { address: IpAddr::from([0u8; 4]), prefix_len: 0 }, IpAddr::V4(gateway))),
        entry.gateway6.map(|gateway| (IpCidr { address: IpAddr::from([0u16; 8]), prefix_len: 0 }, IpAddr::V6(gateway))),
    ];
    for (destination, via) in defaults.into_iter().flatten() {
        netlink.add_route(link, destination, Some(via), None).await?;
    }
    for route in &entry.routes {
        netlink.add_route(link, route.destination, route.via, route.metric).await?;
    }
    Ok(())
}

/// A device the machine has, as opposed to a link the kernel or keel made (veth, bridge, tunnel).
fn is_device(link: &Link) -> bool {
    Path::new("/sys/class/net").join(&link.name).join("device").exists()
}

/// Name servers and host name as they come in from static config and leases, written out on every change.
struct HostNetworkState {
    hostname: RefCell<HostName>,
    static_dns: RefCell<BTreeMap<u32, Vec<IpAddr>>>,
    leased_dns: RefCell<BTreeMap<u32, LeasedNameServers>>,
}

/// A lease's name servers and search domain.
type LeasedNameServers = (Vec<IpAddr>, Option<DomainName>);

impl HostNetworkState {
    fn new(hostname: HostName) -> Self {
        HostNetworkState {
            hostname: RefCell::new(hostname),
            static_dns: RefCell::default(),
            leased_dns: RefCell::default(),
        }
    }

    fn set_static_dns(&self, link: &Link, entry: &InterfaceConfig) {
        if !entry.dns.is_empty() {
            self.static_dns.borrow_mut().insert(link.index, entry.dns.clone());
            self.write_resolv_conf();
        }
    }

    fn write_resolv_conf(&self) {
        let (servers, search) = resolv_conf_entries(&self.static_dns.borrow(), &self.leased_dns.borrow());
        if let Err(error) = host_files::write_resolv_conf(&servers, &search) {
            log::error!("network: cannot write resolv.conf: {}", error_chain(&error));
        }
    }
}

/// What a lease contributes to `resolv.conf`.
fn leased_name_servers(lease: &Lease) -> LeasedNameServers {
    (lease.dns.iter().copied().map(IpAddr::V4).collect(), lease.domain_name.clone())
}

/// The name servers and search domains of `resolv.conf`, by link: configured name servers of a link replace what
/// its DHCP server offers; the search domains come from the leases.
fn resolv_conf_entries(
    static_dns: &BTreeMap<u32, Vec<IpAddr>>,
    leased: &BTreeMap<u32, LeasedNameServers>,
) -> (Vec<IpAddr>, Vec<DomainName>) {
    let mut servers: Vec<IpAddr> = Vec::new();
    let mut search: Vec<DomainName> = Vec::new();
    for (index, (dns, domain)) in leased {
        if !static_dns.contains_key(index) {
            servers.extend(dns);
        }
        search.extend(domain.iter().cloned());
    }
    for dns in static_dns.values() {
        servers.extend(dns);
    }
    servers.dedup();
    search.dedup();
    (servers, search)
}

impl LeaseObserver for HostNetworkState {
    fn bound(&self, link: &Link, lease: &Lease) {
        timeline::mark(&format!("network {} {} dhcp", link.name, lease.cidr()));
        log::info!(
            "dhcp {}: lease {} from {} for {}s, router {}",
            link.name,
            lease.cidr(),
            lease.server,
            lease.duration().as_secs(),
            lease.router.map(|router| router.to_string()).unwrap_or_else(|| "none".to_owned())
        );
        self.leased_dns.borrow_mut().insert(link.index, leased_name_servers(lease));
        self.write_resolv_conf();

        let mut hostname = self.hostname.borrow_mut();
        if let Some(offered) = lease.hostname.as_ref().filter(|_| !hostname.configured) {
            if keel_config::validate_hostname(offered).is_ok() && *offered != hostname.name {
                match nix::unistd::sethostname(offered)
                    .map_err(std::io::Error::from)
                    .and_then(|()| host_files::write_hostname(offered))
                {
                    Ok(()) => {
                        log::info!("host name {offered} (from DHCP)");
                        hostname.name = offered.clone();
                    }
                    Err(error) => {
                        log::error!("cannot set the host name {offered:?} from DHCP: {}", error_chain(&error))
                    }
                }
            }
        }
    }

    fn lost(&self, link: &Link) {
        log::warn!("dhcp {}: lease lost; asking again", link.name);
        self.leased_dns.borrow_mut().remove(&link.index);
        self.write_resolv_conf();
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use tokio::time::Instant;

    use super::dhcp::packet::{parse_reply, MessageType, Reply};
    use super::*;

    /// An ACK whose option 15 carries a `nameserver` line of its own, and whose option 12 is no host name.
    fn hostile_ack(domain_name: &str) -> Vec<u8> {
        Reply {
            kind: Some(MessageType::Ack),
            your_address: Ipv4Addr::new(10, 0, 2, 15),
            server_id: Some(Ipv4Addr::new(10, 0, 2, 2)),
            subnet_mask: Some(Ipv4Addr::new(255, 255, 255, 0)),
            dns: vec![Ipv4Addr::new(10, 0, 2, 3)],
            domain_name: Some(domain_name.to_owned()),
            hostname: Some("evil\n127.0.0.1 registry".to_owned()),
            lease_seconds: Some(3600),
            ..Reply::default()
        }
        .encode()
    }

    /// `resolv.conf` as written for link 2 (DHCP only) and link 3 (DHCP with a static `dns`), both leased by
    /// the server that sent `packet`.
    fn resolv_conf_after(packet: &[u8]) -> String {
        let lease = Lease::from_ack(&parse_reply(packet).unwrap(), Instant::now()).unwrap();
        let leased = BTreeMap::from([(2, leased_name_servers(&lease)), (3, leased_name_servers(&lease))]);
        let static_dns = BTreeMap::from([(3, vec![IpAddr::from([192, 168, 77, 3])])]);
        let (servers, search) = resolv_conf_entries(&static_dns, &leased);
        host_files::resolv_conf(&servers, &search)
    }

    #[test]
    fn a_hostile_domain_name_adds_no_line_to_resolv_conf() {
        let packet = hostile_ack("corp\nnameserver 203.0.113.53");
        let lease = Lease::from_ack(&parse_reply(&packet).unwrap(), Instant::now()).unwrap();
        assert_eq!((lease.domain_name.as_ref(), lease.hostname.as_ref()), (None, None));
        let text = resolv_conf_after(&packet);
        let lines: Vec<&str> = text.lines().filter(|line| !line.starts_with('#')).collect();
        assert_eq!(lines, ["nameserver 10.0.2.3", "nameserver 192.168.77.3"], "{text}");
    }

    #[test]
    fn a_valid_domain_name_is_the_search_line() {
        let text = resolv_conf_after(&hostile_ack("corp.example."));
        let lines: Vec<&str> = text.lines().filter(|line| !line.starts_with('#')).collect();
        assert_eq!(lines, ["search corp.example", "nameserver 10.0.2.3", "nameserver 192.168.77.3"], "{text}");
    }
}
