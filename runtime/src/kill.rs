//! Sends a signal to a running container's first process (stop signals, SIGKILL, `docker kill`).

use std::fmt;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use nix::errno::Errno;
use nix::unistd::Pid;

use super::sys;

/// A process keel started (a container's PID 1, a probe), held by its pidfd as well as its pid. The reaper frees
/// the pid the moment it collects the exit, and the kernel may hand it to a new process; the pidfd keeps naming
/// the old one, so signals and namespace joins through it fail with ESRCH instead of reaching a stranger.
#[derive(Debug, Clone)]
pub struct ContainerProcess {
    pid: Pid,
    pidfd: Arc<OwnedFd>,
}

impl ContainerProcess {
    pub(crate) fn new(pid: Pid, pidfd: OwnedFd) -> ContainerProcess {
        ContainerProcess { pid, pidfd: Arc::new(pidfd) }
    }

    /// The pid as the host saw it at the start (for status and logs; may be reused after the exit).
    pub fn pid(&self) -> Pid {
        self.pid
    }

    pub fn pidfd(&self) -> BorrowedFd<'_> {
        self.pidfd.as_fd()
    }
}

impl fmt::Display for ContainerProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.pid)
    }
}

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

/// Sends `signal` to `process`, the container's PID 1, through its pidfd. A process that is already gone (ESRCH)
/// is not an error: its exit is on its way through the reaper.
///
/// SIGKILL to a PID namespace's init kills every process in the namespace. Other signals reach only that init,
/// which (as PID 1 of its namespace) ignores those it has no handler for, as under Docker.
pub fn kill_container(container: &str, process: &ContainerProcess, signal: i32) -> Result<(), KillError> {
    match sys::pidfd_send_signal(process.pidfd(), signal) {
        Ok(()) | Err(libc::ESRCH) => Ok(()),
        Err(errno) => Err(KillError {
            container: container.to_owned(),
            pid: process.pid.as_raw(),
            signal,
            source: Errno::from_raw(errno),
        }),
    }
}
