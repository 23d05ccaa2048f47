//! DHCPv4 messages (RFC 2131/2132): building the client's requests and reading the server's answers.

use std::net::Ipv4Addr;

const BOOTREQUEST: u8 = 1;
const BOOTREPLY: u8 = 2;
const HTYPE_ETHERNET: u8 = 1;
const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];
/// Fixed BOOTP header before the magic cookie.
const HEADER_LEN: usize = 236;
/// Asks the server to broadcast its answer: before the lease the client has no address to receive unicast on.
const FLAG_BROADCAST: u16 = 0x8000;

pub mod option {
    pub const PAD: u8 = 0;
    pub const SUBNET_MASK: u8 = 1;
    pub const ROUTER: u8 = 3;
    pub const DNS: u8 = 6;
    pub const HOSTNAME: u8 = 12;
    pub const DOMAIN_NAME: u8 = 15;
    pub const MTU: u8 = 26;
    pub const REQUESTED_ADDRESS: u8 = 50;
    pub const LEASE_TIME: u8 = 51;
    pub const MESSAGE_TYPE: u8 = 53;
    pub const SERVER_ID: u8 = 54;
    pub const PARAMETER_REQUEST: u8 = 55;
    pub const MAX_MESSAGE_SIZE: u8 = 57;
    pub const RENEWAL_TIME: u8 = 58;
    pub const REBINDING_TIME: u8 = 59;
    pub const CLIENT_ID: u8 = 61;
    pub const END: u8 = 255;
}

/// The DHCP message type (option 53).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    Discover = 1,
    Offer = 2,
    Request = 3,
    Decline = 4,
    Ack = 5,
    Nak = 6,
    Release = 7,
}

impl MessageType {
    fn from_byte(byte: u8) -> Option<Self> {
        Some(match byte {
            1 => MessageType::Discover,
            2 => MessageType::Offer,
            3 => MessageType::Request,
            4 => MessageType::Decline,
            5 => MessageType::Ack,
            6 => MessageType::Nak,
            7 => MessageType::Release,
            _ => return None,
        })
    }
}

/// A message the client sends.
#[derive(Debug, Clone)]
pub struct Request {
    pub kind: MessageType,
    pub xid: u32,
    pub mac: [u8; 6],
    /// Our address, set only when it is bound (renewing, rebinding, releasing).
    pub client_address: Option<Ipv4Addr>,
    pub requested_address: Option<Ipv4Addr>,
    pub server_id: Option<Ipv4Addr>,
    pub hostname: Option<String>,
    pub seconds: u16,
}

/// The fixed BOOTP part of a message (`op`, Ethernet, `xid`, `chaddr`); the rest is filled in by the sender.
fn fixed_header(op: u8, xid: u32, mac: &[u8; 6]) -> Vec<u8> {
    let mut packet = vec![0u8; HEADER_LEN];
    packet[0] = op;
    packet[1] = HTYPE_ETHERNET;
    packet[2] = 6;
    packet[4..8].copy_from_slice(&xid.to_be_bytes());
    packet[28..34].copy_from_slice(mac);
    packet
}

impl Request {
    pub fn encode(&self) -> Vec<u8> {
        let mut packet = fixed_header(BOOTREQUEST, self.xid, &self.mac);
        packet[8..10].copy_from_slice(&self.seconds.to_be_bytes());
        if self.client_address.is_none() {
            packet[10..12].copy_from_slice(&FLAG_BROADCAST.to_be_bytes());
        }
        if let Some(address) = self.client_address {
            packet[12..16].copy_from_slice(&address.octets());
        }
        packet.extend_from_slice(&MAGIC_COOKIE);

        let mut put = |code: u8, value: &[u8]| {
            packet.push(code);
            packet.push(value.len() as u8);
            packet.extend_from_slice(value);
        };
        put(option::MESSAGE_TYPE, &[self.kind as u8]);
        let mut client_id = vec![HTYPE_ETHERNET];
        client_id.extend_from_slice(&self.mac);
        put(option::CLIENT_ID, &client_id);
        if let Some(address) = self.requested_address {
            put(option::REQUESTED_ADDRESS, &address.octets());
        }
        if let Some(server) = self.server_id {
            put(option::SERVER_ID, &server.octets());
        }
        if let Some(hostname) = &self.hostname {
            let bytes = hostname.as_bytes();
            put(option::HOSTNAME, &bytes[..bytes.len().min(255)]);
        }
        if self.kind != MessageType::Release {
            put(option::MAX_MESSAGE_SIZE, &1500u16.to_be_bytes());
            put(
                option::PARAMETER_REQUEST,
                &[
                    option::SUBNET_MASK,
                    option::ROUTER,
                    option::DNS,
                    option::HOSTNAME,
                    option::DOMAIN_NAME,
                    option::MTU,
                    option::LEASE_TIME,
                    option::RENEWAL_TIME,
                    option::REBINDING_TIME,
                ],
            );
        }
        packet.push(option::END);
        // Some servers drop BOOTP messages shorter than the historic 300 bytes.
        if packet.len() < 300 {
            packet.resize(300, option::PAD);
        }
        packet
    }
}

