//! The update bundle: one file with what a root slot needs (kernel, initramfs, root filesystem image) behind an
//! ed25519-signed manifest. `keel-build bundle` writes it; an install reads it with [`BundleReader`] while it
//! downloads. `docs/update.md` describes the format for people.
//!
//! | bytes | what |
//! |---|---|
//! | 0..8 | magic `KEELBNDL` |
//! | 8..12 | format version, u32 little-endian: [`FORMAT_VERSION`] |
//! | 12..16 | manifest length `M`, u32 little-endian, at most [`MAX_MANIFEST_LEN`] |
//! | 16..16+M | the manifest, JSON ([`Manifest`]) |
//! | next 64 | ed25519 signature over bytes 0..16+M (header and manifest) |
//! | then | the payloads, back to back in manifest order: kernel, initramfs, root |
//!
//! A bundle comes from the network and is hostile until verified: the reader bounds the manifest length before
//! reading it, verifies the signature before parsing the manifest, bounds each payload's size, and checks each
//! payload's sha256 as it streams, failing at the end of the payload that does not match.

mod head;
pub mod keys;
pub mod manifest;
mod reader;

pub use head::{signed_head, HeadError};
pub use manifest::{Manifest, ManifestError, PayloadEntry, PayloadName, Sha256Digest};
pub use reader::{BundleError, BundlePart, BundleReader, PayloadReader, TrustPolicy};

/// The first 8 bytes of every bundle.
pub const MAGIC: [u8; 8] = *b"KEELBNDL";
/// The bundle format this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Length of the fixed header: magic, format version, manifest length.
pub const HEADER_LEN: usize = 16;
/// The longest manifest a reader accepts: three payloads take about 400 bytes.
pub const MAX_MANIFEST_LEN: u32 = 64 * 1024;
/// Length of the ed25519 signature after the manifest.
pub const SIGNATURE_LEN: usize = 64;
/// The largest payload a reader accepts: a root slot is far smaller.
pub const MAX_PAYLOAD_SIZE: u64 = 4 << 30;

/// The `compatible` of a recipe that names none: the one architecture keel builds for.
pub const DEFAULT_COMPATIBLE: &str = "keel-x86_64";

/// Directory, in the root filesystem, of the public keys whose bundles an image installs
/// (`keel-build image --update-key`): `0.pub`, `1.pub`, … in [`keys`]' public form.
pub const UPDATE_KEYS_DIR: &str = "/usr/share/keel/update-keys";

/// Path, in the root filesystem, of the `index`-th trusted update key.
pub fn update_key_path(index: usize) -> String {
    format!("{UPDATE_KEYS_DIR}/{index}.pub")
}

#[cfg(test)]
mod tests;
