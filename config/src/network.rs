//! The `[network]` section: which interfaces get which addresses, routes and name servers.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// What the host does with its network interfaces.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkConfig {
    /// Empty when the user-data has no `[network]` section: then every ethernet link gets DHCPv4.
    pub interfaces: Vec<InterfaceConfig>,
}

/// One `[[network.interface]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceConfig {
    pub matcher: InterfaceMatch,
    /// DHCPv4 on this interface; static `addresses` may be added on top.
    pub dhcp: bool,
    pub addresses: Vec<IpCidr>,
    pub gateway: Option<Ipv4Addr>,
    pub gateway6: Option<Ipv6Addr>,
    pub routes: Vec<Route>,
    /// Name servers; with DHCP they replace the ones the server offers.
    pub dns: Vec<IpAddr>,
    pub mtu: Option<u32>,
}

/// How an interface entry picks its links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InterfaceMatch {
    /// A name or a shell glob (`*`, `?`, `[…]`), e.g. `eth0` or `en*`.
    Name(String),
    Mac([u8; 6]),
}

/// A static route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub destination: IpCidr,
    pub via: Option<IpAddr>,
    pub metric: Option<u32>,
}

/// An address with its prefix length, `10.0.0.5/24` or `fd00::5/64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpCidr {
    pub address: IpAddr,
    pub prefix_len: u8,
}

/// Text that is not `ADDRESS/PREFIX`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{text:?} is not an address with a prefix length, like 192.168.1.10/24 or fd00::10/64")]
pub struct IpCidrError {
    pub text: String,
}

impl FromStr for IpCidr {
    type Err = IpCidrError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = || IpCidrError { text: text.to_owned() };
        let (address, prefix) = text.split_once('/').ok_or_else(error)?;
        let address: IpAddr = address.parse().map_err(|_| error())?;
        if prefix.is_empty() || !prefix.bytes().all(|byte| byte.is_ascii_digit()) {
            return Err(error());
        }
        let prefix_len: u8 = prefix.parse().map_err(|_| error())?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        if prefix_len > max {
            return Err(error());
        }
        Ok(IpCidr { address, prefix_len })
    }
}

impl fmt::Display for IpCidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix_len)
    }
}

impl InterfaceMatch {
    /// Whether a link with this name and hardware address is one of this entry's.
    pub fn matches(&self, name: &str, mac: Option<[u8; 6]>) -> bool {
        match self {
            InterfaceMatch::Name(pattern) => glob_matches(pattern.as_bytes(), name.as_bytes()),
            InterfaceMatch::Mac(wanted) => mac == Some(*wanted),
        }
    }
}

/// Shell-style glob: `*` any run, `?` one character, `[abc]`/`[a-z]`/`[!a]` one of a set.
fn glob_matches(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|skip| glob_matches(rest, &text[skip..])),
        Some((b'?', rest)) => !text.is_empty() && glob_matches(rest, &text[1..]),
        Some((b'[', rest)) => {
            let Some(close) = rest.iter().skip(1).position(|byte| *byte == b']').map(|index| index + 1) else {
                return text.first() == Some(&b'[') && glob_matches(rest, &text[1..]);
            };
            let Some((&first, text_rest)) = text.split_first() else { return false };
            let (negated, set) = match rest[..close].split_first() {
                Some((b'!', set)) => (true, set),
                _ => (false, &rest[..close]),
            };
            let mut in_set = false;
            let mut index = 0;
            while index < set.len() {
                if index + 2 < set.len() && set[index + 1] == b'-' {
                    in_set |= (set[index]..=set[index + 2]).contains(&first);
                    index += 3;
                } else {
                    in_set |= set[index] == first;
                    index += 1;
                }
            }
            in_set != negated && glob_matches(&rest[close + 1..], text_rest)
        }
        Some((literal, rest)) => text.first() == Some(literal) && glob_matches(rest, &text[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cidrs() {
        let cidr: IpCidr = "192.168.1.10/24".parse().unwrap();
        assert_eq!(cidr.to_string(), "192.168.1.10/24");
        assert_eq!("fd00::10/64".parse::<IpCidr>().unwrap().prefix_len, 64);
        for bad in ["192.168.1.10", "192.168.1.10/33", "fd00::1/129", "x/24", "10.0.0.1/", "10.0.0.1/+4"] {
            assert_eq!(bad.parse::<IpCidr>(), Err(IpCidrError { text: bad.to_owned() }), "{bad}");
        }
    }

    #[test]
    fn matches_names_by_glob_and_links_by_mac() {
        let by_name = |pattern: &str, name: &str| InterfaceMatch::Name(pattern.to_owned()).matches(name, None);
        assert!(by_name("eth0", "eth0"));
        assert!(!by_name("eth0", "eth01"));
        assert!(by_name("eth*", "eth1"));
        assert!(by_name("en?s[0-9]", "enps3"));
        assert!(!by_name("en?s[!0-9]", "enps3"));
        let mac = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
        assert!(InterfaceMatch::Mac(mac).matches("eth0", Some(mac)));
        assert!(!InterfaceMatch::Mac(mac).matches("eth0", None));
    }
}
