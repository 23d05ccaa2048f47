//! Stage 2, in the real root: the runtime filesystems, cgroups, the data partition, host name and loopback.
//!
//! Every step here may fail without taking the host down: the failure is logged and the host goes on with
//! less, so that it always reaches `ready` and stays reachable.

use std::ffi::CStr;

use keel_config::DEFAULT_HOSTNAME;
use keel_os_image::slot::SLOT_PARAMETER;

use crate::cmdline::KernelCmdline;
use crate::data_partition::DataPartitionError;
use crate::{cgroup, data_partition, mounts, power_button, sys, timeline};

const LOOPBACK: &CStr = c"lo";

/// Brings the host up to `ready`.
pub fn run(cmdline: &KernelCmdline) {
    timeline::mark("stage2-started");
    if let Err(error) = mounts::mount_kernel_filesystems().and_then(|()| mounts::mount_runtime_filesystems()) {
        log::error!("{error}");
    }

    // The data partition's mount waits on disk reads; the cgroup setup meanwhile keeps the CPU busy.
    let data = std::thread::Builder::new().name("mount-data".to_owned()).spawn(data_partition::mount_data_partition);

    match cgroup::set_up() {
        Ok(controllers) => timeline::mark(&format!("cgroups {}", controllers.join(","))),
        Err(error) => log::error!("cgroups: {error}"),
    }

    let data = match data {
        Ok(thread) => thread.join().unwrap_or(Err(DataPartitionError::Panicked)),
        // Without a thread, mount it here.
        Err(_) => data_partition::mount_data_partition(),
    };
    match data {
        Ok(device) => timeline::mark(&format!("data-mounted {device}")),
        Err(error) => {
            log::error!("data partition: {error}; /var is in memory and will not survive a reboot");
            if let Err(error) = data_partition::mount_volatile_var() {
                log::error!("{error}");
            }
        }
    }

    if let Err(error) = nix::unistd::sethostname(DEFAULT_HOSTNAME) {
        log::error!("cannot set the host name {DEFAULT_HOSTNAME:?}: {error}");
    }
    if let Err(error) = sys::set_link_up(LOOPBACK) {
        log::error!("cannot bring up lo: {error}");
    }

    if power_button::watch_power_buttons().is_empty() {
        log::warn!("no ACPI power button found: power off with SIGTERM or SIGPWR to PID 1");
    }

    let slot = cmdline.value(SLOT_PARAMETER).unwrap_or("?");
    log::info!(
        "ready: {}ms, slot {slot}, keel {}, host {DEFAULT_HOSTNAME}",
        timeline::uptime_ms(),
        env!("CARGO_PKG_VERSION")
    );
}
