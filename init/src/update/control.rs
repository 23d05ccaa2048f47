//! PID 1's side of the API's update endpoints ([`keel_api::server::UpdateControl`]): starts an install on a
//! thread of its own once the bundle's head verified, rolls back, and reports slot, boot and progress. Reboots go
//! through the main loop's one shutdown path (the [`ShutdownMailbox`]).

use std::sync::Arc;
use std::time::Duration;

use keel_api::server::{StartedInstall, UpdateControl, UpdateRefusal};
use keel_api::update::{BootStatus, RollbackReport, UpdateStatus};
use keel_logs::error_chain;
use keel_os_image::Slot;

use super::install::{self, InstallError, InstallPolicy};
use super::progress::Progress;
use super::rollback::{self, RollbackError};
use super::running::RunningHostError;
use super::source::{SourceError, UpdateSource};
use crate::boot_assessment::BootKind;
use crate::shutdown::{Action, ShutdownRequest};
use crate::shutdown_mailbox::ShutdownMailbox;

/// Between a finished install or a rollback and the reboot asked for with it: clients read the reply, or the
/// finished progress, before the API closes.
const REBOOT_GRACE: Duration = Duration::from_secs(2);

/// PID 1's updates, as the API reaches them.
pub struct HostUpdates {
    pub progress: Arc<Progress>,
    pub policy: InstallPolicy,
    pub slot: Option<Slot>,
    pub boot: BootKind,
    /// The failed trial the boot before this one rolled back from, if any.
    pub rollback: Option<RollbackReport>,
    pub mailbox: Arc<ShutdownMailbox>,
}

impl UpdateControl for HostUpdates {
    fn install(&self, source: &str, reboot: bool) -> Result<StartedInstall, UpdateRefusal> {
        let source = UpdateSource::parse(source).map_err(|error| UpdateRefusal::Invalid(error_chain(&error)))?;
        let bundle = match install::open(&source, &self.policy) {
            Ok(bundle) => bundle,
            Err(error) => {
                log::error!("update: {}", error_chain(&error));
                return Err(refusal(&error));
            }
        };
        let version = bundle.version().to_owned();
        let progress = Arc::clone(&self.progress);
        let mailbox = Arc::clone(&self.mailbox);
        let (outcome_sender, outcome) = tokio::sync::oneshot::channel();
        bundle.announce(&self.progress);
        let spawned = std::thread::Builder::new().name("update".to_owned()).spawn(move || {
            let result = bundle.write_announced(&progress);
            // Nobody waits unless the request asked to.
            let _ = outcome_sender.send(result.as_ref().map(|_| ()).map_err(refusal));
            if let (Ok(installed), true) = (result, reboot) {
                log::info!("update: rebooting into keel {} in {REBOOT_GRACE:?}", installed.version);
                let reason =
                    format!("keel {} installed in slot {}; rebooting into it", installed.version, installed.slot);
                reboot_after(&mailbox, REBOOT_GRACE, reason);
            }
        });
        match spawned {
            Ok(_) => Ok(StartedInstall { version, outcome }),
            Err(error) => {
                let message = format!("cannot start the install's thread: {}", error_chain(&error));
                self.progress.fail(message.clone());
                Err(UpdateRefusal::Failed(message))
            }
        }
    }

    fn rollback(&self) -> Result<String, UpdateRefusal> {
        let Some(running) = self.boot.entry() else {
            return Err(UpdateRefusal::Conflict(error_chain(&RollbackError::NoRunningEntry)));
        };
        match rollback::roll_back(running) {
            Ok(done) => {
                log::warn!(
                    "rollback: entry {} marked bad (now {}); keel {} in slot {} boots next",
                    done.from,
                    done.to,
                    done.target.version,
                    done.target.slot
                );
                let reason = format!("rolling back to keel {} in slot {}", done.target.version, done.target.slot);
                self.reboot_after_grace(reason);
                Ok(done.target.version)
            }
            Err(error) => {
                log::error!("rollback: {}", error_chain(&error));
                Err(match error {
                    RollbackError::NothingToRollBackTo { .. } | RollbackError::NoRunningEntry => {
                        UpdateRefusal::Conflict(error_chain(&error))
                    }
                    _ => UpdateRefusal::Failed(error_chain(&error)),
                })
            }
        }
    }

    fn progress(&self) -> Option<UpdateStatus> {
        self.progress.snapshot()
    }

    fn slot(&self) -> Option<String> {
        self.slot.map(|slot| slot.to_string())
    }

    fn boot(&self) -> BootStatus {
        let state = match self.boot {
            BootKind::Trial(_) => "trial",
            BootKind::Blessed(_) => "blessed",
            _ => "untracked",
        };
        BootStatus { state: state.to_owned(), rollback: self.rollback.clone() }
    }
}

impl HostUpdates {
    /// Asks for the reboot [`REBOOT_GRACE`] from now, on a thread of its own, so that the API's reply goes out
    /// first; asks at once if no thread can be started.
    fn reboot_after_grace(&self, reason: String) {
        let mailbox = Arc::clone(&self.mailbox);
        let asked = reason.clone();
        let spawned = std::thread::Builder::new()
            .name("reboot-grace".to_owned())
            .spawn(move || reboot_after(&mailbox, REBOOT_GRACE, asked));
        if let Err(error) = spawned {
            log::warn!("update: cannot wait before the reboot: {}", error_chain(&error));
            self.mailbox.ask(ShutdownRequest::new(Action::Reboot, reason));
        }
    }
}

/// Sleeps `grace` (a client reads the reply or the outcome before the API closes), then asks for the reboot.
fn reboot_after(mailbox: &ShutdownMailbox, grace: Duration, reason: String) {
    std::thread::sleep(grace);
    mailbox.ask(ShutdownRequest::new(Action::Reboot, reason));
}

/// The API's answer to an install that did not start.
fn refusal(error: &InstallError) -> UpdateRefusal {
    let message = error_chain(error);
    match error {
        InstallError::Busy | InstallError::RunningHost(RunningHostError::NoSlot) => UpdateRefusal::Conflict(message),
        InstallError::Refused { .. }
        | InstallError::Length { .. }
        | InstallError::Payload { .. }
        | InstallError::BootFileTooLarge { .. }
        | InstallError::RootTooLarge { .. }
        | InstallError::Source(SourceError::Form { .. } | SourceError::Status { .. } | SourceError::Open { .. }) => {
            UpdateRefusal::Invalid(message)
        }
        _ => UpdateRefusal::Failed(message),
    }
}