/// A server's answer, with the options a client uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub kind: Option<MessageType>,
    pub xid: u32,
    pub mac: [u8; 6],
    pub your_address: Ipv4Addr,
    pub subnet_mask: Option<Ipv4Addr>,
    pub routers: Vec<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub hostname: Option<String>,
    pub domain_name: Option<String>,
    pub mtu: Option<u16>,
    pub lease_seconds: Option<u32>,
    pub renewal_seconds: Option<u32>,
    pub rebinding_seconds: Option<u32>,
    pub server_id: Option<Ipv4Addr>,
}

impl Default for Reply {
    fn default() -> Self {
        Reply {
            kind: None,
            xid: 0,
            mac: [0; 6],
            your_address: Ipv4Addr::UNSPECIFIED,
            subnet_mask: None,
            routers: Vec::new(),
            dns: Vec::new(),
            hostname: None,
            domain_name: None,
            mtu: None,
            lease_seconds: None,
            renewal_seconds: None,
            rebinding_seconds: None,
            server_id: None,
        }
    }
}

/// A server's side, for tests that play a DHCP server: the reply as a server sends it.
#[cfg(test)]
impl Reply {
    pub fn encode(&self) -> Vec<u8> {
        let mut packet = fixed_header(BOOTREPLY, self.xid, &self.mac);
        packet[16..20].copy_from_slice(&self.your_address.octets());
        packet.extend_from_slice(&MAGIC_COOKIE);
        let mut put = |code: u8, value: &[u8]| {
            packet.push(code);
            packet.push(value.len() as u8);
            packet.extend_from_slice(value);
        };
        let addresses = |list: &[Ipv4Addr]| list.iter().flat_map(|address| address.octets()).collect::<Vec<u8>>();
        if let Some(kind) = self.kind {
            put(option::MESSAGE_TYPE, &[kind as u8]);
        }
        if let Some(server) = self.server_id {
            put(option::SERVER_ID, &server.octets());
        }
        if let Some(mask) = self.subnet_mask {
            put(option::SUBNET_MASK, &mask.octets());
        }
        if !self.routers.is_empty() {
            put(option::ROUTER, &addresses(&self.routers));
        }
        if !self.dns.is_empty() {
            put(option::DNS, &addresses(&self.dns));
        }
        if let Some(hostname) = &self.hostname {
            put(option::HOSTNAME, hostname.as_bytes());
        }
        if let Some(domain_name) = &self.domain_name {
            put(option::DOMAIN_NAME, domain_name.as_bytes());
        }
        for (code, seconds) in [
            (option::LEASE_TIME, self.lease_seconds),
            (option::RENEWAL_TIME, self.renewal_seconds),
            (option::REBINDING_TIME, self.rebinding_seconds),
        ] {
            if let Some(seconds) = seconds {
                put(code, &seconds.to_be_bytes());
            }
        }
        packet.push(option::END);
        packet
    }
}

/// Reads a server's reply; `None` for anything that is not a well-formed BOOTREPLY.
pub fn parse_reply(packet: &[u8]) -> Option<Reply> {
    if packet.len() < HEADER_LEN + 4 || packet[0] != BOOTREPLY || packet[HEADER_LEN..HEADER_LEN + 4] != MAGIC_COOKIE {
        return None;
    }
    let address = |at: usize| Ipv4Addr::new(packet[at], packet[at + 1], packet[at + 2], packet[at + 3]);
    let mut reply = Reply {
        xid: u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]),
        your_address: address(16),
        ..Reply::default()
    };
    reply.mac.copy_from_slice(&packet[28..34]);

    let mut options = &packet[HEADER_LEN + 4..];
    while let Some((&code, rest)) = options.split_first() {
        match code {
            option::PAD => {
                options = rest;
                continue;
            }
            option::END => break,
            _ => {}
        }
        let (&len, rest) = rest.split_first()?;
        let value = rest.get(..len as usize)?;
        options = &rest[len as usize..];
        let addresses = || value.chunks_exact(4).map(|chunk| Ipv4Addr::new(chunk[0], chunk[1], chunk[2], chunk[3]));
        let seconds = || <[u8; 4]>::try_from(value).ok().map(u32::from_be_bytes);
        let text = || Some(String::from_utf8_lossy(value).trim_end_matches('\0').to_owned()).filter(|t| !t.is_empty());
        match code {
            option::MESSAGE_TYPE => reply.kind = value.first().copied().and_then(MessageType::from_byte),
            option::SUBNET_MASK => reply.subnet_mask = addresses().next(),
            option::ROUTER => reply.routers = addresses().collect(),
            option::DNS => reply.dns = addresses().collect(),
            option::HOSTNAME => reply.hostname = text(),
            option::DOMAIN_NAME => reply.domain_name = text(),
            option::MTU => reply.mtu = <[u8; 2]>::try_from(value).ok().map(u16::from_be_bytes),
            option::LEASE_TIME => reply.lease_seconds = seconds(),
            option::RENEWAL_TIME => reply.renewal_seconds = seconds(),
            option::REBINDING_TIME => reply.rebinding_seconds = seconds(),
            option::SERVER_ID => reply.server_id = addresses().next(),
            _ => {}
        }
    }
    Some(reply)
}

