//! Pulls an image from a registry into the store: manifest → platform → config → layers (streamed, verified,
//! unpacked) → manifest and config blobs → tag.

use std::fs::File;
use std::io::Read;

use super::digest::Digest;
use super::extract::ExtractOptions;
use super::progress::{ProgressReader, ProgressSink, PullEvent};
use super::reference::ImageReference;
use super::registry::manifest::{
    parse_manifest, Descriptor, ImageConfig, ManifestKind, Platform, DOCKER_MANIFEST, OCI_MANIFEST,
};
use super::registry::{FetchedManifest, RegistryClient, RegistryError};
use super::store::{ImageStore, StoreError};
use super::unpack::{store_layer, UnpackError};

/// What failed during a pull; each variant names the reference or digest.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error("pulling {reference}: fetching manifest {selector}")]
    FetchManifest {
        reference: String,
        selector: String,
        #[source]
        source: RegistryError,
    },
    #[error("pulling {reference}: manifest {digest} is not valid JSON of a known kind")]
    ParseManifest {
        reference: String,
        digest: Digest,
        #[source]
        source: serde_json::Error,
    },
    #[error("pulling {reference}: manifest digest is {actual}, the reference pins {expected}")]
    ManifestDigestMismatch { reference: String, expected: Digest, actual: Digest },
    #[error("pulling {reference}: no manifest for {os}/{architecture} in the index")]
    NoMatchingPlatform { reference: String, os: String, architecture: String },
    #[error("pulling {reference}: index {digest} points to another index")]
    NestedIndex { reference: String, digest: Digest },
    #[error("pulling {reference}: fetching blob {digest}")]
    FetchBlob {
        reference: String,
        digest: Digest,
        #[source]
        source: RegistryError,
    },
    #[error("pulling {reference}: reading blob {digest}")]
    ReadBlob {
        reference: String,
        digest: Digest,
        #[source]
        source: std::io::Error,
    },
    #[error("pulling {reference}: config {digest} does not verify")]
    VerifyConfig {
        reference: String,
        digest: Digest,
        #[source]
        source: StoreError,
    },
    #[error("pulling {reference}: config {digest} is not a valid image config")]
    ParseConfig {
        reference: String,
        digest: Digest,
        #[source]
        source: serde_json::Error,
    },
    #[error("pulling {reference}: manifest has {layers} layers but the config lists {diff_ids} diff_ids")]
    LayerCountMismatch { reference: String, layers: usize, diff_ids: usize },
    #[error("pulling {reference}")]
    Layer {
        reference: String,
        #[source]
        source: UnpackError,
    },
    #[error("pulling {reference}: storing {digest}")]
    Store {
        reference: String,
        digest: Digest,
        #[source]
        source: StoreError,
    },
}

/// Choices for a pull.
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// Which entry of a multi-platform index to take; the host's by default (linux/amd64 on keel's targets).
    pub platform: Platform,
    pub extract: ExtractOptions,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions { platform: Platform::host(), extract: ExtractOptions::default() }
    }
}

/// The result of a pull: what is now tagged in the store.
#[derive(Debug, Clone)]
pub struct PulledImage {
    pub reference: String,
    pub manifest_digest: Digest,
    pub layers: usize,
}

