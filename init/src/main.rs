//! `keel`, PID 1 of a keel host.
//!
//! # Background
//! The same static binary runs twice per boot. As `/init` in the initramfs (stage 1) it loads the kernel modules
//! the image builder listed, finds the root slot the boot loader chose (`keel.slot=`), mounts it read-only and
//! switches to it. As `/sbin/init` of that root (stage 2) it sets up the runtime filesystems, cgroup2, the data
//! partition, host name and loopback, prints `keel: ready`, starts the network and the container supervisor (from
//! the config drive's user-data), and then runs the main loop until shutdown.
//!
//! # Design
//! One process, one main thread: it blocks every signal, reads them from a signalfd, reaps every child
//! (`keel_runtime::Reaper`) and returns a shutdown request when asked; `shutdown::shutdown` is the only way
//! out, also after a failed stage 1 or a panic. PID 1 never exits: an exit would be a kernel panic.
//!
//! Signals: SIGTERM and SIGPWR (also the ACPI power button) power off, SIGINT (Ctrl-Alt-Del) reboots, SIGUSR1
//! takes the request a thread of PID 1 left in the `ShutdownMailbox` (the health gate's reboot after a failed
//! trial boot).
//! Kernel parameters: `keel.slot=a|b` (required), `keel.rootwait=<seconds>` (default 10), `keel.debug`.
//!
//! Not PID 1, the binary has two development and bench modes: `keel supervise` (the supervisor on an ordinary
//! host, `supervise.rs`) and `keel run` (one container to its exit, `run.rs`); anything else prints what it is
//! and exits with status 100 (usage).
//!
//! # Current limitations
//! No update channel yet: an install (`update/`) starts from the API (`keelctl update`), and a trial boot's health
//! gate blesses or rolls back the entry it wrote.

use keel_logs::error_chain;

mod api;
mod block;
mod boot_assessment;
mod boot_config;
mod boot_disk;
mod cgroup;
mod cmdline;
mod config_drive;
mod data_partition;
mod efi_vars;
mod fs_label;
mod gpt;
mod host_control;
mod kernel_log;
mod logger;
mod modules;
mod mountinfo;
mod mounts;
mod network;
mod pid1;
mod power_button;
mod run;
mod services;
mod shutdown;
mod shutdown_mailbox;
mod signals;
mod stage1;
mod stage2;
mod supervise;
mod switch_root;
mod sys;
mod timeline;
mod update;
mod update_channel;

use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use keel_os_image::initramfs::INITRD_RELEASE;
use keel_runtime::Reaper;

use crate::cmdline::KernelCmdline;
use crate::services::Services;
use crate::shutdown::{shutdown, Action, ShutdownRequest};
use crate::shutdown_mailbox::ShutdownMailbox;

/// Exit status when run as anything but PID 1.
const EXIT_USAGE: u8 = 100;

fn main() -> ExitCode {
    logger::init(false);
    if std::process::id() != 1 {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let code = match args.split_first().map(|(first, rest)| (first.as_str(), rest)) {
            Some(("supervise", rest)) => Some(supervise::main(rest)),
            Some(("run", rest)) => Some(run::main(rest)),
            _ => None,
        };
        if let Some(code) = code {
            logger::flush_console();
            return code;
        }
        eprintln!("keel {}: PID 1 of a keel host; boot it as the init of a keel image", env!("CARGO_PKG_VERSION"));
        return ExitCode::from(EXIT_USAGE);
    }
    panic::set_hook(Box::new(|info| log::error!("panic: {info}")));
    // The one reaper: the main loop drives it, services spawn through it, and the shutdown keeps driving it.
    let reaper = Arc::new(Reaper::new());
    let mut services = Services::default();
    let request = panic::catch_unwind(AssertUnwindSafe(|| run_as_pid1(&mut services, &reaper)))
        .unwrap_or_else(|_| ShutdownRequest::new(Action::Reboot, "PID 1 panicked"));
    shutdown(request, services, &reaper)
}

/// Runs the stage this boot is at; returns when the host must go down, leaving what it started in `services`.
fn run_as_pid1(services: &mut Services, reaper: &Arc<Reaper>) -> ShutdownRequest {
    if Path::new(INITRD_RELEASE).exists() {
        let error = match stage1::run() {
            Err(error) => error,
            Ok(never) => match never {},
        };
        log::error!("stage 1 failed: {}", error_chain(&error));
        return ShutdownRequest::new(Action::Reboot, "stage 1 failed; the boot loader can fall back to the other slot");
    }

    // Before any thread starts, so that every thread inherits the blocked mask.
    let signals = match signals::block_all_into_signalfd() {
        Ok(signals) => signals,
        Err(error) => {
            return ShutdownRequest::new(
                Action::Reboot,
                format!("cannot set up signal handling: {}", error_chain(&error)),
            )
        }
    };
    if let Err(error) = nix::sys::reboot::set_cad_enabled(false) {
        log::warn!("cannot route Ctrl-Alt-Del to PID 1: {}", error_chain(&error));
    }
    let cmdline = KernelCmdline::read();
    logger::init(cmdline.has(logger::DEBUG_PARAMETER));
    // Threads of PID 1 (the health gate of a trial boot) ask the main loop for a shutdown through it.
    let mailbox = Arc::new(ShutdownMailbox::default());
    *services = stage2::run(&cmdline, Arc::clone(reaper), &mailbox);
    pid1::main_loop(&signals, reaper, &mailbox)
}