/// The prefix length of a contiguous subnet mask; `None` for a mask with holes.
pub fn prefix_len(mask: Ipv4Addr) -> Option<u8> {
    let bits = u32::from(mask);
    let ones = bits.leading_ones();
    (bits.checked_shl(ones).unwrap_or(0) == 0).then_some(ones as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

    fn server_reply(kind: MessageType) -> Vec<u8> {
        let mut packet = vec![0u8; HEADER_LEN];
        packet[0] = BOOTREPLY;
        packet[1] = 1;
        packet[2] = 6;
        packet[4..8].copy_from_slice(&0xdead_beef_u32.to_be_bytes());
        packet[16..20].copy_from_slice(&[10, 0, 2, 15]);
        packet[28..34].copy_from_slice(&MAC);
        packet.extend_from_slice(&MAGIC_COOKIE);
        for (code, value) in [
            (option::MESSAGE_TYPE, vec![kind as u8]),
            (option::SUBNET_MASK, vec![255, 255, 255, 0]),
            (option::ROUTER, vec![10, 0, 2, 2]),
            (option::DNS, vec![10, 0, 2, 3, 1, 1, 1, 1]),
            (option::LEASE_TIME, 86400u32.to_be_bytes().to_vec()),
            (option::SERVER_ID, vec![10, 0, 2, 2]),
            (option::HOSTNAME, b"guest\0".to_vec()),
            (option::MTU, 1400u16.to_be_bytes().to_vec()),
        ] {
            packet.push(option::PAD);
            packet.push(code);
            packet.push(value.len() as u8);
            packet.extend_from_slice(&value);
        }
        packet.push(option::END);
        packet
    }

    #[test]
    fn reads_a_servers_ack() {
        let reply = parse_reply(&server_reply(MessageType::Ack)).unwrap();
        assert_eq!(reply.kind, Some(MessageType::Ack));
        assert_eq!(reply.xid, 0xdead_beef);
        assert_eq!(reply.mac, MAC);
        assert_eq!(reply.your_address, Ipv4Addr::new(10, 0, 2, 15));
        assert_eq!(reply.subnet_mask, Some(Ipv4Addr::new(255, 255, 255, 0)));
        assert_eq!(reply.routers, vec![Ipv4Addr::new(10, 0, 2, 2)]);
        assert_eq!(reply.dns, vec![Ipv4Addr::new(10, 0, 2, 3), Ipv4Addr::new(1, 1, 1, 1)]);
        assert_eq!(reply.lease_seconds, Some(86400));
        assert_eq!(reply.server_id, Some(Ipv4Addr::new(10, 0, 2, 2)));
        assert_eq!(reply.hostname.as_deref(), Some("guest"));
        assert_eq!(reply.mtu, Some(1400));
    }

    #[test]
    fn rejects_truncated_and_foreign_packets() {
        let mut packet = server_reply(MessageType::Offer);
        assert!(parse_reply(&packet[..100]).is_none());
        packet[0] = BOOTREQUEST;
        assert!(parse_reply(&packet).is_none());
        let mut truncated_option = server_reply(MessageType::Offer);
        truncated_option.pop();
        truncated_option.push(option::ROUTER);
        truncated_option.push(200);
        assert!(parse_reply(&truncated_option).is_none());
    }

    #[test]
    fn builds_a_discover_that_asks_for_broadcast() {
        let discover = Request {
            kind: MessageType::Discover,
            xid: 7,
            mac: MAC,
            client_address: None,
            requested_address: None,
            server_id: None,
            hostname: Some("keel".to_owned()),
            seconds: 0,
        }
        .encode();
        assert_eq!(discover[0], BOOTREQUEST);
        assert_eq!(&discover[4..8], &7u32.to_be_bytes());
        assert_eq!(&discover[10..12], &FLAG_BROADCAST.to_be_bytes());
        assert_eq!(&discover[28..34], &MAC);
        assert_eq!(&discover[HEADER_LEN..HEADER_LEN + 4], &MAGIC_COOKIE);
        assert_eq!(&discover[HEADER_LEN + 4..HEADER_LEN + 7], &[option::MESSAGE_TYPE, 1, 1]);
        assert!(discover.len() >= 300);
    }

    #[test]
    fn prefix_lengths_of_masks() {
        assert_eq!(prefix_len(Ipv4Addr::new(255, 255, 255, 0)), Some(24));
        assert_eq!(prefix_len(Ipv4Addr::new(255, 255, 255, 255)), Some(32));
        assert_eq!(prefix_len(Ipv4Addr::new(0, 0, 0, 0)), Some(0));
        assert_eq!(prefix_len(Ipv4Addr::new(255, 0, 255, 0)), None);
    }
}
