//! Lenient serde types for manifests, indexes and image configs (Docker schema 2 and OCI), and platform choice.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// The annotation skopeo and umoci use to name an image in an OCI layout's `index.json`.
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";

/// The `Accept` header for manifest requests: all four kinds, or Docker Hub falls back to schema 1.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// A content descriptor, as manifests, indexes and `index.json` carry them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// The platform this binary runs on, in OCI's architecture names.
    pub fn host() -> Platform {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        Platform { architecture: architecture.to_string(), os: "linux".to_string(), variant: None }
    }

    /// Whether an index entry's platform serves us; variants are only compared when both sides name one.
    pub fn matches(&self, other: &Platform) -> bool {
        let variant_ok = match (&self.variant, &other.variant) {
            (Some(wanted), Some(offered)) => wanted == offered,
            _ => true,
        };
        self.os == other.os && self.architecture == other.architecture && variant_ok
    }
}

/// A single-platform image manifest (Docker schema 2 or OCI).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

/// A manifest list or OCI index.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
}

impl ImageIndex {
    /// The first entry for `platform`, skipping attestation manifests (which carry `unknown/unknown`).
    pub fn select(&self, platform: &Platform) -> Option<&Descriptor> {
        self.manifests.iter().find(|entry| entry.platform.as_ref().is_some_and(|offered| platform.matches(offered)))
    }
}

/// The part of an image config keel needs to verify layers; everything else stays in the stored blob.
#[derive(Debug, Clone, Deserialize)]
pub struct ImageConfig {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    pub rootfs: RootFs,
}

/// `rootfs.type` is often missing in real images (oci-spec chokes on that; we do not ask for it).
#[derive(Debug, Clone, Deserialize)]
pub struct RootFs {
    #[serde(default)]
    pub diff_ids: Vec<Digest>,
}

/// What a manifest document turned out to be.
pub enum ManifestKind {
    Image(ImageManifest),
    Index(ImageIndex),
}

/// Tells an index from an image manifest by media type (header or body), else by shape.
pub fn parse_manifest(bytes: &[u8], content_type: Option<&str>) -> Result<ManifestKind, serde_json::Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
    }
    let probe: Probe = serde_json::from_slice(bytes)?;
    let media_type = probe.media_type.as_deref().or(content_type).unwrap_or_default();
    let is_index = media_type.starts_with(OCI_INDEX)
        || media_type.starts_with(DOCKER_MANIFEST_LIST)
        || (media_type.is_empty() && probe.manifests.is_some());
    if is_index {
        Ok(ManifestKind::Index(serde_json::from_slice(bytes)?))
    } else {
        Ok(ManifestKind::Image(serde_json::from_slice(bytes)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX_A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const HEX_B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    #[test]
    fn index_selects_the_wanted_platform_and_skips_attestations() {
        let json = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST_LIST}","manifests":[
            {{"mediaType":"{DOCKER_MANIFEST}","digest":"{HEX_A}","size":1,"platform":{{"architecture":"unknown","os":"unknown"}}}},
            {{"mediaType":"{DOCKER_MANIFEST}","digest":"{HEX_B}","size":2,"platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#
        );
        let ManifestKind::Index(index) = parse_manifest(json.as_bytes(), None).unwrap() else { panic!("not an index") };
        let amd64 = Platform { architecture: "amd64".into(), os: "linux".into(), variant: None };
        assert_eq!(index.select(&amd64).unwrap().digest.to_string(), HEX_B);
    }

    #[test]
    fn config_without_rootfs_type_is_accepted() {
        let json = format!(r#"{{"architecture":"amd64","os":"linux","rootfs":{{"diff_ids":["{HEX_A}"]}}}}"#);
        let config: ImageConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(config.rootfs.diff_ids.len(), 1);
    }

    #[test]
    fn manifest_without_media_type_is_told_apart_by_shape() {
        let json = format!(r#"{{"schemaVersion":2,"config":{{"digest":"{HEX_A}","size":3}},"layers":[]}}"#);
        assert!(matches!(parse_manifest(json.as_bytes(), None).unwrap(), ManifestKind::Image(_)));
    }
}
