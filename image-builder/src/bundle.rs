//! The `bundle` command: builds a slot's contents ([`crate::slot_build`], the pipeline `image` runs) and writes
//! them as an update bundle signed with the given key ([`keel_os_image::bundle`]), byte for byte reproducibly.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use keel_os_image::bundle::{signed_head, HeadError, Manifest, PayloadEntry, PayloadName, Sha256Digest};
use sha2::{Digest, Sha256};

use crate::image::{step, ImageError};
use crate::slot_build::{self, Prepared, SlotInputs, SlotSources};
use crate::update_key::{self, UpdateKeyError};

/// What to build, from the command line.
#[derive(Debug, Clone)]
pub struct BundleRequest {
    /// As for `image`; without update keys, the bundle's OS trusts the signing key's own.
    pub sources: SlotSources,
    pub out: PathBuf,
    /// The secret key file that signs the bundle.
    pub key: PathBuf,
}

/// What was built.
#[derive(Debug, Clone)]
pub struct BundleSummary {
    pub bundle: PathBuf,
    pub manifest: Manifest,
    /// The bundle's length in bytes.
    pub size: u64,
    /// The kernel in the bundle: `linux-image-6.1.0-57-amd64 6.1.192-3 (6.1.0-57-amd64)`.
    pub kernel: String,
}

#[derive(Debug, thiserror::Error)]
pub enum BundleBuildError {
    #[error("building the slot's kernel, initramfs and root image failed")]
    Build(#[source] ImageError),
    #[error("reading the signing key failed")]
    SigningKey(#[source] UpdateKeyError),
    #[error("cannot read the {name} payload {path}")]
    ReadPayload {
        name: PayloadName,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the {name} payload {path} changed while the bundle was written")]
    PayloadChanged { name: PayloadName, path: PathBuf },
    #[error("cannot sign the manifest")]
    Head(#[source] HeadError),
    #[error("cannot write the bundle {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl BundleBuildError {
    /// Whether the error is the user's to fix (exit code 100).
    pub fn is_usage(&self) -> bool {
        match self {
            BundleBuildError::Build(error) => error.is_usage(),
            BundleBuildError::SigningKey(error) => error.is_usage(),
            _ => false,
        }
    }
}

/// Builds the bundle `request` describes.
pub fn build(request: &BundleRequest) -> Result<BundleSummary, BundleBuildError> {
    let started = Instant::now();
    let Prepared { recipe, epoch, mut update_keys } =
        slot_build::prepare(&request.sources).map_err(BundleBuildError::Build)?;
    let signing_key = update_key::read_secret(&request.key).map_err(BundleBuildError::SigningKey)?;
    // The bundle's OS must be able to take the next bundle from the same signer unless told whom to trust instead.
    if update_keys.is_empty() {
        update_keys.push(signing_key.verifying_key());
    }
    let version = &recipe.recipe.version;

    let work = slot_build::work_dir_beside(&request.out).map_err(BundleBuildError::Build)?;
    let work = work.path();
    let slot = slot_build::build(&SlotInputs {
        recipe: &recipe,
        init: &request.sources.init,
        container_init: &request.sources.container_init,
        cache: &request.sources.cache,
        preload: &request.sources.preload,
        update_keys: &update_keys,
        epoch,
        work,
    })
    .map_err(BundleBuildError::Build)?;
    let initrd = work.join("initrd.img");
    std::fs::write(&initrd, &slot.initrd).map_err(|source| BundleBuildError::Write { path: initrd.clone(), source })?;

    let sources = [
        (PayloadName::Kernel, slot.kernel.vmlinuz()),
        (PayloadName::Initramfs, initrd),
        (PayloadName::Root, slot.root_image.clone()),
    ];
    let entries = sources.iter().map(|(name, path)| describe_payload(*name, path)).collect::<Result<Vec<_>, _>>()?;
    let manifest = Manifest::new(version, recipe.compatible(), entries);
    let head = signed_head(&manifest, &signing_key).map_err(BundleBuildError::Head)?;

    let partial = work.join("bundle");
    let write_error = |source| BundleBuildError::Write { path: partial.clone(), source };
    let mut out = File::options().write(true).create_new(true).open(&partial).map_err(write_error)?;
    out.write_all(&head).map_err(write_error)?;
    for ((name, path), entry) in sources.iter().zip(&manifest.payloads) {
        let read_error = |source| BundleBuildError::ReadPayload { name: *name, path: path.clone(), source };
        let copied = io::copy(&mut File::open(path).map_err(read_error)?, &mut out).map_err(write_error)?;
        if copied != entry.size {
            return Err(BundleBuildError::PayloadChanged { name: *name, path: path.clone() });
        }
    }
    out.sync_all().map_err(write_error)?;
    drop(out);
    std::fs::rename(&partial, &request.out)
        .map_err(|source| BundleBuildError::Write { path: request.out.clone(), source })?;
    let size = head.len() as u64 + manifest.payload_bytes();
    step(&format!("bundle {} ({size} bytes) in {:.1} s", request.out.display(), started.elapsed().as_secs_f64()));
    Ok(BundleSummary { bundle: request.out.clone(), manifest, size, kernel: slot.kernel.description() })
}

/// The manifest entry of the payload in `path`: its size and sha256.
fn describe_payload(name: PayloadName, path: &Path) -> Result<PayloadEntry, BundleBuildError> {
    let read_error = |source| BundleBuildError::ReadPayload { name, path: path.to_owned(), source };
    let mut file = File::open(path).map_err(read_error)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let count = match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(count) => count,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(read_error(error)),
        };
        hasher.update(&buffer[..count]);
        size += count as u64;
    }
    Ok(PayloadEntry { name, size, sha256: Sha256Digest(hasher.finalize().into()) })
}
