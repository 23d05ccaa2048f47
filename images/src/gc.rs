//! Garbage collection: removes blobs and unpacked layers that no tagged image refers to, and stale temp files.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::digest::Digest;
use super::registry::manifest::{parse_manifest, ManifestKind};
use super::store::{ImageStore, StoreError};

/// What failed during garbage collection; each variant names the path.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error("reading the store's index")]
    ReadIndex(#[source] StoreError),
    #[error("listing {path}")]
    ReadDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("removing {path}")]
    Remove {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// What a collection removed.
#[derive(Debug, Default, Clone)]
pub struct GcReport {
    pub removed_blobs: Vec<Digest>,
    pub removed_layers: Vec<PathBuf>,
    pub removed_temp: Vec<PathBuf>,
}

impl ImageStore {
    /// Removes every blob and layer directory not reachable from `index.json`, and leftover temp files. Waits
    /// for running pulls and imports first.
    pub fn collect_garbage(&self) -> Result<GcReport, GcError> {
        let _exclusive = self.exclusive_guard();
        let (live_blobs, live_layers) = self.reachable()?;
        let mut report = GcReport::default();

        let blobs_dir = self.layout().blobs_dir();
        for path in list_dir(&blobs_dir)? {
            let Some(name) = path.file_name().and_then(|name| name.to_str()) else { continue };
            match format!("sha256:{name}").parse::<Digest>() {
                Ok(digest) if live_blobs.contains(&digest) => {}
                Ok(digest) => {
                    remove(&path)?;
                    report.removed_blobs.push(digest);
                }
                // Not a blob name: a stray temp file from an older version or a crash; not ours to keep.
                Err(_) => {
                    remove(&path)?;
                    report.removed_temp.push(path);
                }
            }
        }
        for path in list_dir(self.layers_root())? {
            let Some(name) = path.file_name().and_then(|name| name.to_str()) else { continue };
            if name.starts_with(".tmp-") {
                remove(&path)?;
                report.removed_temp.push(path);
            } else if !live_layers.contains(name) {
                remove(&path)?;
                report.removed_layers.push(path);
            }
        }
        for path in list_dir(&self.layout().temp_dir())? {
            remove(&path)?;
            report.removed_temp.push(path);
        }
        Ok(report)
    }

    /// Blobs reachable from the tags (indexes, manifests, configs, layers) and the directory names (full diff_id hex) of their layers.
    fn reachable(&self) -> Result<(HashSet<Digest>, HashSet<String>), GcError> {
        let mut blobs = HashSet::new();
        let mut layers = HashSet::new();
        let mut pending: Vec<Digest> = self
            .layout()
            .tagged()
            .map_err(|source| GcError::ReadIndex(StoreError::Open(source)))?
            .into_iter()
            .map(|entry| entry.digest)
            .collect();
        while let Some(digest) = pending.pop() {
            if !blobs.insert(digest.clone()) {
                continue;
            }
            // A missing or unreadable manifest keeps nothing else alive; the tag stays for `pull` to repair.
            let Ok(bytes) = self.read_blob(&digest) else { continue };
            match parse_manifest(&bytes, None) {
                Ok(ManifestKind::Index(index)) => pending.extend(index.manifests.into_iter().map(|entry| entry.digest)),
                Ok(ManifestKind::Image(manifest)) => {
                    blobs.extend(manifest.layers.into_iter().map(|layer| layer.digest));
                    if let Ok(config) = self.read_config(&manifest.config.digest) {
                        layers.extend(config.rootfs.diff_ids.iter().map(|diff_id| diff_id.hex().to_string()));
                    }
                    blobs.insert(manifest.config.digest);
                }
                Err(_) => {}
            }
        }
        Ok((blobs, layers))
    }
}

fn list_dir(dir: &Path) -> Result<Vec<PathBuf>, GcError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(GcError::ReadDir { path: dir.to_path_buf(), source }),
    };
    entries
        .map(|entry| {
            entry.map(|entry| entry.path()).map_err(|source| GcError::ReadDir { path: dir.to_path_buf(), source })
        })
        .collect()
}

/// Removes a file or a whole tree without following symlinks inside it.
fn remove(path: &Path) -> Result<(), GcError> {
    let result = match fs::symlink_metadata(path) {
        Ok(metadata) if metadata.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error),
    };
    result.map_err(|source| GcError::Remove { path: path.to_path_buf(), source })
}
