//! The OCI image layout on disk: `oci-layout`, `index.json` (replaced atomically), `blobs/sha256/`, temp files.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::digest::Digest;
use super::registry::manifest::{Descriptor, ImageIndex, OCI_INDEX};

const LAYOUT_FILE_CONTENT: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;
/// Temp files live inside the store (same filesystem, so the final rename is atomic) but outside `blobs/`.
const TEMP_DIR: &str = ".keel-tmp";

/// What failed on the layout's files; each variant names the path.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("creating image layout directory {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("writing {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("reading {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("parsing {path}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// An OCI image layout rooted at a directory.
#[derive(Debug, Clone)]
pub struct OciLayout {
    root: PathBuf,
}

impl OciLayout {
    /// Opens the layout at `root`, creating the directories, `oci-layout` and an empty `index.json` if missing.
    pub fn open(root: &Path) -> Result<OciLayout, LayoutError> {
        let layout = OciLayout { root: root.to_path_buf() };
        for dir in [layout.blobs_dir(), layout.temp_dir()] {
            fs::create_dir_all(&dir).map_err(|source| LayoutError::CreateDir { path: dir.clone(), source })?;
        }
        let layout_file = root.join("oci-layout");
        if !layout_file.exists() {
            layout.write_atomically(&layout_file, LAYOUT_FILE_CONTENT.as_bytes())?;
        }
        if !layout.index_path().exists() {
            layout.write_index(&ImageIndex {
                schema_version: 2,
                media_type: Some(OCI_INDEX.into()),
                manifests: vec![],
            })?;
        }
        Ok(layout)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs").join("sha256")
    }

    pub fn temp_dir(&self) -> PathBuf {
        self.root.join(TEMP_DIR)
    }

    pub fn index_path(&self) -> PathBuf {
        self.root.join("index.json")
    }

    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blobs_dir().join(digest.hex())
    }

    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    pub fn read_index(&self) -> Result<ImageIndex, LayoutError> {
        let path = self.index_path();
        let bytes = fs::read(&path).map_err(|source| LayoutError::Read { path: path.clone(), source })?;
        serde_json::from_slice(&bytes).map_err(|source| LayoutError::Parse { path, source })
    }

    /// Replaces `index.json` atomically: readers see the old or the new one, never half of either.
    pub fn write_index(&self, index: &ImageIndex) -> Result<(), LayoutError> {
        let path = self.index_path();
        let bytes = serde_json::to_vec(index).map_err(|source| LayoutError::Parse { path: path.clone(), source })?;
        self.write_atomically(&path, &bytes)
    }

    /// The manifests `index.json` lists, by their `org.opencontainers.image.ref.name`.
    pub fn tagged(&self) -> Result<Vec<Descriptor>, LayoutError> {
        Ok(self.read_index()?.manifests)
    }

    /// A new, exclusively created temp file in the store; the caller renames or removes it.
    pub fn create_temp_file(&self, purpose: &str) -> Result<(File, PathBuf), LayoutError> {
        let path = self.temp_dir().join(unique_name(purpose));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|source| LayoutError::Write { path: path.clone(), source })?;
        Ok((file, path))
    }

    /// Makes a verified temp file the blob for `digest`: fsync the data, rename, fsync the directory.
    pub fn commit_blob(&self, file: File, temp_path: &Path, digest: &Digest) -> Result<(), LayoutError> {
        let target = self.blob_path(digest);
        file.sync_all().map_err(|source| LayoutError::Write { path: temp_path.to_path_buf(), source })?;
        drop(file);
        fs::rename(temp_path, &target).map_err(|source| LayoutError::Write { path: target.clone(), source })?;
        sync_dir(&self.blobs_dir())
    }

    fn write_atomically(&self, path: &Path, bytes: &[u8]) -> Result<(), LayoutError> {
        let (mut file, temp_path) = self.create_temp_file("write")?;
        let result = file
            .write_all(bytes)
            .and_then(|()| file.sync_all())
            .and_then(|()| fs::rename(&temp_path, path))
            .map_err(|source| LayoutError::Write { path: path.to_path_buf(), source });
        if result.is_err() {
            let _ = fs::remove_file(&temp_path);
        }
        result?;
        sync_dir(&self.root)
    }
}

/// Makes a rename durable: the directory entry itself must reach the disk.
pub fn sync_dir(dir: &Path) -> Result<(), LayoutError> {
    File::open(dir)
        .and_then(|handle| handle.sync_all())
        .map_err(|source| LayoutError::Write { path: dir.to_path_buf(), source })
}

/// Unique within this host: pid, a process-wide counter and the time.
pub fn unique_name(purpose: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.subsec_nanos());
    format!("{purpose}-{}-{count}-{nanos}", std::process::id())
}
