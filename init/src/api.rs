//! Starts the API server (`keel-api`) on PID 1's `/run/keel.sock` or `keel supervise`'s socket, with the mode and
//! group `[api]` asks for. A failure is logged: the host runs its containers without an API rather than not at all.

use std::path::Path;
use std::sync::Arc;

use keel_api::server::{ApiHooks, ApiServer, SocketAccess};
use keel_config::ApiConfig;
use keel_logs::error_chain;
use keel_supervision::SupervisorHandle;

/// PID 1's API socket.
pub const PID1_SOCKET: &str = "/run/keel.sock";

/// Serves the API for `supervisor` on `path`, reaching the host through `hooks`; `None` (logged) when it cannot.
pub fn start(path: &Path, config: &ApiConfig, supervisor: Arc<SupervisorHandle>, hooks: ApiHooks) -> Option<ApiServer> {
    let group = match config.socket_group.as_deref().map(group_id).transpose() {
        Ok(group) => group,
        Err(message) => {
            log::error!("API socket {}: {message}; the API is off", path.display());
            return None;
        }
    };
    let access = SocketAccess { mode: config.socket_mode, group };
    match ApiServer::start(path, access, config.tcp, supervisor, env!("CARGO_PKG_VERSION"), hooks) {
        Ok(server) => {
            log::info!("API on {}", path.display());
            Some(server)
        }
        Err(error) => {
            log::error!("{}; the API is off", error_chain(&error));
            None
        }
    }
}

/// A gid as written, or the gid of the group of that name in the host's `/etc/group`.
fn group_id(group: &str) -> Result<u32, String> {
    if let Ok(gid) = group.parse() {
        return Ok(gid);
    }
    match nix::unistd::Group::from_name(group) {
        Ok(Some(found)) => Ok(found.gid.as_raw()),
        Ok(None) => Err(format!("socket_group {group:?}: no such group on this host")),
        Err(errno) => Err(format!("socket_group {group:?}: cannot read the groups: {errno}")),
    }
}
