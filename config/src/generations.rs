//! Keeps accepted user-data files as numbered generations (`<n>-<sha256 short>.toml`) so PID 1 can fall back to
//! the last good config when a new one is invalid.

use std::fs;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::bounded_file::{read_text_file_bounded, BoundedReadError, MAX_OUTSIDE_FILE};
use crate::durable_file::write_durably;

/// How many generations are kept by default.
pub const DEFAULT_KEEP: usize = 10;

/// Hex digits of the sha256 in a generation's file name.
const SHORT_DIGEST: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum GenerationError {
    #[error("cannot create the config generation directory {dir}")]
    CreateDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot list the config generations in {dir}")]
    ListDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read config generation {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: BoundedReadError,
    },
    #[error("config generation {path} is corrupt: its content's sha256 starts with {actual}, not {expected}")]
    Corrupt { path: PathBuf, expected: String, actual: String },
    #[error("cannot write config generation {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot remove old config generation {path}")]
    Remove {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// One stored generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generation {
    /// Counts up from 1 with each accepted change.
    pub number: u64,
    /// The first 12 hex digits of the content's sha256.
    pub digest: String,
    pub path: PathBuf,
}

/// The directory of generations, e.g. `/var/lib/keel/config`.
#[derive(Debug, Clone)]
pub struct GenerationStore {
    dir: PathBuf,
    keep: usize,
}

impl GenerationStore {
    /// Opens (creating it if needed) the directory, keeping [`DEFAULT_KEEP`] generations.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, GenerationError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|source| GenerationError::CreateDir { dir: dir.clone(), source })?;
        Ok(GenerationStore { dir, keep: DEFAULT_KEEP })
    }

    /// Keeps the newest `keep` generations (at least one).
    pub fn with_keep(mut self, keep: usize) -> Self {
        self.keep = keep.max(1);
        self
    }

    /// Stores `text`, already validated, as the newest generation, durably ([`write_durably`]). Text equal to the
    /// newest generation's is not stored again. Old generations beyond the ones kept are removed.
    pub fn accept(&self, text: &str) -> Result<Generation, GenerationError> {
        let digest = short_digest(text);
        let (generations, _) = self.list();
        if let Some(newest) = generations.last() {
            if newest.digest == digest && self.read(newest).is_ok_and(|stored| stored == text) {
                return Ok(newest.clone());
            }
        }
        let number = generations.last().map_or(1, |newest| newest.number + 1);
        let path = self.dir.join(format!("{number}-{digest}.toml"));
        write_durably(&path, text.as_bytes())
            .map_err(|source| GenerationError::Write { path: path.clone(), source })?;
        let excess = (generations.len() + 1).saturating_sub(self.keep);
        for old in generations.iter().take(excess) {
            fs::remove_file(&old.path).map_err(|source| GenerationError::Remove { path: old.path.clone(), source })?;
        }
        Ok(Generation { number, digest, path })
    }

    /// The newest generation that reads back intact, with its text; the problems with newer, skipped ones (and with
    /// listing the directory) come in the list.
    pub fn latest(&self) -> (Option<(Generation, String)>, Vec<GenerationError>) {
        let (generations, mut errors) = self.list();
        for generation in generations.into_iter().rev() {
            match self.read(&generation) {
                Ok(text) => return (Some((generation, text)), errors),
                Err(error) => errors.push(error),
            }
        }
        (None, errors)
    }

    /// The generations on disk, oldest first; files not named like a generation are ignored.
    pub fn list(&self) -> (Vec<Generation>, Vec<GenerationError>) {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(source) => return (Vec::new(), vec![GenerationError::ListDir { dir: self.dir.clone(), source }]),
        };
        let mut generations = Vec::new();
        let mut errors = Vec::new();
        for entry in entries {
            match entry {
                Ok(entry) => {
                    if let Some(generation) = parse_name(&entry.path()) {
                        generations.push(generation);
                    }
                }
                Err(source) => errors.push(GenerationError::ListDir { dir: self.dir.clone(), source }),
            }
        }
        generations.sort_by_key(|generation| generation.number);
        (generations, errors)
    }

    /// Reads a generation and checks its content against the digest in its name.
    pub fn read(&self, generation: &Generation) -> Result<String, GenerationError> {
        let path = generation.path.clone();
        // Kept generations passed the user-data's limit when they were accepted.
        let text = read_text_file_bounded(&path, MAX_OUTSIDE_FILE)
            .map_err(|source| GenerationError::Read { path: path.clone(), source })?;
        let actual = short_digest(&text);
        if actual != generation.digest {
            return Err(GenerationError::Corrupt { path, expected: generation.digest.clone(), actual });
        }
        Ok(text)
    }
}

/// `<n>-<12 hex>.toml`.
fn parse_name(path: &Path) -> Option<Generation> {
    let name = path.file_name()?.to_str()?.strip_suffix(".toml")?;
    let (number, digest) = name.split_once('-')?;
    let valid_digest = digest.len() == SHORT_DIGEST && digest.bytes().all(|byte| byte.is_ascii_hexdigit());
    if !valid_digest || !number.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    Some(Generation { number: number.parse().ok()?, digest: digest.to_owned(), path: path.to_owned() })
}

/// The first 12 hex digits of the sha256 of `text`.
pub fn short_digest(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().take(SHORT_DIGEST / 2).map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_returns_the_latest() {
        let dir = tempfile::tempdir().unwrap();
        let store = GenerationStore::open(dir.path().join("config")).unwrap();
        assert!(store.latest().0.is_none());
        let first = store.accept("[host]\nhostname = \"a\"\n").unwrap();
        assert_eq!(first.number, 1);
        assert_eq!(first.path.file_name().unwrap().to_str().unwrap(), format!("1-{}.toml", first.digest));
        let second = store.accept("[host]\nhostname = \"b\"\n").unwrap();
        assert_eq!(second.number, 2);
        let (latest, errors) = store.latest();
        assert!(errors.is_empty());
        assert_eq!(latest.unwrap(), (second.clone(), "[host]\nhostname = \"b\"\n".to_owned()));
        assert_eq!(store.accept("[host]\nhostname = \"b\"\n").unwrap(), second, "same text, same generation");
    }

    #[test]
    fn keeps_only_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let store = GenerationStore::open(dir.path()).unwrap().with_keep(3);
        for index in 0..5 {
            store.accept(&format!("# {index}\n")).unwrap();
        }
        let numbers: Vec<u64> = store.list().0.iter().map(|generation| generation.number).collect();
        assert_eq!(numbers, [3, 4, 5]);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 3, "no temporary files left");
    }

    #[test]
    fn skips_corrupt_generations_with_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = GenerationStore::open(dir.path()).unwrap();
        let good = store.accept("# good\n").unwrap();
        let bad = store.accept("# bad\n").unwrap();
        fs::write(&bad.path, "# tampered\n").unwrap();
        fs::write(dir.path().join("3-zzzz.toml"), "ignored: not a generation name").unwrap();
        let (latest, errors) = store.latest();
        assert_eq!(latest.unwrap().0, good);
        assert_eq!(errors.len(), 1);
        assert!(matches!(&errors[0], GenerationError::Corrupt { path, .. } if *path == bad.path), "{errors:?}");
        fs::write(&good.path, [0xff, 0xfe]).unwrap();
        let (latest, errors) = store.latest();
        assert!(latest.is_none());
        assert_eq!(errors.len(), 2);
    }
}
