//! The one shutdown function. Every way out of PID 1 ends here: signals, the power button, a failed stage 1, a
//! panic. It never returns and never panics: processes are ended, filesystems unmounted or made read-only, and
//! the machine powered off or rebooted.

use std::fmt;
use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::thread::sleep;
use std::time::{Duration, Instant};

use keel_runtime::Reaper;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::reboot::{reboot, RebootMode};
use nix::sys::signal::{kill, Signal};
use nix::unistd::{sync, Pid};

use crate::mountinfo::read_mounts;
use crate::services::Services;

/// How long processes get to exit after SIGTERM before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(5);
/// How long to wait for processes to vanish after SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(2);
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// `PF_KTHREAD` in the flags field of /proc/PID/stat: kernel threads, which signals do not end.
const PF_KTHREAD: u64 = 0x0020_0000;

/// How the machine ends up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    PowerOff,
    Reboot,
}

/// What to do and why, for the console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShutdownRequest {
    pub action: Action,
    pub reason: String,
}

impl ShutdownRequest {
    pub fn new(action: Action, reason: impl Into<String>) -> Self {
        ShutdownRequest { action, reason: reason.into() }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::PowerOff => "power off",
            Action::Reboot => "reboot",
        })
    }
}

/// Stops the services, ends every process and powers off or reboots. Never returns. `reaper` is the one the
/// services spawned their children with, so that their exits still reach them.
pub fn shutdown(request: ShutdownRequest, services: Services, reaper: &Reaper) -> ! {
    log::info!("shutdown: {} ({})", request.action, request.reason);
    // A bug in a step must not skip the steps that protect data, nor the reboot itself.
    let steps = panic::catch_unwind(AssertUnwindSafe(|| {
        services.stop_while_reaping(reaper);
        end_all_processes(reaper);
        sync();
        unmount_all();
    }));
    if steps.is_err() {
        log::error!("shutdown step failed; syncing and going on");
    }
    sync();
    let mode = match request.action {
        Action::PowerOff => RebootMode::RB_POWER_OFF,
        Action::Reboot => RebootMode::RB_AUTOBOOT,
    };
    log::info!("{}", if mode == RebootMode::RB_POWER_OFF { "powering off" } else { "rebooting" });
    let dropped = crate::logger::router().console_dropped();
    if dropped > 0 {
        log::info!("the console dropped {dropped} lines this boot");
    }
    // Bounded: a console that stopped draining must not keep the machine from going down.
    crate::logger::flush_console();
    let error = match reboot(mode) {
        Err(error) => error,
        Ok(never) => match never {},
    };
    log::error!("reboot(2) failed: {error}; the machine stays halted here");
    loop {
        sleep(Duration::from_secs(3600));
    }
}

/// SIGTERM to every process, a grace period, then SIGKILL to what is left; exits are collected meanwhile.
fn end_all_processes(reaper: &Reaper) {
    if user_processes_left() == 0 {
        return;
    }
    let _ = kill(Pid::from_raw(-1), Signal::SIGTERM);
    if wait_until_no_processes(reaper, TERM_GRACE) {
        return;
    }
    log::warn!("{} processes ignored SIGTERM for {TERM_GRACE:?}; sending SIGKILL", user_processes_left());
    let _ = kill(Pid::from_raw(-1), Signal::SIGKILL);
    if !wait_until_no_processes(reaper, KILL_GRACE) {
        log::warn!("{} processes survived SIGKILL", user_processes_left());
    }
}

fn wait_until_no_processes(reaper: &Reaper, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        reaper.reap_all();
        if user_processes_left() == 0 {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        sleep(POLL_INTERVAL);
    }
}

/// Processes other than PID 1 and kernel threads. `kill(-1, 0)` cannot tell: it counts kernel threads too.
fn user_processes_left() -> usize {
    let Ok(entries) = fs::read_dir("/proc") else { return 0 };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != 1)
        .filter(|pid| {
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // The command name may hold spaces and parentheses; the fields after its last ')' are fixed.
            let flags = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(6)?.parse::<u64>().ok());
            matches!(flags, Some(flags) if flags & PF_KTHREAD == 0)
        })
        .count()
}

/// Unmounts everything in reverse mount order; what stays busy and holds data is made read-only.
fn unmount_all() {
    for entry in read_mounts().iter().rev().filter(|entry| entry.mount_point != "/") {
        match umount2(entry.mount_point.as_str(), MntFlags::empty()) {
            Ok(()) if entry.is_block_backed() => log::info!("unmounted {} ({})", entry.mount_point, entry.source),
            Ok(()) => {}
            Err(error) if entry.is_block_backed() => {
                log::warn!("cannot unmount {}: {error}", entry.mount_point);
                remount_read_only(&entry.mount_point);
            }
            // Kernel filesystems that stay busy (the console keeps /dev open) hold no data.
            Err(_) => {}
        }
    }
    remount_read_only("/");
}

fn remount_read_only(mount_point: &str) {
    let flags = MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
    match mount(None::<&str>, mount_point, None::<&str>, flags, None::<&str>) {
        Ok(()) => log::info!("remounted {mount_point} read-only"),
        Err(error) => log::error!("cannot remount {mount_point} read-only: {error}"),
    }
}
