//! Boot assessment: a boot from a counted entry is a trial, and PID 1's health gate decides whether it stays.
//!
//! systemd-boot counts down a counted entry (`keel-<version>-<slot>+LEFT[-DONE].conf`) on every attempt and falls
//! back to the other slot's entry once no tries are left. A kernel or init that never reaches this gate is caught
//! that way. Once PID 1 runs, the gate (a thread of its own) watches the supervisor's status: every `required`
//! container ready (running, and healthy where it has a health check) without a break for `[update]
//! health_window`, within `[update] health_timeout` from the gate's start. With no required container it passes as
//! soon as the supervisor runs. Then PID 1's API must answer (`api_probe`), within the same timeout. Pass: the
//! entry is renamed without its counter (blessed). Fail: it is renamed to `+0-DONE` (no tries left) and the main
//! loop is asked to reboot; systemd-boot then boots the other slot. Either way the outcome is written to
//! `last-boot.json`, and the next boot reports a rollback once.

mod api_probe;
mod esp;
mod gate;
mod record;
mod trial;

use std::path::Path;
use std::sync::Arc;
use std::thread::{self, sleep};
use std::time::{Duration, Instant};

use keel_api::update::RollbackReport;
use keel_config::UpdateConfig;
use keel_logs::error_chain;
use keel_os_image::boot_entry::BootEntryName;
use keel_supervision::SupervisorHandle;

use self::gate::{HealthGate, Verdict};
use self::record::{Outcome, TrialRecord, LAST_BOOT};
pub use self::trial::BootKind;
use crate::shutdown::{Action, ShutdownRequest};
use crate::shutdown_mailbox::ShutdownMailbox;

/// How often the gate looks at the containers' status (a snapshot: it costs the supervisor nothing).
const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// Each read and write of the API's `_ping`: it answers in milliseconds when it works.
const PING_TIMEOUT: Duration = Duration::from_secs(5);

/// Says what kind of boot this is and, on a trial, starts the health gate on its own thread: the containers, then
/// the API on `api_socket`. The gate asks for the reboot of a failed trial through `mailbox`.
pub fn start_gate(
    boot: BootKind,
    supervisor: Option<Arc<SupervisorHandle>>,
    update: &UpdateConfig,
    api_socket: &Path,
    mailbox: Arc<ShutdownMailbox>,
) {
    log::info!("boot assessment: {boot}");
    let BootKind::Trial(entry) = boot else { return };
    let api_socket = api_socket.to_path_buf();
    let (window, timeout) = (update.health_window, update.health_timeout);
    log::info!(
        "health gate: every required container ready for {window:?} without a break, and the API answering, \
         within {timeout:?}"
    );
    let spawned = thread::Builder::new().name("health-gate".to_owned()).spawn(move || {
        let verdict = match supervisor {
            Some(supervisor) => hold(&supervisor, &api_socket, window, timeout),
            None => Verdict::Failed { reason: "the supervisor did not start".to_owned(), containers: Vec::new() },
        };
        conclude(&entry, verdict, &mailbox);
    });
    if let Err(error) = spawned {
        log::error!("cannot start the health gate: {}; the boot counter alone decides this trial", error_chain(&error));
    }
}

/// Watches the supervisor until the gate passes or fails, printing what changes; once the containers pass, the API
/// on `api_socket` must answer too, within the same timeout.
fn hold(supervisor: &SupervisorHandle, api_socket: &Path, window: Duration, timeout: Duration) -> Verdict {
    let started = Instant::now();
    let mut gate = HealthGate::new(window, timeout, started);
    let mut api_error: Option<String> = None;
    loop {
        let (progress, verdict) = gate.observe(Instant::now(), &supervisor.status());
        for line in progress {
            log::info!("health gate: {line}");
        }
        let Verdict::Passed { reason } = verdict else {
            if verdict != Verdict::Waiting {
                return verdict;
            }
            sleep(POLL_INTERVAL);
            continue;
        };
        let api = api_socket.display();
        match api_probe::ping(api_socket, PING_TIMEOUT) {
            Ok(()) => return Verdict::Passed { reason: format!("{reason}; the API answers on {api}") },
            Err(error) => {
                if api_error.as_ref() != Some(&error) {
                    log::warn!("health gate: the API on {api} does not answer: {error}");
                }
                if started.elapsed() >= timeout {
                    let reason = format!("timed out after {timeout:?}: the API on {api} did not answer: {error}");
                    return Verdict::Failed { reason, containers: Vec::new() };
                }
                api_error = Some(error);
            }
        }
        sleep(POLL_INTERVAL);
    }
}