/// Pulls `reference` into `store`, reporting progress to `progress`. Layers already present are reused.
pub fn pull_image(
    client: &RegistryClient,
    store: &ImageStore,
    reference: &ImageReference,
    options: &PullOptions,
    progress: &dyn ProgressSink,
) -> Result<PulledImage, PullError> {
    let _writing = store.writer_guard();
    let name = reference.to_string();
    let selector = reference.manifest_selector();
    let top = fetch_manifest(client, reference, &selector)?;
    if let Some(pinned) = reference.digest() {
        if pinned != &top.digest {
            return Err(PullError::ManifestDigestMismatch {
                reference: name,
                expected: pinned.clone(),
                actual: top.digest,
            });
        }
    }
    let parse = |fetched: &FetchedManifest| {
        parse_manifest(&fetched.bytes, fetched.content_type.as_deref()).map_err(|source| PullError::ParseManifest {
            reference: name.clone(),
            digest: fetched.digest.clone(),
            source,
        })
    };
    let (fetched, manifest) = match parse(&top)? {
        ManifestKind::Image(manifest) => (top, manifest),
        ManifestKind::Index(index) => {
            let Some(entry) = index.select(&options.platform) else {
                return Err(PullError::NoMatchingPlatform {
                    reference: name,
                    os: options.platform.os.clone(),
                    architecture: options.platform.architecture.clone(),
                });
            };
            let child = fetch_manifest(client, reference, &entry.digest.to_string())?;
            if child.digest != entry.digest {
                return Err(PullError::ManifestDigestMismatch {
                    reference: name,
                    expected: entry.digest.clone(),
                    actual: child.digest,
                });
            }
            match parse(&child)? {
                ManifestKind::Image(manifest) => (child, manifest),
                ManifestKind::Index(_) => return Err(PullError::NestedIndex { reference: name, digest: child.digest }),
            }
        }
    };

    let config_bytes = fetch_config(client, store, reference, &manifest.config)?;
    let config: ImageConfig = serde_json::from_slice(&config_bytes).map_err(|source| PullError::ParseConfig {
        reference: name.clone(),
        digest: manifest.config.digest.clone(),
        source,
    })?;
    if config.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(PullError::LayerCountMismatch {
            reference: name,
            layers: manifest.layers.len(),
            diff_ids: config.rootfs.diff_ids.len(),
        });
    }
    progress.report(PullEvent::Resolved {
        reference: name.clone(),
        manifest: fetched.digest.clone(),
        layers: manifest.layers.len(),
        // Sizes come from the registry: a sum of hostile ones saturates instead of overflowing.
        total_bytes: manifest.layers.iter().fold(0u64, |total, layer| total.saturating_add(layer.size)),
    });

    for (index, (layer, diff_id)) in manifest.layers.iter().zip(&config.rootfs.diff_ids).enumerate() {
        progress.report(PullEvent::LayerStarted { layer: layer.digest.clone(), index, size: layer.size });
        let reused = pull_layer(client, store, reference, layer, diff_id, options, progress)?;
        progress.report(PullEvent::LayerDone { layer: layer.digest.clone(), index, reused });
    }

    // Config and manifest last, the tag after them: a failed pull leaves no image that looks complete.
    let store_error = |digest: &Digest| {
        let (name, digest) = (name.clone(), digest.clone());
        move |source| PullError::Store { reference: name, digest, source }
    };
    store.write_blob_bytes(&config_bytes, &manifest.config.digest).map_err(store_error(&manifest.config.digest))?;
    store.write_blob_bytes(&fetched.bytes, &fetched.digest).map_err(store_error(&fetched.digest))?;
    let media_type = match (&manifest.media_type, fetched.content_type.as_deref()) {
        (Some(media_type), _) => media_type.clone(),
        (None, Some(content_type)) if content_type.starts_with(DOCKER_MANIFEST) => DOCKER_MANIFEST.to_string(),
        _ => OCI_MANIFEST.to_string(),
    };
    let descriptor = Descriptor {
        media_type,
        digest: fetched.digest.clone(),
        size: fetched.bytes.len() as u64,
        platform: Some(options.platform.clone()),
        annotations: Default::default(),
    };
    store.tag(&name, &descriptor).map_err(store_error(&fetched.digest))?;
    progress.report(PullEvent::Done { reference: name.clone(), manifest: fetched.digest.clone() });
    Ok(PulledImage { reference: name, manifest_digest: fetched.digest, layers: manifest.layers.len() })
}

fn fetch_manifest(
    client: &RegistryClient,
    reference: &ImageReference,
    selector: &str,
) -> Result<FetchedManifest, PullError> {
    client.fetch_manifest(reference, selector).map_err(|source| PullError::FetchManifest {
        reference: reference.to_string(),
        selector: selector.to_string(),
        source,
    })
}

/// The config blob's bytes, from the store if present, else fetched and verified (not stored yet).
fn fetch_config(
    client: &RegistryClient,
    store: &ImageStore,
    reference: &ImageReference,
    config: &Descriptor,
) -> Result<Vec<u8>, PullError> {
    let name = reference.to_string();
    if store.has_blob(&config.digest) {
        return store.read_blob(&config.digest).map_err(|source| PullError::Store {
            reference: name,
            digest: config.digest.clone(),
            source,
        });
    }
    let blob = client.fetch_blob(reference, &config.digest, config.size).map_err(|source| PullError::FetchBlob {
        reference: name.clone(),
        digest: config.digest.clone(),
        source,
    })?;
    let mut bytes = Vec::new();
    // A config is small; the limit keeps a hostile server from filling memory.
    blob.reader.take(config.size.min(16 << 20) + 1).read_to_end(&mut bytes).map_err(|source| PullError::ReadBlob {
        reference: name.clone(),
        digest: config.digest.clone(),
        source,
    })?;
    let actual = Digest::of_bytes(&bytes);
    super::store::verify(&config.digest, &actual, Some(config.size), bytes.len() as u64)
        .map_err(|source| PullError::VerifyConfig { reference: name, digest: config.digest.clone(), source })?;
    Ok(bytes)
}

/// Brings one layer into the store; returns `true` if it was already complete.
fn pull_layer(
    client: &RegistryClient,
    store: &ImageStore,
    reference: &ImageReference,
    layer: &Descriptor,
    diff_id: &Digest,
    options: &PullOptions,
    progress: &dyn ProgressSink,
) -> Result<bool, PullError> {
    let name = reference.to_string();
    let have_blob = store.has_blob(&layer.digest);
    if have_blob && store.has_layer(diff_id) {
        return Ok(true);
    }
    let layer_error = |source| PullError::Layer { reference: name.clone(), source };
    if have_blob {
        // Unpack from the stored blob: it was verified when it was written.
        let file = File::open(store.blob_path(&layer.digest)).map_err(|source| PullError::ReadBlob {
            reference: name.clone(),
            digest: layer.digest.clone(),
            source,
        })?;
        store_layer(store, file, layer, diff_id, &options.extract).map_err(layer_error)?;
        return Ok(false);
    }
    let blob = client.fetch_blob(reference, &layer.digest, layer.size).map_err(|source| PullError::FetchBlob {
        reference: name.clone(),
        digest: layer.digest.clone(),
        source,
    })?;
    // Never take more than the descriptor promises: the digest check would fail anyway, after filling the disk.
    let reader =
        ProgressReader::new(blob.reader.take(layer.size.saturating_add(1)), progress, layer.digest.clone(), layer.size);
    store_layer(store, reader, layer, diff_id, &options.extract).map_err(layer_error)?;
    Ok(false)
}
