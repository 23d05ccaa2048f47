//! What stage 2 starts and the shutdown stops: the long-running parts of PID 1 besides its main loop.

use std::time::Duration;

use crate::logger;
use crate::network::NetworkHandle;

/// How long DHCP clients get to release their leases at shutdown.
const NETWORK_STOP_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the syslog relay gets to send what it holds, while the network is still up.
const SYSLOG_FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Default)]
pub struct Services {
    pub network: Option<NetworkHandle>,
}

impl Services {
    /// Stops everything, in the reverse order of starting.
    pub fn stop(self) {
        logger::flush_relay(SYSLOG_FLUSH_TIMEOUT);
        if let Some(network) = self.network {
            network.stop(NETWORK_STOP_TIMEOUT);
        }
    }
}