/// Blesses the entry, or marks it bad and asks for the reboot; records the outcome either way.
fn conclude(entry: &BootEntryName, verdict: Verdict, mailbox: &ShutdownMailbox) {
    let (outcome, reason, containers) = match verdict {
        Verdict::Passed { reason } => (Outcome::Passed, reason, Vec::new()),
        Verdict::Failed { reason, containers } => (Outcome::Failed, reason, containers),
        Verdict::Waiting => return,
    };
    let renamed = match outcome {
        Outcome::Passed => {
            log::info!("health gate passed: {reason}");
            esp::rename_entry(entry, BootEntryName::blessed)
        }
        Outcome::Failed => {
            log::error!("health gate failed: {reason}");
            for container in &containers {
                log::error!("health gate: {}: {}", container.name, container.condition);
            }
            esp::rename_entry(entry, BootEntryName::marked_bad)
        }
    };
    let renamed_to = match renamed {
        Ok((from, to)) => {
            let what = if outcome == Outcome::Passed { "blessed" } else { "marked bad" };
            log::info!("health gate: entry {from} {what}: now {to}");
            Some(to)
        }
        Err(error) => {
            // Unrenamed, the entry stays counted: systemd-boot tries it until its counter runs out.
            log::error!("health gate: {}; the boot counter decides instead", error_chain(&error));
            None
        }
    };
    let record = TrialRecord {
        entry: entry.to_string(),
        version: entry.version.clone(),
        slot: entry.slot.to_string(),
        outcome,
        reason,
        containers,
        renamed_to,
        rollback_reported: false,
    };
    if let Err(error) = record.write(Path::new(LAST_BOOT)) {
        log::error!("health gate: {}", error_chain(&error));
    }
    if outcome == Outcome::Failed {
        let request = format!("the trial boot of {entry} failed its health gate; the boot loader falls back");
        mailbox.ask(ShutdownRequest::new(Action::Reboot, request));
    }
}

/// Whether the health gate has kept the trial boot of `entry`: its record says it passed. Until then an update
/// must not replace the other slot, the trial's fallback.
pub fn trial_kept(entry: &BootEntryName) -> bool {
    match TrialRecord::read(Path::new(LAST_BOOT)) {
        Ok(Some(record)) => record.entry == entry.to_string() && record.outcome == Outcome::Passed,
        _ => false,
    }
}

/// If the boot before this one was a trial that failed, says so once: from which version and entry, and why; and
/// returns that rollback for the API's status.
pub fn report_previous_trial(boot: &BootKind) -> Option<RollbackReport> {
    let path = Path::new(LAST_BOOT);
    let mut record = match TrialRecord::read(path) {
        Ok(Some(record)) if record.outcome == Outcome::Failed && !record.rollback_reported => record,
        Ok(_) => return None,
        Err(error) => {
            log::warn!("boot assessment: {}", error_chain(&error));
            return None;
        }
    };
    let now_on = match boot.entry() {
        Some(entry) => format!("now on keel {} (slot {}, entry {entry})", entry.version, entry.slot),
        None => format!("now: {boot}"),
    };
    log::warn!(
        "rolled back: the trial boot of keel {} (slot {}, entry {}) failed its health gate: {}; {now_on}",
        record.version,
        record.slot,
        record.entry,
        record.reason
    );
    for container in &record.containers {
        log::warn!("rolled back: {}: {}", container.name, container.condition);
    }
    record.rollback_reported = true;
    if let Err(error) = record.write(path) {
        log::warn!("boot assessment: {}", error_chain(&error));
    }
    // The status names each container the gate held against the boot, and its state then.
    let mut reason = record.reason;
    for container in &record.containers {
        reason.push_str(&format!("; {}: {}", container.name, container.condition));
    }
    Some(RollbackReport { from_version: record.version, reason })
}
