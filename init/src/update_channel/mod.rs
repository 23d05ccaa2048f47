//! The update channel poller: a thread of PID 1 that fetches `[update] url` every `interval` (jittered ±10%),
//! installs a newer compatible version the channel names into the inactive slot, and reboots into it as `[update]
//! reboot` says. `docs/update.md`, "Channels", has the rules.
//!
//! It never installs during a trial boot: the health gate holds the machine until the trial is decided, and an
//! install would replace the fallback slot the trial relies on. A version whose trial failed is not installed
//! again ([`decision::decide`]); a newer one is.

mod decision;
mod fetch;
mod record;

use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::thread::{self, sleep};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use keel_config::update::UpdateConfig;
use keel_logs::error_chain;
use keel_os_image::channel::{ChannelDocument, ChannelError};

use self::decision::{decide, jittered, next_poll_in, reboot_delay, ChannelInstall, ChannelVerdict, HostVersions};
use self::fetch::{fetch_channel, FetchError};
use self::record::CHANNEL_RECORD;
use crate::boot_assessment::{self, BootKind};
use crate::shutdown::{Action, ShutdownRequest};
use crate::shutdown_mailbox::ShutdownMailbox;
use crate::update::{
    install, InstallError, InstallPolicy, Installed, Progress, RunningHost, RunningHostError, UpdateSource,
};

/// How often a trial boot's outcome is looked at while the poller waits for it.
const TRIAL_CHECK: Duration = Duration::from_secs(5);
/// The longest single sleep while waiting for a maintenance window: the wall clock may be set meanwhile.
const WINDOW_CHECK: Duration = Duration::from_secs(60);

