//! The image store: verified blobs in the OCI layout, tags in `index.json`, and where unpacked layers live.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::digest::{Digest, HashingReader};
use super::layout::{LayoutError, OciLayout};
use super::reference::ImageReference;
use super::registry::manifest::{Descriptor, ImageConfig, ImageManifest, REF_NAME_ANNOTATION};

/// What failed in the store; each variant names the digest, reference or path.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("opening the image store")]
    Open(#[source] LayoutError),
    #[error("creating the layers directory {path}")]
    CreateLayersRoot {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("blob {digest}: creating its temp file")]
    CreateTemp {
        digest: Digest,
        #[source]
        source: LayoutError,
    },
    #[error("blob {digest}: writing it")]
    WriteBlob {
        digest: Digest,
        #[source]
        source: io::Error,
    },
    #[error("blob {digest}: committing it")]
    CommitBlob {
        digest: Digest,
        #[source]
        source: LayoutError,
    },
    #[error("blob {expected}: content has digest {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("blob {digest}: expected {expected} bytes, got {actual}")]
    SizeMismatch { digest: Digest, expected: u64, actual: u64 },
    #[error("blob {digest}: reading it")]
    ReadBlob {
        digest: Digest,
        #[source]
        source: io::Error,
    },
    #[error("blob {digest}: parsing it as {what}")]
    Parse {
        digest: Digest,
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("image {reference}: not in the store")]
    NotFound { reference: String },
    #[error("image {reference}: {layers} layers but {diff_ids} diff_ids in its config")]
    LayerCountMismatch { reference: String, layers: usize, diff_ids: usize },
    #[error("updating index.json for {reference}")]
    UpdateIndex {
        reference: String,
        #[source]
        source: LayoutError,
    },
}

/// An image as stored: its manifest, config and the unpacked layer directories, lowest first.
#[derive(Debug, Clone)]
pub struct StoredImage {
    pub reference: String,
    pub manifest_digest: Digest,
    pub manifest: ImageManifest,
    pub config: ImageConfig,
    pub layer_dirs: Vec<PathBuf>,
}

/// The store: an OCI layout for blobs and tags plus a directory of unpacked layers.
pub struct ImageStore {
    layout: OciLayout,
    layers_root: PathBuf,
    /// Serialises read-modify-write of `index.json` within this process.
    index_lock: Mutex<()>,
    /// Pulls and imports hold it shared, garbage collection exclusively: blobs of an image that is not tagged yet
    /// must not be collected under a running pull.
    activity: RwLock<()>,
}

impl ImageStore {
    /// Opens (creating if needed) the store at `images_root` (`/var/lib/keel/images` on a host) with layers
    /// unpacked under `layers_root` (`/var/lib/keel/layers`).
    pub fn open(images_root: &Path, layers_root: &Path) -> Result<ImageStore, StoreError> {
        let layout = OciLayout::open(images_root).map_err(StoreError::Open)?;
        fs::create_dir_all(layers_root)
            .map_err(|source| StoreError::CreateLayersRoot { path: layers_root.to_path_buf(), source })?;
        // Layers keep their device nodes (a 0666 block node included): only root on the host may reach them.
        if let Err(error) = fs::set_permissions(layers_root, std::os::unix::fs::PermissionsExt::from_mode(0o700)) {
            log::warn!("cannot make {} private (0700): {error}", layers_root.display());
        }
        Ok(ImageStore {
            layout,
            layers_root: layers_root.to_path_buf(),
            index_lock: Mutex::new(()),
            activity: RwLock::new(()),
        })
    }

    /// Held by a pull or import for its whole duration.
    pub(crate) fn writer_guard(&self) -> RwLockReadGuard<'_, ()> {
        self.activity.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Held by garbage collection: waits for running pulls and imports, and keeps new ones out.
    pub(crate) fn exclusive_guard(&self) -> RwLockWriteGuard<'_, ()> {
        self.activity.write().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn layout(&self) -> &OciLayout {
        &self.layout
    }

