//! Networking, on its own thread: links up, static addresses and routes, a DHCPv4 client per DHCP interface,
//! and the generated `resolv.conf`, `hosts` and `hostname`. `NetworkHandle::stop` releases the leases.

mod dhcp;
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
                    log::error!("network: {error}");
                }
            }
            Err(error) => log::error!("network: cannot start its runtime: {error}"),
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
            log::error!("network {}: {error}", link.name);
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
                Err(error) => log::error!("network {}: cannot open the DHCP socket: {error}", link.name),
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
type LeasedNameServers = (Vec<IpAddr>, Option<String>);

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

    /// Configured name servers of a link replace what its DHCP server offers.
    fn write_resolv_conf(&self) {
        let static_dns = self.static_dns.borrow();
        let leased = self.leased_dns.borrow();
        let mut servers: Vec<IpAddr> = Vec::new();
        let mut search: Vec<String> = Vec::new();
        for (index, (dns, domain)) in leased.iter() {
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
        if let Err(error) = host_files::write_resolv_conf(&servers, &search) {
            log::error!("network: cannot write resolv.conf: {error}");
        }
    }
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
        let dns = lease.dns.iter().copied().map(IpAddr::V4).collect();
        self.leased_dns.borrow_mut().insert(link.index, (dns, lease.domain_name.clone()));
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
                    Err(error) => log::error!("cannot set the host name {offered:?} from DHCP: {error}"),
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