/// One poll that did not end in an install.
#[derive(Debug, thiserror::Error)]
enum PollError {
    #[error("cannot tell what the running host is")]
    RunningHost(#[source] RunningHostError),
    #[error("cannot fetch the channel")]
    Fetch(#[source] FetchError),
    #[error("the channel {url} is refused")]
    Channel {
        url: String,
        #[source]
        source: ChannelError,
    },
    #[error("installing keel {version} from the channel failed")]
    Install {
        version: String,
        #[source]
        source: Box<InstallError>,
    },
}

/// What the poller works with; everything it shares with the rest of PID 1 is behind an `Arc`.
pub struct ChannelPoller {
    pub url: String,
    pub update: UpdateConfig,
    pub boot: BootKind,
    /// The install progress the API's status shows.
    pub progress: Arc<Progress>,
    pub mailbox: Arc<ShutdownMailbox>,
}

/// Starts the poller on its own thread when `[update] url` names a channel.
pub fn start(update: &UpdateConfig, boot: BootKind, progress: Arc<Progress>, mailbox: Arc<ShutdownMailbox>) {
    let Some(url) = update.url.clone() else { return };
    let poller = ChannelPoller { url, update: update.clone(), boot, progress, mailbox };
    if let Err(error) = thread::Builder::new().name("update-channel".to_owned()).spawn(move || poller.run()) {
        log::error!("cannot start the update channel poller: {}", error_chain(&error));
    }
}

impl ChannelPoller {
    fn run(self) {
        log::info!(
            "update channel: {} every {:?} (±10%), reboot = {}",
            self.url,
            self.update.interval,
            self.update.reboot.as_str()
        );
        self.wait_out_trial();
        let mut failures = 0u32;
        loop {
            match self.poll() {
                Ok(Some(installed)) => {
                    failures = 0;
                    self.reboot_into(&installed);
                }
                Ok(None) => failures = 0,
                Err(error) => {
                    failures = failures.saturating_add(1);
                    log::error!("update channel: {}", error_chain(&error));
                }
            }
            sleep(jittered(next_poll_in(self.update.interval, failures), random_u32()));
        }
    }

    /// Returns once this boot is not a trial, or its trial was kept. A failed trial reboots the machine, so the
    /// wait never ends then.
    fn wait_out_trial(&self) {
        let BootKind::Trial(entry) = &self.boot else { return };
        log::info!("update channel: waiting for the health gate to decide this trial boot ({entry})");
        while !boot_assessment::trial_kept(entry) {
            sleep(TRIAL_CHECK);
        }
    }

    /// One round: fetch, verify, decide and, when the channel has a newer version, install it.
    fn poll(&self) -> Result<Option<Installed>, PollError> {
        let host = RunningHost::read().map_err(PollError::RunningHost)?;
        let file = fetch_channel(&self.url).map_err(PollError::Fetch)?;
        let channel_error = |source| PollError::Channel { url: self.url.clone(), source };
        let document = ChannelDocument::verify(&file, &host.keys).map_err(channel_error)?;
        let versions = HostVersions {
            version: host.version.clone(),
            compatible: host.compatible.clone(),
            last_install: record::read(Path::new(CHANNEL_RECORD)),
            boot_id: record::boot_id(),
        };
        let version = &document.version;
        match decide(&document, &versions) {
            ChannelVerdict::UpToDate => {
                log::info!("update channel: keel {} is current (the channel has {version})", host.version);
                return Ok(None);
            }
            ChannelVerdict::Incompatible { channel } => {
                log::warn!("update channel: the channel is for {channel:?} hosts; this host is {:?}", host.compatible);
                return Ok(None);
            }
            ChannelVerdict::AwaitingReboot => {
                log::info!("update channel: keel {version} is installed and waits for a reboot");
                return Ok(None);
            }
            ChannelVerdict::RolledBack => {
                log::warn!(
                    "update channel: keel {version} was installed before and this host runs {}: its trial boot \
                     failed or it was rolled back; waiting for a newer version",
                    host.version
                );
                return Ok(None);
            }
            ChannelVerdict::Install => {}
        }
        let bundle = document.bundle_url(&self.url).map_err(channel_error)?;
        log::info!("update channel: installing keel {version} (running {}) from {bundle}", host.version);
        let policy = InstallPolicy { allow_downgrade: self.update.allow_downgrade };
        let installed = install(&UpdateSource::Url(bundle), &policy, &self.progress)
            .map_err(|source| PollError::Install { version: version.clone(), source: Box::new(source) })?;
        let done = ChannelInstall { version: installed.version.clone(), boot_id: versions.boot_id };
        if let Err(error) = record::write(Path::new(CHANNEL_RECORD), &done) {
            log::warn!("update channel: cannot write {CHANNEL_RECORD}: {}", error_chain(&error));
        }
        Ok(Some(installed))
    }

    /// Reboots into a completed install when `[update] reboot` says: now, at the next maintenance window, or never
    /// by itself.
    fn reboot_into(&self, installed: &Installed) {
        let what = format!("keel {} in slot {}", installed.version, installed.slot);
        let policy = self.update.reboot;
        let mut announced = false;
        loop {
            let now = SystemTime::now();
            let seconds = now.duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs());
            let Some(delay) = reboot_delay(policy, self.update.window.as_ref(), seconds) else {
                log::warn!("update channel: {what} is installed; reboot = manual: it boots at the next reboot");
                return;
            };
            if delay.is_zero() {
                break;
            }
            if !announced {
                let at = keel_logs::syslog::rfc3339_millis(now + delay);
                log::info!("update channel: {what} is installed; rebooting into it in the maintenance window, at {at}");
                announced = true;
            }
            // In steps: the wall clock may be set while the host waits.
            sleep(delay.min(WINDOW_CHECK));
        }
        let reason = format!("{what} installed from the update channel; rebooting into it ({})", policy.as_str());
        self.mailbox.ask(ShutdownRequest::new(Action::Reboot, reason));
    }
}

/// A random number for the jitter, from the kernel; the clock's nanoseconds if that fails (jitter needs spread,
/// not secrecy).
fn random_u32() -> u32 {
    let mut bytes = [0u8; 4];
    match std::fs::File::open("/dev/urandom").and_then(|mut urandom| urandom.read_exact(&mut bytes)) {
        Ok(()) => u32::from_ne_bytes(bytes),
        Err(_) => SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.subsec_nanos()),
    }
}
