//! The API's [`HostControl`] for PID 1 and for `keel supervise`: the user-data in force and its generations
//! (kept by `keel-config`'s [`GenerationStore`]), the syslog relay's counters, and power actions, which under
//! PID 1 go to the main loop's one shutdown path through the [`ShutdownMailbox`] and under `keel supervise` are
//! refused (there is no host of ours to take down).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use keel_api::server::host::{ConfigSnapshot, HostControl, HostControlError, PowerAction};
use keel_config::generations::GenerationStore;
use keel_logs::syslog::RelayStats;

use crate::shutdown::{Action, ShutdownRequest};
use crate::shutdown_mailbox::ShutdownMailbox;

/// Where power requests go: PID 1's main loop, or nowhere.
pub enum PowerTarget {
    Pid1(Arc<ShutdownMailbox>),
    /// `keel supervise`: refused.
    Refuse,
}

pub struct KeelHost {
    /// Where accepted user-data is kept; `None` when the directory could not be opened (a PUT then fails).
    generations: Option<GenerationStore>,
    current: Mutex<ConfigSnapshot>,
    power: PowerTarget,
}

impl KeelHost {
    pub fn new(generations: Option<GenerationStore>, current: ConfigSnapshot, power: PowerTarget) -> KeelHost {
        KeelHost { generations, current: Mutex::new(current), power }
    }
}

impl HostControl for KeelHost {
    fn config(&self) -> ConfigSnapshot {
        self.current.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn store_config(&self, text: &str) -> Result<u64, HostControlError> {
        let Some(store) = &self.generations else {
            return Err(HostControlError::Refused("the config generations directory is not usable".to_owned()));
        };
        let generation = store.accept(text).map_err(HostControlError::StoreConfig)?;
        // The accepted text is in force now; the errors of an older rejected one no longer describe the host.
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) =
            ConfigSnapshot { text: text.to_owned(), generation: generation.number, rejected: Vec::new() };
        Ok(generation.number)
    }

    fn syslog(&self) -> Option<RelayStats> {
        crate::logger::router().relay().map(|relay| relay.stats())
    }

    fn power(&self, action: PowerAction, after: Duration) -> Result<(), HostControlError> {
        let PowerTarget::Pid1(mailbox) = &self.power else {
            let verb = match action {
                PowerAction::Reboot => "reboot",
                PowerAction::PowerOff => "power off",
            };
            return Err(HostControlError::Refused(format!(
                "keel supervise has no host to {verb}: it supervises containers on a host it does not own"
            )));
        };
        let mailbox = Arc::clone(mailbox);
        let request = match action {
            PowerAction::Reboot => ShutdownRequest::new(Action::Reboot, "asked through the API"),
            PowerAction::PowerOff => ShutdownRequest::new(Action::PowerOff, "asked through the API"),
        };
        // A thread of its own, so that the API's reply goes out before the shutdown closes the API.
        std::thread::Builder::new()
            .name("api-power".into())
            .spawn(move || {
                std::thread::sleep(after);
                mailbox.ask(request);
            })
            .map(drop)
            .map_err(HostControlError::PowerRequest)
    }
}
