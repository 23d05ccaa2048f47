//! What stage 2 starts and the shutdown stops: the long-running parts of PID 1 besides its main loop.

use std::time::Duration;

use crate::network::NetworkHandle;

/// How long DHCP clients get to release their leases at shutdown.
const NETWORK_STOP_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Default)]
pub struct Services {
    pub network: Option<NetworkHandle>,
}

impl Services {
    /// Stops everything, in the reverse order of starting.
    pub fn stop(self) {
        if let Some(network) = self.network {
            network.stop(NETWORK_STOP_TIMEOUT);
        }
    }
}
