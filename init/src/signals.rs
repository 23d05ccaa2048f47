//! PID 1's signals: all blocked, all read from one signalfd by the main loop.

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

/// Signals that mean this process itself faulted. Blocking them would turn a crash into an endless loop of
/// re-executed faulting instructions, so they stay deliverable (and a real fault ends in the kernel's panic,
/// which no code of ours could prevent anyway).
const FAULT_SIGNALS: [Signal; 7] =
    [Signal::SIGFPE, Signal::SIGILL, Signal::SIGSEGV, Signal::SIGBUS, Signal::SIGABRT, Signal::SIGTRAP, Signal::SIGSYS];

/// Blocks every other signal on the calling thread and returns a signalfd that reads them. Call it before
/// starting any thread, so that every thread inherits the mask and signals queue for the signalfd only.
pub fn block_all_into_signalfd() -> nix::Result<SignalFd> {
    let mut mask = SigSet::all();
    for signal in FAULT_SIGNALS {
        mask.remove(signal);
    }
    mask.thread_block()?;
    SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC)
}
