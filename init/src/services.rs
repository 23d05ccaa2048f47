//! What stage 2 starts and the shutdown stops: the long-running parts of PID 1 besides its main loop.

use std::sync::Arc;
use std::time::Duration;

use keel_api::server::ApiServer;
use keel_runtime::Reaper;
use keel_supervision::SupervisorHandle;

use crate::logger;
use crate::network::NetworkHandle;
use crate::shutdown::timed;

/// How long DHCP clients get to release their leases at shutdown.
const NETWORK_STOP_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the syslog relay gets to send what it holds, while the network is still up.
const SYSLOG_FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Default)]
pub struct Services {
    pub network: Option<NetworkHandle>,
    /// Shared with the health gate of a trial boot, which reads the containers' status, and with the API.
    pub supervisor: Option<Arc<SupervisorHandle>>,
    pub api: Option<ApiServer>,
}

impl Services {
    /// Stops everything on a thread of its own while the caller keeps reaping with `reaper`: stopping a
    /// container waits for its exit, and only the reaper delivers exits.
    pub fn stop_while_reaping(self, reaper: &Reaper) {
        reaper.reap_while("stop-services", move || self.stop());
    }

    /// Stops everything, in the reverse order of starting.
    fn stop(self) {
        // Containers first, all at once but each before those it depends on, each with its stop signal and timeout,
        // all within `[host] shutdown_timeout`; their last lines still reach syslog, whose relay then flushes
        // while the network is up. Every step is bounded.
        // The API first: no request may start what the shutdown stops.
        if let Some(api) = self.api {
            timed("closing the API", || api.stop());
        }
        if let Some(supervisor) = self.supervisor {
            timed("stopping the containers", || supervisor.shutdown());
        }
        timed("flushing the syslog relay", || {
            if !logger::router().flush_relay(SYSLOG_FLUSH_TIMEOUT) {
                log::warn!("syslog relay: not everything was sent within {SYSLOG_FLUSH_TIMEOUT:?}");
            }
        });
        if let Some(network) = self.network {
            timed("releasing the network", || network.stop(NETWORK_STOP_TIMEOUT));
        }
    }
}