    pub fn layers_root(&self) -> &Path {
        &self.layers_root
    }

    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.layout.has_blob(digest)
    }

    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.layout.blob_path(digest)
    }

    /// Where the layer with this `diff_id` is (or will be) unpacked: the full 64 hex digits, so no image can name
    /// another image's layer by a prefix. Only `unpack` creates such a name, by renaming a directory whose
    /// uncompressed stream it has just hashed to this `diff_id`: the rename is the commit, and a directory there
    /// is one keel completed for exactly this digest. Stores from before used 12-digit names; nothing reads
    /// them now, GC removes them and the layers unpack again from their stored blobs.
    pub fn layer_dir(&self, diff_id: &Digest) -> PathBuf {
        self.layers_root.join(diff_id.hex())
    }

    pub fn has_layer(&self, diff_id: &Digest) -> bool {
        // Not through a symlink: a layer is a directory keel renamed into place, nothing else.
        fs::symlink_metadata(self.layer_dir(diff_id)).is_ok_and(|metadata| metadata.is_dir())
    }

    /// Reads a small blob (manifest, config) whole.
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>, StoreError> {
        fs::read(self.blob_path(digest)).map_err(|source| StoreError::ReadBlob { digest: digest.clone(), source })
    }

    /// Streams `reader` into the store as blob `expected`, verifying digest (and size, if known) before the blob
    /// becomes visible; on any failure the temp file is removed.
    pub fn write_blob(
        &self,
        reader: impl Read,
        expected: &Digest,
        expected_size: Option<u64>,
    ) -> Result<(), StoreError> {
        if self.has_blob(expected) {
            return Ok(());
        }
        let (file, temp_path) = self
            .layout
            .create_temp_file("blob")
            .map_err(|source| StoreError::CreateTemp { digest: expected.clone(), source })?;
        let result = self.fill_and_commit(reader, file, &temp_path, expected, expected_size);
        if result.is_err() {
            let _ = fs::remove_file(&temp_path);
        }
        result
    }

    fn fill_and_commit(
        &self,
        reader: impl Read,
        file: File,
        temp_path: &Path,
        expected: &Digest,
        expected_size: Option<u64>,
    ) -> Result<(), StoreError> {
        let write_error = |source| StoreError::WriteBlob { digest: expected.clone(), source };
        let mut hashing = HashingReader::new(reader);
        let mut writer = BufWriter::with_capacity(1 << 20, file);
        io::copy(&mut hashing, &mut writer).map_err(write_error)?;
        writer.flush().map_err(write_error)?;
        let file = writer.into_inner().map_err(|error| write_error(error.into_error()))?;
        let (actual, size, _) = hashing.finish().map_err(write_error)?;
        verify(expected, &actual, expected_size, size)?;
        self.layout
            .commit_blob(file, temp_path, expected)
            .map_err(|source| StoreError::CommitBlob { digest: expected.clone(), source })
    }

    pub fn write_blob_bytes(&self, bytes: &[u8], expected: &Digest) -> Result<(), StoreError> {
        self.write_blob(bytes, expected, Some(bytes.len() as u64))
    }

    /// Points `name` at `manifest` in `index.json` (replacing an older entry of that name), atomically.
    pub fn tag(&self, name: &str, manifest: &Descriptor) -> Result<(), StoreError> {
        let _guard = self.index_lock.lock().unwrap_or_else(PoisonError::into_inner);
        let update_error = |source| StoreError::UpdateIndex { reference: name.to_string(), source };
        let mut index = self.layout.read_index().map_err(update_error)?;
        index.manifests.retain(|entry| entry.annotations.get(REF_NAME_ANNOTATION).map(String::as_str) != Some(name));
        let mut entry = manifest.clone();
        entry.annotations.insert(REF_NAME_ANNOTATION.to_string(), name.to_string());
        index.manifests.push(entry);
        self.layout.write_index(&index).map_err(update_error)
    }

    /// Removes the tag `name`; returns whether it existed. Blobs stay until garbage collection.
    pub fn untag(&self, name: &str) -> Result<bool, StoreError> {
        let _guard = self.index_lock.lock().unwrap_or_else(PoisonError::into_inner);
        let update_error = |source| StoreError::UpdateIndex { reference: name.to_string(), source };
        let mut index = self.layout.read_index().map_err(update_error)?;
        let before = index.manifests.len();
        index.manifests.retain(|entry| entry.annotations.get(REF_NAME_ANNOTATION).map(String::as_str) != Some(name));
        let removed = index.manifests.len() != before;
        if removed {
            self.layout.write_index(&index).map_err(update_error)?;
        }
        Ok(removed)
    }

    /// The manifest descriptor tagged `name`, if any.
    pub fn lookup(&self, name: &str) -> Result<Option<Descriptor>, StoreError> {
        let index = self
            .layout
            .read_index()
            .map_err(|source| StoreError::UpdateIndex { reference: name.to_string(), source })?;
        Ok(index
            .manifests
            .into_iter()
            .find(|entry| entry.annotations.get(REF_NAME_ANNOTATION).map(String::as_str) == Some(name)))
    }

    /// Every tagged image: `(name, manifest digest)`.
    pub fn list(&self) -> Result<Vec<(String, Digest)>, StoreError> {
        let index =
            self.layout.read_index().map_err(|source| StoreError::UpdateIndex { reference: String::new(), source })?;
        Ok(index
            .manifests
            .into_iter()
            .filter_map(|entry| Some((entry.annotations.get(REF_NAME_ANNOTATION)?.clone(), entry.digest)))
            .collect())
    }

    /// Whether the image is tagged and all its layers are unpacked.
    pub fn is_complete(&self, reference: &ImageReference) -> bool {
        self.image(reference)
            .is_ok_and(|image| image.config.rootfs.diff_ids.iter().all(|diff_id| self.has_layer(diff_id)))
    }

    /// Loads a tagged image: manifest, config and layer directories.
    pub fn image(&self, reference: &ImageReference) -> Result<StoredImage, StoreError> {
        let name = reference.to_string();
        let descriptor = self.lookup(&name)?.ok_or_else(|| StoreError::NotFound { reference: name.clone() })?;
        let manifest = self.read_manifest(&descriptor.digest)?;
        let config = self.read_config(&manifest.config.digest)?;
        if config.rootfs.diff_ids.len() != manifest.layers.len() {
            return Err(StoreError::LayerCountMismatch {
                reference: name,
                layers: manifest.layers.len(),
                diff_ids: config.rootfs.diff_ids.len(),
            });
        }
        let layer_dirs = config.rootfs.diff_ids.iter().map(|diff_id| self.layer_dir(diff_id)).collect();
        Ok(StoredImage { reference: name, manifest_digest: descriptor.digest, manifest, config, layer_dirs })
    }

    pub fn read_manifest(&self, digest: &Digest) -> Result<ImageManifest, StoreError> {
        let bytes = self.read_blob(digest)?;
        serde_json::from_slice(&bytes).map_err(|source| StoreError::Parse {
            digest: digest.clone(),
            what: "image manifest",
            source,
        })
    }

    pub fn read_config(&self, digest: &Digest) -> Result<ImageConfig, StoreError> {
        let bytes = self.read_blob(digest)?;
        serde_json::from_slice(&bytes).map_err(|source| StoreError::Parse {
            digest: digest.clone(),
            what: "image config",
            source,
        })
    }
}

