//! What the running host is, as an install needs it: its slot (`keel.slot=`), its version and `compatible`
//! (`/etc/os-release`), and the update keys its image trusts (`/usr/share/keel/update-keys/*.pub`).

use std::path::{Path, PathBuf};

use ed25519_dalek::VerifyingKey;
use keel_config::bounded_file::{read_file_bounded, BoundedReadError};
use keel_os_image::bundle::keys::{parse_public_key, KeyError};
use keel_os_image::bundle::UPDATE_KEYS_DIR;
use keel_os_image::os_release::{self, COMPATIBLE_FIELD, OS_RELEASE, VERSION_FIELD};
use keel_os_image::slot::SLOT_PARAMETER;
use keel_os_image::Slot;

use crate::cmdline::KernelCmdline;

/// A key file is one line of 80 characters.
const MAX_KEY_FILE: u64 = 4096;
/// A handful of keys at most (key rotation); more files are not looked at.
const MAX_KEYS: usize = 16;
/// `/etc/os-release` is a few hundred bytes.
const MAX_OS_RELEASE: u64 = 64 * 1024;

/// The running host.
#[derive(Debug, Clone)]
pub struct RunningHost {
    pub slot: Slot,
    pub version: String,
    pub compatible: String,
    pub keys: Vec<VerifyingKey>,
}

/// What the host cannot tell about itself.
#[derive(Debug, thiserror::Error)]
pub enum RunningHostError {
    #[error("the kernel command line names no root slot ({SLOT_PARAMETER}=a|b): no slots to update (keel supervise?)")]
    NoSlot,
    #[error("cannot read {OS_RELEASE}")]
    OsRelease(#[source] BoundedReadError),
    #[error("{OS_RELEASE} has no {field}")]
    OsReleaseField { field: &'static str },
    #[error("cannot read the update keys in {UPDATE_KEYS_DIR}")]
    KeysDir(#[source] std::io::Error),
    #[error("cannot read the update key {}", path.display())]
    KeyFile {
        path: PathBuf,
        #[source]
        source: BoundedReadError,
    },
    #[error("the update key {} is not an ed25519 public key", path.display())]
    Key {
        path: PathBuf,
        #[source]
        source: KeyError,
    },
}

impl RunningHost {
    /// Reads the running host's slot, version, `compatible` and trusted keys.
    pub fn read() -> Result<RunningHost, RunningHostError> {
        let cmdline = KernelCmdline::read();
        let slot =
            cmdline.value(SLOT_PARAMETER).and_then(|value| value.parse().ok()).ok_or(RunningHostError::NoSlot)?;
        let text = read_file_bounded(Path::new(OS_RELEASE), MAX_OS_RELEASE).map_err(RunningHostError::OsRelease)?;
        let text = String::from_utf8_lossy(&text);
        let field = |field: &'static str| {
            os_release::field(&text, field).map(str::to_owned).ok_or(RunningHostError::OsReleaseField { field })
        };
        let version = field(VERSION_FIELD)?;
        let compatible = field(COMPATIBLE_FIELD)?;
        let keys = read_keys(Path::new(UPDATE_KEYS_DIR))?;
        Ok(RunningHost { slot, version, compatible, keys })
    }
}

/// The `*.pub` keys in `dir`, in name order; none when the directory does not exist (an image built without
/// `--update-key`: the bundle reader then refuses every bundle, saying so).
pub fn read_keys(dir: &Path) -> Result<Vec<VerifyingKey>, RunningHostError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(RunningHostError::KeysDir(error)),
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "pub"))
        .take(MAX_KEYS)
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let bytes = read_file_bounded(&path, MAX_KEY_FILE)
                .map_err(|source| RunningHostError::KeyFile { path: path.clone(), source })?;
            parse_public_key(String::from_utf8_lossy(&bytes).trim())
                .map_err(|source| RunningHostError::Key { path: path.clone(), source })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_os_image::bundle::keys::format_public_key;

    #[test]
    fn reads_every_public_key_and_refuses_a_bad_one() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_keys(&dir.path().join("missing")).unwrap().is_empty());
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key();
        std::fs::write(dir.path().join("0.pub"), format_public_key(&key)).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not a key").unwrap();
        assert_eq!(read_keys(dir.path()).unwrap(), vec![key]);
        std::fs::write(dir.path().join("1.pub"), "ed25519-secret 00").unwrap();
        assert!(matches!(read_keys(dir.path()), Err(RunningHostError::Key { .. })));
    }
}
