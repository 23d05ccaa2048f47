//! The update signing key files: `keel-build keygen` makes a pair (`update.key`, mode 0600, and `update.pub`),
//! `bundle --key` reads the secret one, `--update-key` the public ones. The text forms are
//! [`keel_os_image::bundle::keys`]'.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use ed25519_dalek::{SigningKey, VerifyingKey};
use keel_os_image::bundle::keys::{self, KeyError, MAX_KEY_FILE_LEN};

/// File names `keygen` writes in its output directory.
pub const SECRET_KEY_FILE: &str = "update.key";
pub const PUBLIC_KEY_FILE: &str = "update.pub";

#[derive(Debug, thiserror::Error)]
pub enum UpdateKeyError {
    #[error("cannot read the key file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the key file {path} is longer than {MAX_KEY_FILE_LEN} bytes: not a keel update key")]
    TooLong { path: PathBuf },
    #[error("the key file {path} is not usable")]
    Parse {
        path: PathBuf,
        #[source]
        source: KeyError,
    },
    #[error("{path} exists: keygen never replaces a key")]
    Exists { path: PathBuf },
    #[error("cannot write the key file {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read random bytes from /dev/urandom")]
    Random(#[source] std::io::Error),
}

impl UpdateKeyError {
    /// Whether the error is the user's to fix (exit code 100): a key file that is no key, or one in the way.
    pub fn is_usage(&self) -> bool {
        matches!(self, UpdateKeyError::TooLong { .. } | UpdateKeyError::Parse { .. } | UpdateKeyError::Exists { .. })
    }
}

/// The two files `generate` wrote.
#[derive(Debug, Clone)]
pub struct KeyPair {
    pub secret: PathBuf,
    pub public: PathBuf,
}

/// Makes a new key pair in `dir` (created if missing). Refuses to replace either file.
pub fn generate(dir: &Path) -> Result<KeyPair, UpdateKeyError> {
    let pair = KeyPair { secret: dir.join(SECRET_KEY_FILE), public: dir.join(PUBLIC_KEY_FILE) };
    for path in [&pair.secret, &pair.public] {
        if path.symlink_metadata().is_ok() {
            return Err(UpdateKeyError::Exists { path: path.clone() });
        }
    }
    std::fs::create_dir_all(dir).map_err(|source| UpdateKeyError::Write { path: dir.to_owned(), source })?;
    let mut seed = [0u8; 32];
    // The kernel's CSPRNG; /dev/urandom blocks only before it is seeded, which a build machine is long past.
    File::open("/dev/urandom").and_then(|mut urandom| urandom.read_exact(&mut seed)).map_err(UpdateKeyError::Random)?;
    let secret = SigningKey::from_bytes(&seed);
    write_new(&pair.secret, keys::format_secret_key(&secret).as_bytes(), 0o600)?;
    write_new(&pair.public, keys::format_public_key(&secret.verifying_key()).as_bytes(), 0o644)?;
    Ok(pair)
}

/// Reads a secret key file.
pub fn read_secret(path: &Path) -> Result<SigningKey, UpdateKeyError> {
    keys::parse_secret_key(&read_key_file(path)?)
        .map_err(|source| UpdateKeyError::Parse { path: path.to_owned(), source })
}

/// Reads a public key file.
pub fn read_public(path: &Path) -> Result<VerifyingKey, UpdateKeyError> {
    keys::parse_public_key(&read_key_file(path)?)
        .map_err(|source| UpdateKeyError::Parse { path: path.to_owned(), source })
}

fn read_key_file(path: &Path) -> Result<String, UpdateKeyError> {
    let read_error = |source| UpdateKeyError::Read { path: path.to_owned(), source };
    let mut text = String::new();
    File::open(path).map_err(read_error)?.take(MAX_KEY_FILE_LEN + 1).read_to_string(&mut text).map_err(read_error)?;
    if text.len() as u64 > MAX_KEY_FILE_LEN {
        return Err(UpdateKeyError::TooLong { path: path.to_owned() });
    }
    Ok(text)
}

/// Writes a file that must not exist yet, with `mode` from the start (never briefly readable by others).
fn write_new(path: &Path, data: &[u8], mode: u32) -> Result<(), UpdateKeyError> {
    let write_error = |source| UpdateKeyError::Write { path: path.to_owned(), source };
    let mut file =
        std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::AlreadyExists {
                UpdateKeyError::Exists { path: path.to_owned() }
            } else {
                write_error(source)
            }
        })?;
    file.write_all(data).and_then(|()| file.sync_all()).map_err(write_error)
}
