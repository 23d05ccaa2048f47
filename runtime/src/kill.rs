//! Sends a signal to a running container's first process (stop signals, SIGKILL, `docker kill`).

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The signal could not be delivered.
#[derive(Debug, thiserror::Error)]
#[error("container {container}: sending signal {signal} to pid {pid}")]
pub struct KillError {
    pub container: String,
    pub pid: i32,
    pub signal: i32,
    #[source]
    pub source: Errno,
}

/// Sends `signal` to `pid`, the container's PID 1. A process that is already gone (ESRCH) is not an error: its
/// exit is on its way through the reaper.
///
/// SIGKILL to a PID namespace's init kills every process in the namespace. Other signals reach only that init,
/// which (as PID 1 of its namespace) ignores those it has no handler for, as under Docker.
pub fn kill_container(container: &str, pid: Pid, signal: i32) -> Result<(), KillError> {
    let error = |source| KillError { container: container.to_owned(), pid: pid.as_raw(), signal, source };
    let signal_value = Signal::try_from(signal).map_err(error)?;
    match kill(pid, signal_value) {
        Ok(()) | Err(Errno::ESRCH) => Ok(()),
        Err(source) => Err(error(source)),
    }
}
