//! The bundle's head: the fixed header, the manifest and the ed25519 signature over both, as a writer lays them
//! out and a reader splits them.

use ed25519_dalek::{Signer, SigningKey};

use super::manifest::{Manifest, ManifestError};
use super::{FORMAT_VERSION, HEADER_LEN, MAGIC, MAX_MANIFEST_LEN};

/// A manifest the writer refuses: a reader would refuse the bundle.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HeadError {
    #[error("the manifest is {length} bytes, more than the {MAX_MANIFEST_LEN} a bundle may carry")]
    ManifestTooLarge { length: usize },
    #[error("the manifest is not installable")]
    Manifest(#[source] ManifestError),
}

/// The parsed fixed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub magic: [u8; 8],
    pub format: u32,
    pub manifest_len: u32,
}

impl Header {
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut bytes = [0u8; HEADER_LEN];
        bytes[..8].copy_from_slice(&self.magic);
        bytes[8..12].copy_from_slice(&self.format.to_le_bytes());
        bytes[12..16].copy_from_slice(&self.manifest_len.to_le_bytes());
        bytes
    }

    pub fn decode(bytes: &[u8; HEADER_LEN]) -> Self {
        let word = |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        let mut magic = [0u8; 8];
        magic.copy_from_slice(&bytes[..8]);
        Header { magic, format: word(8), manifest_len: word(12) }
    }
}

/// Header, manifest and signature: the bytes a bundle starts with, before its payloads. ed25519 signatures are
/// deterministic, so the same manifest and key always give the same bytes.
pub fn signed_head(manifest: &Manifest, key: &SigningKey) -> Result<Vec<u8>, HeadError> {
    manifest.check(FORMAT_VERSION).map_err(HeadError::Manifest)?;
    let json = manifest.to_json();
    let manifest_len = match u32::try_from(json.len()) {
        Ok(length) if length <= MAX_MANIFEST_LEN => length,
        _ => return Err(HeadError::ManifestTooLarge { length: json.len() }),
    };
    let mut head = Header { magic: MAGIC, format: FORMAT_VERSION, manifest_len }.encode().to_vec();
    head.extend_from_slice(&json);
    let signature = key.sign(&head);
    head.extend_from_slice(&signature.to_bytes());
    Ok(head)
}
