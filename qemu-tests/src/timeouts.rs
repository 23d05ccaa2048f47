//! Timeouts for VM tests, sized for TCG on a loaded 2-core machine (two VMs plus a compile at once).

use std::time::Duration;

/// QEMU start to `keel: ready` over PVH direct boot (idle: ~4–5 s).
pub const PVH_READY: Duration = Duration::from_secs(180);
/// QEMU start to `keel: ready` through OVMF and systemd-boot (idle: ~15 s).
pub const OVMF_READY: Duration = Duration::from_secs(300);
/// Power button (or a stage 1 failure) to QEMU exiting by itself.
pub const SHUTDOWN: Duration = Duration::from_secs(60);
/// A container event (start, exit, a line of output) after `ready`; containers run under TCG too.
pub const CONTAINER: Duration = Duration::from_secs(120);
