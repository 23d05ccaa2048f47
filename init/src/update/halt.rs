//! `keel.update_halt=<point>` on the kernel command line stops an install for good at that point, as a power cut
//! there would: the acceptance tests kill the machine while it waits and check that it boots the old version. The
//! points are where the disk holds a state worth testing; without the parameter nothing stops.

use std::time::Duration;

use crate::cmdline::KernelCmdline;

/// The kernel command line parameter.
pub const HALT_PARAMETER: &str = "keel.update_halt";

/// Where an install can be halted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HaltPoint {
    /// The inactive slot's entries are gone and half of the root image is written into its partition.
    RootHalfWritten,
    /// The kernel is on the ESP under its final name; the initramfs and the entry are not.
    AfterKernel,
    /// Kernel and initramfs are in place; the entry is not written.
    BeforeEntry,
}

impl HaltPoint {
    fn name(self) -> &'static str {
        match self {
            HaltPoint::RootHalfWritten => "root-half-written",
            HaltPoint::AfterKernel => "after-kernel",
            HaltPoint::BeforeEntry => "before-entry",
        }
    }
}

/// Never returns when the command line asks to halt at `point`; returns at once otherwise.
pub fn halt_if_asked(point: HaltPoint) {
    if KernelCmdline::read().value(HALT_PARAMETER) != Some(point.name()) {
        return;
    }
    log::warn!("update: halted {} ({HALT_PARAMETER}): this install goes no further", point.name());
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
