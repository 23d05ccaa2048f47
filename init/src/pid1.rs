//! PID 1's main loop: one blocking read of the signalfd, one match on the signal, until a shutdown is asked for.

use keel_logs::error_chain;
use keel_runtime::Reaper;
use nix::sys::signal::Signal;
use nix::sys::signalfd::SignalFd;

use crate::shutdown::{Action, ShutdownRequest};
use crate::shutdown_mailbox::{ShutdownMailbox, WAKE_SIGNAL};

/// Runs until a signal, or a thread of PID 1 through `mailbox`, asks for shutdown, reaping every child on the way;
/// returns that request.
pub fn main_loop(signals: &SignalFd, reaper: &Reaper, mailbox: &ShutdownMailbox) -> ShutdownRequest {
    loop {
        let signal = match signals.read_signal() {
            Ok(Some(info)) => Signal::try_from(info.ssi_signo as i32),
            Ok(None) | Err(nix::Error::EINTR) => continue,
            Err(error) => {
                return ShutdownRequest::new(Action::Reboot, format!("cannot read signals: {}", error_chain(&error)))
            }
        };
        match signal {
            // One SIGCHLD can stand for many exits.
            Ok(Signal::SIGCHLD) => {
                reaper.reap_all();
            }
            Ok(Signal::SIGTERM) => return ShutdownRequest::new(Action::PowerOff, "SIGTERM"),
            Ok(Signal::SIGPWR) => return ShutdownRequest::new(Action::PowerOff, "SIGPWR (power button or UPS)"),
            // With Ctrl-Alt-Del disabled in the kernel, the key combination arrives as SIGINT.
            Ok(Signal::SIGINT) => return ShutdownRequest::new(Action::Reboot, "Ctrl-Alt-Del"),
            Ok(signal) if signal == WAKE_SIGNAL => match mailbox.take() {
                Some(request) => return request,
                None => log::debug!("ignoring {signal}: no shutdown was asked for"),
            },
            Ok(other) => log::debug!("ignoring {other}"),
            Err(_) => log::debug!("ignoring a real-time signal"),
        }
    }
}
