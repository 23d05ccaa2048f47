//! Reads the `[network]` section into the types of [`crate::network`], checking each interface entry.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::network::{InterfaceConfig, InterfaceMatch, IpCidr, NetworkConfig, Route};
use crate::reader::{describe, Field, Reader, Table};

const INTERFACE_KEYS: [&str; 9] = ["name", "mac", "dhcp", "addresses", "gateway", "gateway6", "routes", "dns", "mtu"];

/// Text that is not a MAC address.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{text:?} is not a MAC address like 52:54:00:12:34:56")]
pub struct MacError {
    pub text: String,
}

/// Parses six hex bytes separated by `:` or `-`.
pub fn parse_mac(text: &str) -> Result<[u8; 6], MacError> {
    let error = || MacError { text: text.to_owned() };
    let parts: Vec<&str> = text.split([':', '-']).collect();
    let mut mac = [0u8; 6];
    if parts.len() != 6 {
        return Err(error());
    }
    for (byte, part) in mac.iter_mut().zip(parts) {
        if part.len() != 2 {
            return Err(error());
        }
        *byte = u8::from_str_radix(part, 16).map_err(|_| error())?;
    }
    Ok(mac)
}

pub(crate) fn read(reader: &mut Reader, field: &Field) -> NetworkConfig {
    let mut network = NetworkConfig::default();
    let Some(table) = reader.table(field, &["interface"]) else { return network };
    let Some(field) = table.get("interface") else { return network };
    if field.node.get_ref().is_table() {
        let message = "a table is not an array of tables; write [[network.interface]]";
        reader.error(field.node.span(), &field.path, message);
        return network;
    }
    for item in reader.array(&field).unwrap_or_default() {
        if let Some(interface) = reader.table(&item, &INTERFACE_KEYS).and_then(|table| interface(reader, &table)) {
            network.interfaces.push(interface);
        }
    }
    network
}

fn interface(reader: &mut Reader, table: &Table) -> Option<InterfaceConfig> {
    let name = table.get("name").and_then(|field| reader.parse(&field, parse_name));
    let mac = table.get("mac").and_then(|field| reader.parse(&field, parse_mac));
    let dhcp = table.get("dhcp").and_then(|field| reader.bool(&field)).unwrap_or(false);
    let addresses = table.get("addresses").map(|field| reader.parse_array(&field, str::parse::<IpCidr>));
    let gateway = table.get("gateway").and_then(|field| reader.parse(&field, |text| parse_ip(text, Family::V4)));
    let gateway6 = table.get("gateway6").and_then(|field| reader.parse(&field, |text| parse_ip(text, Family::V6)));
    let routes = table.get("routes").map(|field| routes(reader, &field)).unwrap_or_default();
    let dns = table.get("dns").map(|field| reader.parse_array(&field, |text| parse_ip(text, Family::Any)));
    let mtu = table.get("mtu").and_then(|field| reader.integer_in(&field, 68, 65535));

    let matcher = match (name, mac, table.get("name"), table.get("mac")) {
        (_, _, Some(_), Some(mac)) => {
            reader.error(mac.node.span(), &table.path, "name and mac are exclusive; give exactly one");
            return None;
        }
        (Some(name), None, _, _) => InterfaceMatch::Name(name),
        (None, Some(mac), _, _) => InterfaceMatch::Mac(mac),
        (_, _, None, None) => {
            reader.error(table.span.clone(), &table.path, "neither name nor mac; give exactly one");
            return None;
        }
        _ => return None,
    };
    let has_addresses = table
        .get("addresses")
        .is_some_and(|field| field.node.get_ref().as_array().is_none_or(|items| !items.is_empty()));
    if !dhcp && !has_addresses {
        reader.error(table.span.clone(), &table.path, "neither dhcp = true nor addresses; give one or both");
        return None;
    }
    Some(InterfaceConfig {
        matcher,
        dhcp,
        addresses: addresses.unwrap_or_default(),
        gateway: gateway.and_then(|ip| match ip {
            IpAddr::V4(ip) => Some(ip),
            IpAddr::V6(_) => None,
        }),
        gateway6: gateway6.and_then(|ip| match ip {
            IpAddr::V6(ip) => Some(ip),
            IpAddr::V4(_) => None,
        }),
        routes,
        dns: dns.unwrap_or_default(),
        mtu: mtu.and_then(|mtu| u32::try_from(mtu).ok()),
    })
}

fn routes(reader: &mut Reader, field: &Field) -> Vec<Route> {
    let mut routes = Vec::new();
    for item in reader.array(field).unwrap_or_default() {
        let Some(table) = reader.table(&item, &["to", "via", "metric"]) else { continue };
        let destination = table.get("to").and_then(|field| reader.parse(&field, str::parse::<IpCidr>));
        let via = table.get("via").and_then(|field| reader.parse(&field, |text| parse_ip(text, Family::Any)));
        let metric = table.get("metric").and_then(|field| reader.integer_in(&field, 0, i64::from(u32::MAX)));
        if table.get("to").is_none() {
            reader.error(table.span.clone(), &format!("{}.to", table.path), "required key is missing");
        }
        let Some(destination) = destination else { continue };
        if let (Some(via), Some(field)) = (via, table.get("via")) {
            if via.is_ipv4() != destination.address.is_ipv4() {
                let message =
                    format!("{} is not of the same address family as to = \"{destination}\"", describe(field.node));
                reader.error(field.node.span(), &field.path, message);
                continue;
            }
        }
        routes.push(Route { destination, via, metric: metric.and_then(|metric| u32::try_from(metric).ok()) });
    }
    routes
}

#[derive(Clone, Copy)]
enum Family {
    V4,
    V6,
    Any,
}

fn parse_ip(text: &str, family: Family) -> Result<IpAddr, String> {
    match (family, text.parse::<IpAddr>()) {
        (Family::V4, Ok(IpAddr::V4(ip))) => Ok(IpAddr::V4(ip)),
        (Family::V6, Ok(IpAddr::V6(ip))) => Ok(IpAddr::V6(ip)),
        (Family::Any, Ok(ip)) => Ok(ip),
        (Family::V4, _) => Err(format!("{text:?} is not an IPv4 address like {}", Ipv4Addr::new(192, 168, 1, 1))),
        (Family::V6, _) => {
            Err(format!("{text:?} is not an IPv6 address like {}", Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1)))
        }
        (Family::Any, _) => Err(format!("{text:?} is not an IP address like 192.168.1.1 or fd00::1")),
    }
}

/// Interface names: 1-15 bytes, no `/`, `:` or whitespace (the kernel's rules); glob characters are allowed.
fn parse_name(text: &str) -> Result<String, String> {
    let valid = (1..=15).contains(&text.len()) && !text.contains(['/', ':']) && !text.contains(char::is_whitespace);
    if valid {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "{text:?} is not an interface name or glob like eth0 or en*: 1-15 characters, no '/', ':' or spaces"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_macs() {
        assert_eq!(parse_mac("52:54:00:12:34:56"), Ok([0x52, 0x54, 0, 0x12, 0x34, 0x56]));
        assert_eq!(parse_mac("52-54-00-12-34-5A"), Ok([0x52, 0x54, 0, 0x12, 0x34, 0x5a]));
        for bad in ["52:54:00:12:34", "52:54:00:12:34:5", "52:54:00:12:34:5g", "525400123456"] {
            assert!(parse_mac(bad).is_err(), "{bad}");
        }
    }
}
