//! How a thread of PID 1 asks the main loop for a shutdown: the request waits here, and SIGUSR1 wakes the main
//! loop to take it, the way the power button's thread reaches it with SIGPWR.

use std::sync::{Mutex, PoisonError};

use keel_logs::error_chain;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::shutdown::ShutdownRequest;

/// The signal that tells the main loop a request is waiting. A SIGUSR1 with no request waiting is ignored:
/// nothing outside PID 1 can ask for a shutdown this way.
pub const WAKE_SIGNAL: Signal = Signal::SIGUSR1;

/// One pending shutdown request; the first one asked for wins.
#[derive(Debug, Default)]
pub struct ShutdownMailbox {
    request: Mutex<Option<ShutdownRequest>>,
}

impl ShutdownMailbox {
    /// Leaves `request` for the main loop and wakes it. Returns at once; the shutdown happens on the main thread.
    pub fn ask(&self, request: ShutdownRequest) {
        let mut waiting = self.request.lock().unwrap_or_else(PoisonError::into_inner);
        if waiting.is_none() {
            *waiting = Some(request);
        }
        drop(waiting);
        if let Err(error) = kill(Pid::this(), WAKE_SIGNAL) {
            log::error!("cannot wake PID 1's main loop for a shutdown: {}", error_chain(&error));
        }
    }

    /// The waiting request, if any.
    pub fn take(&self) -> Option<ShutdownRequest> {
        self.request.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}
