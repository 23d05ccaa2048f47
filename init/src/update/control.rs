//! PID 1's side of the API's update endpoints ([`keel_api::server::UpdateControl`]): starts an install on a
//! thread of its own once the bundle's head verified, rolls back, and reports slot, boot and progress. Reboots go
//! through the main loop's one shutdown path (the [`ShutdownMailbox`]).

use std::sync::Arc;
use std::time::Duration;

use keel_api::server::{UpdateControl, UpdateRefusal};
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

/// Between a finished install and the reboot asked for with it: clients polling the progress see it finished.
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
    fn install(&self, source: &str, reboot: bool) -> Result<String, UpdateRefusal> {
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
        let spawned = std::thread::Builder::new().name("update".to_owned()).spawn(move || {
            let result = bundle.write(&progress);
            if let (Ok(installed), true) = (result, reboot) {
                // A client following the install (`keelctl update --reboot`) reads the outcome before the API closes.
                log::info!("update: rebooting into keel {} in {REBOOT_GRACE:?}", installed.version);
                std::thread::sleep(REBOOT_GRACE);
                let reason =
                    format!("keel {} installed in slot {}; rebooting into it", installed.version, installed.slot);
                mailbox.ask(ShutdownRequest::new(Action::Reboot, reason));
            }
        });
        match spawned {
            Ok(_) => Ok(version),
            Err(error) => {
                Err(UpdateRefusal::Failed(format!("cannot start the install's thread: {}", error_chain(&error))))
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
                self.mailbox.ask(ShutdownRequest::new(Action::Reboot, reason));
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

/// The API's answer to an install that did not start.
fn refusal(error: &InstallError) -> UpdateRefusal {
    let message = error_chain(error);
    match error {
        InstallError::Busy | InstallError::RunningHost(RunningHostError::NoSlot) => UpdateRefusal::Conflict(message),
        InstallError::Refused { .. }
        | InstallError::Length { .. }
        | InstallError::Source(SourceError::Form { .. } | SourceError::Status { .. } | SourceError::Open { .. }) => {
            UpdateRefusal::Invalid(message)
        }
        _ => UpdateRefusal::Failed(message),
    }
}
