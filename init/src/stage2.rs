//! Stage 2, in the real root: the runtime filesystems, cgroups, the data partition, host name and loopback.
//!
//! Every step here may fail without taking the host down: the failure is logged and the host goes on with
//! less, so that it always reaches `ready` and stays reachable.

use std::ffi::CStr;

use keel_config::{validate_hostname, DEFAULT_HOSTNAME};
use keel_os_image::slot::SLOT_PARAMETER;
use keel_supervisor::syslog::SyslogRelay;

use crate::boot_config::{self, BootConfig};
use crate::cmdline::KernelCmdline;
use crate::data_partition::DataPartitionError;
use crate::network::{host_files, HostName};
use crate::services::Services;
use crate::{cgroup, data_partition, logger, mounts, network, power_button, sys, timeline};

const LOOPBACK: &CStr = c"lo";

/// Brings the host up to `ready` and starts what runs beside the main loop.
pub fn run(cmdline: &KernelCmdline) -> Services {
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

    let config = boot_config::load();
    timeline::mark(&format!("config {}", config.source));
    let hostname = choose_hostname(&config);
    match SyslogRelay::start(&config.user_data.syslog, hostname.name.clone()) {
        Ok(Some(relay)) => logger::relay_to(relay),
        Ok(None) => {}
        Err(error) => log::error!("syslog relay: {error}"),
    }
    if let Err(error) = nix::unistd::sethostname(&hostname.name) {
        log::error!("cannot set the host name {:?}: {error}", hostname.name);
    }
    if let Err(error) = host_files::write_initial(&hostname.name) {
        log::error!("cannot write {}: {error}", host_files::GENERATED_ETC);
    }
    if let Err(error) = sys::set_link_up(LOOPBACK) {
        log::error!("cannot bring up lo: {error}");
    }

    if power_button::watch_power_buttons().is_empty() {
        log::warn!("no ACPI power button found: power off with SIGTERM or SIGPWR to PID 1");
    }

    let slot = cmdline.value(SLOT_PARAMETER).unwrap_or("?");
    let problems = match config.problems.len() {
        0 => String::new(),
        count => format!(", {count} config problems (see above)"),
    };
    log::info!(
        "ready: {}ms, slot {slot}, keel {}, host {}{problems}",
        timeline::uptime_ms(),
        env!("CARGO_PKG_VERSION"),
        hostname.name
    );

    let network = match network::start(config.user_data.network.clone(), hostname) {
        Ok(network) => Some(network),
        Err(error) => {
            log::error!("cannot start the network thread: {error}");
            None
        }
    };
    Services { network }
}

/// The user-data's host name, else the meta-data's, else the default (which DHCP may replace).
fn choose_hostname(config: &BootConfig) -> HostName {
    if let Some(name) = &config.user_data.host.hostname {
        return HostName { name: name.clone(), configured: true };
    }
    match config.meta_data.hostname.as_deref().map(|name| (name, validate_hostname(name))) {
        Some((name, Ok(()))) => HostName { name: name.to_owned(), configured: true },
        Some((_, Err(error))) => {
            log::error!("meta-data: {error}; using {DEFAULT_HOSTNAME}");
            HostName { name: DEFAULT_HOSTNAME.to_owned(), configured: false }
        }
        None => HostName { name: DEFAULT_HOSTNAME.to_owned(), configured: false },
    }
}
