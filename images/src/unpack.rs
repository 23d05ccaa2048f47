//! One streaming pass per layer: hash and store the compressed blob while decompressing, hashing (`diff_id`) and
//! extracting it; both become visible only when both digests match.

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use super::digest::{Digest, HashingReader, TeeReader};
use super::extract::{decompress, extract_layer, ExtractError, ExtractOptions, LayerBudget};
use super::layout::{sync_dir, unique_name, LayoutError};
use super::registry::manifest::Descriptor;
use super::store::{verify, ImageStore, StoreError};

/// What failed while storing and unpacking one layer; each variant names the layer's blob digest.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("layer {layer}: creating its temp blob file")]
    CreateTempBlob {
        layer: Digest,
        #[source]
        source: LayoutError,
    },
    #[error("layer {layer}: creating its temp directory {path}")]
    CreateTempDir {
        layer: Digest,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("layer {layer}: reading or decompressing the blob")]
    Read {
        layer: Digest,
        #[source]
        source: io::Error,
    },
    #[error("layer {layer}: unpacking")]
    Extract {
        layer: Digest,
        #[source]
        source: ExtractError,
    },
    #[error("layer {layer}: uncompressed, it is larger than its budget of {limit} bytes")]
    OverBudget { layer: Digest, limit: u64 },
    #[error("layer {layer}: verifying the compressed blob")]
    VerifyBlob {
        layer: Digest,
        #[source]
        source: StoreError,
    },
    #[error("layer {layer}: uncompressed content has digest {actual}, the config's diff_id is {expected}")]
    DiffIdMismatch { layer: Digest, expected: Digest, actual: Digest },
    #[error("layer {layer}: committing the blob")]
    CommitBlob {
        layer: Digest,
        #[source]
        source: LayoutError,
    },
    #[error("layer {layer}: moving the unpacked directory into place at {path}")]
    CommitDir {
        layer: Digest,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Where the compressed bytes go while they stream: the temp blob file, or nowhere if the blob is already stored.
enum BlobSink {
    File(BufWriter<File>),
    Discard,
}

impl Write for BlobSink {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        match self {
            BlobSink::File(file) => file.write(bytes),
            BlobSink::Discard => Ok(bytes.len()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            BlobSink::File(file) => file.flush(),
            BlobSink::Discard => Ok(()),
        }
    }
}

/// Removes whatever temp files and directories are still registered when it goes out of scope: on error and on
/// panic alike, nothing half-written stays behind.
#[derive(Default)]
struct TempCleanup {
    blob_file: Option<PathBuf>,
    layer_dir: Option<PathBuf>,
}

impl Drop for TempCleanup {
    fn drop(&mut self) {
        if let Some(path) = self.blob_file.take() {
            let _ = fs::remove_file(path);
        }
        if let Some(path) = self.layer_dir.take() {
            let _ = fs::remove_dir_all(path);
        }
    }
}

/// Stores the layer blob `layer` read from `source` (compressed bytes) and unpacks it as `diff_id`; parts
/// already present are not written again. Returns without reading `source` if both are present.
pub(crate) fn store_layer(
    store: &ImageStore,
    source: impl Read,
    layer: &Descriptor,
    diff_id: &Digest,
    options: &ExtractOptions,
) -> Result<(), UnpackError> {
    let need_blob = !store.has_blob(&layer.digest);
    let need_dir = !store.has_layer(diff_id);
    if !need_blob && !need_dir {
        return Ok(());
    }
    let digest = &layer.digest;
    let mut cleanup = TempCleanup::default();
    let sink = if need_blob {
        let (file, path) = store
            .layout()
            .create_temp_file("layer")
            .map_err(|source| UnpackError::CreateTempBlob { layer: digest.clone(), source })?;
        cleanup.blob_file = Some(path);
        BlobSink::File(BufWriter::with_capacity(1 << 20, file))
    } else {
        BlobSink::Discard
    };
    let temp_dir = if need_dir {
        let path = store.layers_root().join(format!(".tmp-{}", unique_name(diff_id.short())));
        fs::create_dir(&path).map_err(|source| UnpackError::CreateTempDir {
            layer: digest.clone(),
            path: path.clone(),
            source,
        })?;
        cleanup.layer_dir = Some(path.clone());
        Some(path)
    } else {
        None
    };

    let read_error = |source| UnpackError::Read { layer: digest.clone(), source };
    let compressed = HashingReader::new(TeeReader::new(source, sink));
    let mut buffered = BufReader::with_capacity(256 * 1024, compressed);
    // The manifest's size bounds the download (the caller takes no more), so it may bound the expansion: of the
    // extraction, and of whatever follows the tar's end, which is hashed too.
    let budget = LayerBudget::for_compressed_size(layer.size);
    let actual_diff_id = {
        let decompressed = decompress(&mut buffered).map_err(read_error)?;
        let mut uncompressed = HashingReader::new(decompressed.take(budget.bytes.saturating_add(1)));
        if let Some(dir) = &temp_dir {
            extract_layer(&mut uncompressed, dir, options, &budget)
                .map_err(|source| UnpackError::Extract { layer: digest.clone(), source })?;
        }
        let (actual, size, _) = uncompressed.finish().map_err(read_error)?;
        if size > budget.bytes {
            return Err(UnpackError::OverBudget { layer: digest.clone(), limit: budget.bytes });
        }
        actual
    };
    // Whatever follows the compressed stream (padding) belongs to the blob and its digest too.
    io::copy(&mut buffered, &mut io::sink()).map_err(read_error)?;
    let (actual_digest, size, tee) = buffered.into_inner().finish().map_err(read_error)?;
    verify(digest, &actual_digest, Some(layer.size), size)
        .map_err(|source| UnpackError::VerifyBlob { layer: digest.clone(), source })?;
    if &actual_diff_id != diff_id {
        return Err(UnpackError::DiffIdMismatch {
            layer: digest.clone(),
            expected: diff_id.clone(),
            actual: actual_diff_id,
        });
    }

    let (_, sink) = tee.into_parts();
    if let (BlobSink::File(writer), Some(temp_path)) = (sink, cleanup.blob_file.clone()) {
        let file = writer.into_inner().map_err(|error| read_error(error.into_error()))?;
        store
            .layout()
            .commit_blob(file, &temp_path, digest)
            .map_err(|source| UnpackError::CommitBlob { layer: digest.clone(), source })?;
        cleanup.blob_file = None;
    }
    if let Some(temp_dir) = temp_dir {
        commit_layer_dir(store, &temp_dir, diff_id, digest)?;
        cleanup.layer_dir = None;
    }
    Ok(())
}

/// Renames the verified temp directory to its final name; if another pull got there first, ours is dropped.
/// Anything else at that name (a symlink, a file) is not a layer keel completed: it is replaced.
fn commit_layer_dir(store: &ImageStore, temp_dir: &Path, diff_id: &Digest, layer: &Digest) -> Result<(), UnpackError> {
    let target = store.layer_dir(diff_id);
    let commit_error = |source| UnpackError::CommitDir { layer: layer.clone(), path: target.clone(), source };
    let mut result = fs::rename(temp_dir, &target);
    if result.is_err() && !store.has_layer(diff_id) && fs::symlink_metadata(&target).is_ok() {
        fs::remove_file(&target).map_err(commit_error)?;
        result = fs::rename(temp_dir, &target);
    }
    match result {
        Ok(()) => {}
        Err(error)
            if store.has_layer(diff_id)
                && matches!(error.raw_os_error(), Some(libc::EEXIST) | Some(libc::ENOTEMPTY)) =>
        {
            let _ = fs::remove_dir_all(temp_dir);
        }
        Err(source) => return Err(commit_error(source)),
    }
    sync_dir(store.layers_root()).map_err(|source| UnpackError::CommitBlob { layer: layer.clone(), source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::budget::MIN_LAYER_BYTES;

    #[test]
    fn what_follows_the_end_of_the_tar_is_held_to_the_budget_too() {
        let temp = tempfile::tempdir().unwrap();
        let store = ImageStore::open(&temp.path().join("images"), &temp.path().join("layers")).unwrap();
        // The tar ends at its first zero block; 100 MiB of zeros follow, which the diff_id would hash: a few KiB
        // of zstd.
        let compressed = zstd::encode_all(io::repeat(0).take(100 << 20), 3).unwrap();
        let layer = Descriptor {
            media_type: String::new(),
            digest: Digest::of_bytes(&compressed),
            size: compressed.len() as u64,
            platform: None,
            annotations: Default::default(),
        };
        let error = store_layer(&store, &compressed[..], &layer, &Digest::of_bytes(b""), &ExtractOptions::default())
            .expect_err("100 MiB after the tar's end must not fit a layer of a few KiB");
        assert!(matches!(error, UnpackError::OverBudget { limit: MIN_LAYER_BYTES, .. }), "{error:?}");
        assert_eq!(std::fs::read_dir(store.layers_root()).unwrap().count(), 0, "no temp layer dir is left");
    }
}
