//! The one shutdown function. Every way out of PID 1 ends here: signals, the power button, a failed stage 1, a
//! panic. It never returns and never panics: processes are ended, filesystems unmounted or made read-only, and
//! the machine powered off or rebooted.

use std::fmt;
use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::sleep;
use std::time::{Duration, Instant};

use keel_logs::error_chain;
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
/// How long sync and the unmounts may take before the machine goes down regardless.
const UNMOUNT_BUDGET: Duration = Duration::from_secs(10);
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
    let started = Instant::now();
    log::info!("shutdown: {} ({})", request.action, request.reason);
    // A bug in a step must not skip the steps that protect data, nor the reboot itself.
    let steps = panic::catch_unwind(AssertUnwindSafe(|| {
        services.stop_while_reaping(reaper);
        timed("ending the remaining processes", || end_all_processes(reaper));
        // A disk that stops answering must not keep the machine from going down: the step gets a budget.
        let finished = within(UNMOUNT_BUDGET, || {
            timed("unmounting", || {
                sync();
                unmount_all();
            })
        });
        if !finished {
            log::error!("unmounting did not finish within {UNMOUNT_BUDGET:?}; going on");
        }
    }));
    if steps.is_err() {
        log::error!("shutdown step failed; syncing and going on");
    }
    sync();
    let mode = match request.action {
        Action::PowerOff => RebootMode::RB_POWER_OFF,
        Action::Reboot => RebootMode::RB_AUTOBOOT,
    };
    let dropped = crate::logger::router().console_dropped();
    if dropped > 0 {
        log::info!("the console dropped {dropped} lines this boot");
    }
    let what = if mode == RebootMode::RB_POWER_OFF { "powering off" } else { "rebooting" };
    log::info!("{what} ({:.1} s after the request)", started.elapsed().as_secs_f64());
    // Bounded: a console that stopped draining must not keep the machine from going down.
    crate::logger::flush_console();
    let error = match reboot(mode) {
        Err(error) => error,
        Ok(never) => match never {},
    };
    log::error!("reboot(2) failed: {}; the machine stays halted here", error_chain(&error));
    loop {
        sleep(Duration::from_secs(3600));
    }
}

/// Runs one shutdown step and says on the console how long it took.
pub fn timed<T>(step: &str, run: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let result = run();
    log::info!("shutdown: {step}: {:.1} s", started.elapsed().as_secs_f64());
    result
}

/// Runs `step` on a thread of its own and waits at most `budget` for it; false if it did not finish (it is left
/// running). Runs it here, unbounded, only if no thread can be started.
fn within(budget: Duration, step: impl FnOnce() + Send + 'static) -> bool {
    let step = Arc::new(Mutex::new(Some(step)));
    let (done, finished) = std::sync::mpsc::channel();
    let for_thread = Arc::clone(&step);
    let spawned = std::thread::Builder::new().name("shutdown-step".into()).spawn(move || {
        if let Some(step) = for_thread.lock().unwrap_or_else(PoisonError::into_inner).take() {
            step();
        }
        let _ = done.send(());
    });
    match spawned {
        Ok(_) => finished.recv_timeout(budget).is_ok(),
        Err(error) => {
            log::warn!("cannot start a thread for a shutdown step ({}); nothing bounds it", error_chain(&error));
            if let Some(step) = step.lock().unwrap_or_else(PoisonError::into_inner).take() {
                step();
            }
            true
        }
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
                log::warn!("cannot unmount {}: {}", entry.mount_point, error_chain(&error));
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
        Err(error) => log::error!("cannot remount {mount_point} read-only: {}", error_chain(&error)),
    }
}
