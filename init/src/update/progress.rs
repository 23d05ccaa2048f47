//! An install's progress: what the API reports (`status.update`) and what the console shows every tenth.

use std::sync::{Mutex, PoisonError};

use keel_api::update::{InstallState, UpdateStatus};

/// The progress of the current or last install, shared between the install's thread and the API.
#[derive(Debug, Default)]
pub struct Progress {
    status: Mutex<Option<UpdateStatus>>,
}

impl Progress {
    /// The current or last install; `None` before the first.
    pub fn snapshot(&self) -> Option<UpdateStatus> {
        self.lock().clone()
    }

    /// A new install of `version`, `bytes_total` bytes long.
    pub fn start(&self, version: &str, bytes_total: u64) {
        *self.lock() = Some(UpdateStatus {
            state: InstallState::Downloading,
            version: version.to_owned(),
            bytes_done: 0,
            bytes_total,
            percent: 0,
            error: None,
        });
        log::info!("update: installing keel {version}: {bytes_total} bytes");
    }

    /// `bytes_done` of the bundle read; logs when it crosses a tenth.
    pub fn advance(&self, bytes_done: u64) {
        let mut status = self.lock();
        let Some(status) = status.as_mut() else { return };
        let before = status.percent;
        status.bytes_done = bytes_done;
        status.percent = percent(bytes_done, status.bytes_total);
        if status.percent / 10 > before / 10 {
            log::info!("update: {}%: {} of {} bytes", status.percent, status.bytes_done, status.bytes_total);
        }
    }

    pub fn set_state(&self, state: InstallState) {
        if let Some(status) = self.lock().as_mut() {
            status.state = state;
        }
    }

    /// The install stopped with `error` (its whole chain).
    pub fn fail(&self, error: String) {
        if let Some(status) = self.lock().as_mut() {
            status.state = InstallState::Failed;
            status.error = Some(error);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<UpdateStatus>> {
        self.status.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Whole percent of `done` in `total`, at most 100; 100 for an empty total.
pub fn percent(done: u64, total: u64) -> u8 {
    if total == 0 {
        return 100;
    }
    let value = u128::from(done.min(total)) * 100 / u128::from(total);
    u8::try_from(value).unwrap_or(100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_is_bounded() {
        assert_eq!(percent(0, 200), 0);
        assert_eq!(percent(199, 200), 99);
        assert_eq!(percent(300, 200), 100);
        assert_eq!(percent(0, 0), 100);
        assert_eq!(percent(u64::MAX - 1, u64::MAX), 99);
    }

    #[test]
    fn reports_the_last_install() {
        let progress = Progress::default();
        assert_eq!(progress.snapshot(), None);
        progress.start("0.2.0", 1000);
        progress.advance(250);
        let status = progress.snapshot().unwrap();
        assert_eq!((status.state, status.bytes_done, status.percent), (InstallState::Downloading, 250, 25));
        progress.fail("the bundle ends early".into());
        let status = progress.snapshot().unwrap();
        assert_eq!(status.state, InstallState::Failed);
        assert_eq!(status.error.as_deref(), Some("the bundle ends early"));
    }
}