/// Compares what arrived with what the descriptor promised.
pub fn verify(
    expected: &Digest,
    actual: &Digest,
    expected_size: Option<u64>,
    actual_size: u64,
) -> Result<(), StoreError> {
    if expected != actual {
        return Err(StoreError::DigestMismatch { expected: expected.clone(), actual: actual.clone() });
    }
    match expected_size {
        Some(size) if size != actual_size => {
            Err(StoreError::SizeMismatch { digest: expected.clone(), expected: size, actual: actual_size })
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn digests_sharing_a_12_digit_prefix_get_different_layer_dirs() {
        let temp = tempfile::tempdir().unwrap();
        let store = ImageStore::open(&temp.path().join("images"), &temp.path().join("layers")).unwrap();
        let prefix = "0123456789ab";
        let one: Digest = format!("sha256:{prefix}{}", "0".repeat(52)).parse().unwrap();
        let other: Digest = format!("sha256:{prefix}{}", "1".repeat(52)).parse().unwrap();
        assert_eq!(one.short(), other.short());
        assert_ne!(store.layer_dir(&one), store.layer_dir(&other));
        assert_eq!(store.layer_dir(&one), temp.path().join("layers").join(one.hex()));
        // A directory under one name says nothing about the other digest.
        fs::create_dir(store.layer_dir(&one)).unwrap();
        assert!(store.has_layer(&one) && !store.has_layer(&other));
    }
}
