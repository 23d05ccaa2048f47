//! Stage 2, in the real root: the runtime filesystems, cgroups, the data partition, the config, host name and
//! loopback up to `ready`; then the network and the containers.
//!
//! Every step here may fail without taking the host down: the failure is logged and the host goes on with
//! less, so that it always reaches `ready` and stays reachable.

use std::ffi::CStr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use keel_api::server::host::{ConfigSnapshot, HostControl};
use keel_api::server::ApiHooks;
use keel_config::generations::GenerationStore;
use keel_config::{validate_hostname, DEFAULT_HOSTNAME};
use keel_logs::error_chain;
use keel_logs::syslog::SyslogRelay;
use keel_os_image::slot::SLOT_PARAMETER;
use keel_runtime::Reaper;
use keel_supervision::{Supervisor, SupervisorHandle, SupervisorOptions};

use crate::boot_config::{self, BootConfig};
use crate::cmdline::KernelCmdline;
use crate::data_partition::DataPartitionError;
use crate::host_control::{KeelHost, PowerTarget};
use crate::network::{host_files, HostName};
use crate::services::Services;
use crate::shutdown_mailbox::ShutdownMailbox;
use crate::update::{self, HostUpdates, InstallPolicy};
use crate::update_channel;
use crate::{
    api, boot_assessment, cgroup, data_partition, kernel_log, logger, modules, mounts, network, power_button, sys,
    timeline,
};

const LOOPBACK: &CStr = c"lo";

/// Where keel keeps its state on the data partition: images, layers, containers, volumes, config generations.
const STATE_DIR: &str = "/var/lib/keel";
/// Image archives the OS image carries (`keel-build image --preload`), imported at boot.
const PRELOADED_IMAGES: &str = "/usr/share/keel/images";

/// Brings the host up to `ready` and starts what runs beside the main loop; a thread that needs the host down
/// asks through `mailbox`.
pub fn run(cmdline: &KernelCmdline, reaper: Arc<Reaper>, mailbox: &Arc<ShutdownMailbox>) -> Services {
    timeline::mark("stage2-started");
    if let Err(error) = mounts::mount_kernel_filesystems().and_then(|()| mounts::mount_runtime_filesystems()) {
        log::error!("{}", error_chain(&error));
    }

    // The data partition's mount waits on disk reads; the cgroup setup meanwhile keeps the CPU busy.
    let data = std::thread::Builder::new().name("mount-data".to_owned()).spawn(data_partition::mount_data_partition);

    match cgroup::set_up() {
        Ok(controllers) => timeline::mark(&format!("cgroups {}", controllers.join(","))),
        Err(error) => log::error!("cgroups: {}", error_chain(&error)),
    }

    let data = match data {
        Ok(thread) => thread.join().unwrap_or(Err(DataPartitionError::Panicked)),
        // Without a thread, mount it here.
        Err(_) => data_partition::mount_data_partition(),
    };
    match data {
        Ok(device) => timeline::mark(&format!("data-mounted {device}")),
        Err(error) => {
            log::error!("data partition: {}; /var is in memory and will not survive a reboot", error_chain(&error));
            if let Err(error) = data_partition::mount_volatile_var() {
                log::error!("{}", error_chain(&error));
            }
        }
    }

    let config = boot_config::load();
    timeline::mark(&format!("config {}", config.source));
    let hostname = choose_hostname(&config);
    match SyslogRelay::start(&config.user_data.syslog, hostname.name.clone()) {
        Ok(Some(relay)) => {
            logger::router().replace_relay(Some(relay));
        }
        Ok(None) => {}
        Err(error) => log::error!("syslog relay: {}", error_chain(&error)),
    }
    kernel_log::start();
    // After the relay starts, so the receiver sees them too.
    for warning in &config.user_data.warnings {
        log::warn!("{warning}");
    }
    if let Err(error) = nix::unistd::sethostname(&hostname.name) {
        log::error!("cannot set the host name {:?}: {}", hostname.name, error_chain(&error));
    }
    if let Err(error) = host_files::write_initial(&hostname.name) {
        log::error!("cannot write {}: {}", host_files::GENERATED_ETC, error_chain(&error));
    }
    if let Err(error) = sys::set_link_up(LOOPBACK) {
        log::error!("cannot bring up lo: {}", error_chain(&error));
    }

    if power_button::watch_power_buttons().is_empty() {
        log::warn!("no ACPI power button found: power off with SIGTERM or SIGPWR to PID 1");
    }

    // Which entry booted, and whether the boot before this one was a trial that failed: said before `ready`.
    let boot = boot_assessment::BootKind::read();
    let rollback = boot_assessment::report_previous_trial(&boot);

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

    match modules::load_late_modules() {
        Ok(loaded) => timeline::mark(&format!("late-modules-loaded {loaded}")),
        Err(error) => log::error!("{}", error_chain(&error)),
    }
    let network = match network::start(config.user_data.network.clone(), hostname) {
        Ok(network) => Some(network),
        Err(error) => {
            log::error!("cannot start the network thread: {}", error_chain(&error));
            None
        }
    };
    let supervisor = start_supervisor(reaper, &config).map(Arc::new);
    let progress = Arc::new(update::Progress::default());
    update_channel::start(&config.user_data.update, boot.clone(), Arc::clone(&progress), Arc::clone(mailbox));
    let updates = HostUpdates {
        progress,
        policy: InstallPolicy { allow_downgrade: config.user_data.update.allow_downgrade },
        slot: slot.parse().ok(),
        boot: boot.clone(),
        rollback,
        mailbox: Arc::clone(mailbox),
    };
    let api_socket = Path::new(api::PID1_SOCKET);
    boot_assessment::start_gate(boot, supervisor.clone(), &config.user_data.update, api_socket, Arc::clone(mailbox));
    let hooks = ApiHooks { host: Some(pid1_host(&config, mailbox)), update: Some(Arc::new(updates)) };
    let api = supervisor
        .as_ref()
        .and_then(|supervisor| api::start(api_socket, &config.user_data.api, Arc::clone(supervisor), hooks));
    Services { network, supervisor, api }
}

