//! Which configuration each link gets: the first `[[network.interface]]` entry that matches it, or DHCPv4 for
//! every ethernet device when the user-data has no `[network]` section.

use keel_config::network::{InterfaceConfig, InterfaceMatch, NetworkConfig};

use super::netlink::Link;

/// The configuration for links that no user-data configures.
pub fn default_dhcp() -> InterfaceConfig {
    InterfaceConfig {
        matcher: InterfaceMatch::Name("*".to_owned()),
        dhcp: true,
        addresses: Vec::new(),
        gateway: None,
        gateway6: None,
        routes: Vec::new(),
        dns: Vec::new(),
        mtu: None,
    }
}

/// Pairs each link with its configuration; links without one stay down. `is_device` tells a real (or virtual
/// machine's) network device from the kernel's and keel's own links (veth, bridges, tunnels).
pub fn plan<'a>(
    config: &'a NetworkConfig,
    links: &'a [Link],
    is_device: impl Fn(&Link) -> bool,
    default: &'a InterfaceConfig,
) -> Vec<(&'a Link, &'a InterfaceConfig)> {
    links
        .iter()
        .filter(|link| link.name != "lo")
        .filter_map(|link| {
            if config.interfaces.is_empty() {
                return (link.is_ethernet && is_device(link)).then_some((link, default));
            }
            config
                .interfaces
                .iter()
                .find(|entry| entry.matcher.matches(&link.name, link.mac))
                .map(|entry| (link, entry))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(index: u32, name: &str, mac: u8, is_ethernet: bool) -> Link {
        Link { index, name: name.to_owned(), mac: Some([0x52, 0x54, 0, 0, 0, mac]), is_ethernet }
    }

    #[test]
    fn without_config_every_ethernet_device_gets_dhcp() {
        let links =
            [link(1, "lo", 0, false), link(2, "eth0", 1, true), link(3, "eth1", 2, true), link(4, "veth0", 3, true)];
        let default = default_dhcp();
        let config = NetworkConfig::default();
        let planned = plan(&config, &links, |link| link.name.starts_with("eth"), &default);
        let names: Vec<&str> = planned.iter().map(|(link, _)| link.name.as_str()).collect();
        assert_eq!(names, ["eth0", "eth1"]);
        assert!(planned.iter().all(|(_, entry)| entry.dhcp));
    }

    #[test]
    fn the_first_matching_entry_wins_and_unmatched_links_stay_down() {
        let links = [link(2, "eth0", 1, true), link(3, "eth1", 2, true), link(4, "eth2", 3, true)];
        let mut by_mac = default_dhcp();
        by_mac.matcher = InterfaceMatch::Mac([0x52, 0x54, 0, 0, 0, 2]);
        by_mac.dhcp = false;
        let mut by_name = default_dhcp();
        by_name.matcher = InterfaceMatch::Name("eth[01]".to_owned());
        let config = NetworkConfig { interfaces: vec![by_mac.clone(), by_name.clone()] };
        let default = default_dhcp();
        let planned = plan(&config, &links, |_| true, &default);
        assert_eq!(planned.len(), 2);
        assert_eq!((planned[0].0.name.as_str(), planned[0].1), ("eth0", &by_name));
        assert_eq!((planned[1].0.name.as_str(), planned[1].1), ("eth1", &by_mac));
    }
}
