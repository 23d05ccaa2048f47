//! Installing an update bundle into the inactive root slot, and rolling back on request.
//!
//! Entry point: [`install`] (`install(source, policy, progress) -> Result<Installed, InstallError>`) runs a whole
//! install on the caller's thread; [`open`] and [`OpenedBundle::write`] split it where the API answers (once the
//! bundle's head verified). One install at a time. The order of the writes, and what a power cut at each step
//! leaves, are in `install.rs` and `docs/update.md`.

mod control;
mod direct_io;
mod esp;
mod halt;
mod install;
mod progress;
mod record;
mod rollback;
mod running;
mod source;
mod staging;

pub use control::HostUpdates;
#[allow(unused_imports)]
pub use install::{install, open, InstallError, InstallPolicy, Installed, OpenedBundle, TRIES};
pub use progress::Progress;
#[allow(unused_imports)]
pub use record::LAST_INSTALL;
pub use running::{RunningHost, RunningHostError};
#[allow(unused_imports)]
pub use source::UpdateSource;

/// What the update modules' unit tests share.
#[cfg(test)]
pub(crate) mod test_support {
    use std::path::Path;

    /// The names in `dir`, sorted.
    pub(crate) fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|file| file.unwrap().file_name().to_string_lossy().into()).collect();
        names.sort();
        names
    }
}