/// What the API reaches of PID 1: the boot's config and its generations, and the shutdown path.
fn pid1_host(config: &BootConfig, mailbox: &Arc<ShutdownMailbox>) -> Arc<dyn HostControl> {
    // Already opened (and any failure reported) by the boot config; a failure here leaves PUT refusing.
    let generations = GenerationStore::open(boot_config::GENERATIONS_DIR).ok();
    let current =
        ConfigSnapshot { text: config.text.clone(), generation: config.generation, rejected: config.rejected.clone() };
    Arc::new(KeelHost::new(generations, current, PowerTarget::Pid1(Arc::clone(mailbox))))
}

/// Starts the containers of the config (after `ready`: importing preloaded images and pulls take their time).
fn start_supervisor(reaper: Arc<Reaper>, config: &BootConfig) -> Option<SupervisorHandle> {
    let mut options = SupervisorOptions::new(STATE_DIR);
    options.cgroup_root = Some(PathBuf::from(cgroup::CGROUP_ROOT));
    options.preloaded_images = Some(PathBuf::from(PRELOADED_IMAGES));
    options.log_sinks.push(logger::router().clone());
    match Supervisor::start(options, reaper, &config.user_data) {
        Ok(supervisor) => Some(supervisor),
        Err(error) => {
            log::error!("cannot start the supervisor: {}", error_chain(&error));
            None
        }
    }
}

/// The user-data's host name, else the meta-data's, else the default (which DHCP may replace).
fn choose_hostname(config: &BootConfig) -> HostName {
    if let Some(name) = &config.user_data.host.hostname {
        return HostName { name: name.clone(), configured: true };
    }
    match config.meta_data.hostname.as_deref().map(|name| (name, validate_hostname(name))) {
        Some((name, Ok(()))) => HostName { name: name.to_owned(), configured: true },
        Some((_, Err(error))) => {
            log::error!("meta-data: {}; using {DEFAULT_HOSTNAME}", error_chain(&error));
            HostName { name: DEFAULT_HOSTNAME.to_owned(), configured: false }
        }
        None => HostName { name: DEFAULT_HOSTNAME.to_owned(), configured: false },
    }
}
