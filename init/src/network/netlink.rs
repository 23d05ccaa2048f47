//! Every rtnetlink request keel makes, in one place: the netlink crates change their API with every minor release
//! (their versions are pinned exactly in Cargo.toml), so nothing else touches them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures_util::TryStreamExt;
use keel_config::network::IpCidr;
use netlink_packet_route::link::{LinkAttribute, LinkLayerType};
use rtnetlink::{Handle, LinkUnspec, RouteMessageBuilder};

/// A netlink request that failed, naming what was asked.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("cannot open a netlink socket")]
    Connect(#[source] std::io::Error),
    #[error("{what}")]
    Request {
        what: String,
        #[source]
        source: rtnetlink::Error,
    },
}

/// A network link as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub mac: Option<[u8; 6]>,
    pub is_ethernet: bool,
}

/// A connection to the kernel's routing netlink; the connection task runs on the current tokio runtime.
pub struct Netlink {
    handle: Handle,
}

impl Netlink {
    /// Opens the connection. Must run inside a tokio runtime, which drives the socket.
    pub fn connect() -> Result<Self, NetlinkError> {
        let (connection, handle, _) = rtnetlink::new_connection().map_err(NetlinkError::Connect)?;
        // Without this task every request waits forever.
        tokio::spawn(connection);
        Ok(Netlink { handle })
    }

    pub async fn links(&self) -> Result<Vec<Link>, NetlinkError> {
        let request = |source| NetlinkError::Request { what: "listing links".to_owned(), source };
        let mut stream = self.handle.link().get().execute();
        let mut links = Vec::new();
        while let Some(message) = stream.try_next().await.map_err(request)? {
            let mut link = Link {
                index: message.header.index,
                name: String::new(),
                mac: None,
                is_ethernet: message.header.link_layer_type == LinkLayerType::Ether,
            };
            for attribute in message.attributes {
                match attribute {
                    LinkAttribute::IfName(name) => link.name = name,
                    LinkAttribute::Address(bytes) => link.mac = <[u8; 6]>::try_from(bytes.as_slice()).ok(),
                    _ => {}
                }
            }
            links.push(link);
        }
        Ok(links)
    }

    /// Sets the link up, with `mtu` when given.
    pub async fn set_up(&self, link: &Link, mtu: Option<u32>) -> Result<(), NetlinkError> {
        let mut message = LinkUnspec::new_with_index(link.index).up();
        if let Some(mtu) = mtu {
            message = message.mtu(mtu);
        }
        self.handle
            .link()
            .set(message.build())
            .execute()
            .await
            .map_err(|source| NetlinkError::Request { what: format!("setting {} up", link.name), source })
    }

    pub async fn add_address(&self, link: &Link, cidr: IpCidr) -> Result<(), NetlinkError> {
        let result = self.handle.address().add(link.index, cidr.address, cidr.prefix_len).execute().await;
        ignore_exists(result)
            .map_err(|source| NetlinkError::Request { what: format!("adding {cidr} to {}", link.name), source })
    }

    pub async fn delete_address(&self, link: &Link, cidr: IpCidr) -> Result<(), NetlinkError> {
        let what = || format!("removing {cidr} from {}", link.name);
        let request = |source| NetlinkError::Request { what: what(), source };
        let mut stream = self
            .handle
            .address()
            .get()
            .set_link_index_filter(link.index)
            .set_address_filter(cidr.address)
            .set_prefix_length_filter(cidr.prefix_len)
            .execute();
        while let Some(message) = stream.try_next().await.map_err(request)? {
            self.handle.address().del(message).execute().await.map_err(request)?;
        }
        Ok(())
    }

    /// Adds a route to `destination` (the default route for a /0) on the link, through `via` when given.
    pub async fn add_route(
        &self,
        link: &Link,
        destination: IpCidr,
        via: Option<IpAddr>,
        metric: Option<u32>,
    ) -> Result<(), NetlinkError> {
        let what = || match via {
            Some(via) => format!("adding route {destination} via {via} on {}", link.name),
            None => format!("adding route {destination} on {}", link.name),
        };
        let message = match (destination.address, via) {
            (IpAddr::V4(address), via) => {
                let mut builder = RouteMessageBuilder::<Ipv4Addr>::new()
                    .destination_prefix(address, destination.prefix_len)
                    .output_interface(link.index);
                if let Some(IpAddr::V4(gateway)) = via {
                    builder = builder.gateway(gateway);
                }
                if let Some(metric) = metric {
                    builder = builder.priority(metric);
                }
                builder.build()
            }
            (IpAddr::V6(address), via) => {
                let mut builder = RouteMessageBuilder::<Ipv6Addr>::new()
                    .destination_prefix(address, destination.prefix_len)
                    .output_interface(link.index);
                if let Some(IpAddr::V6(gateway)) = via {
                    builder = builder.gateway(gateway);
                }
                if let Some(metric) = metric {
                    builder = builder.priority(metric);
                }
                builder.build()
            }
        };
        ignore_exists(self.handle.route().add(message).execute().await)
            .map_err(|source| NetlinkError::Request { what: what(), source })
    }
}

/// Adding what is already there (a second boot's leftovers, a renewed lease) is success.
fn ignore_exists(result: Result<(), rtnetlink::Error>) -> Result<(), rtnetlink::Error> {
    match result {
        Err(rtnetlink::Error::NetlinkError(message)) if message.raw_code() == -libc::EEXIST => Ok(()),
        other => other,
    }
}
