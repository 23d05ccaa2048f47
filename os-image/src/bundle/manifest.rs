//! The bundle's manifest: what the bundle is (OS version, `compatible`) and what each payload must be (size,
//! sha256), encoded as JSON, and the checks a manifest passes before anything trusts it.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{FORMAT_VERSION, MAX_PAYLOAD_SIZE};
use crate::version;

/// The longest allowed `compatible` string.
pub const MAX_COMPATIBLE_LEN: usize = 64;

/// The signed description of a bundle's contents. Serialised with its fields in this order, so the same values
/// always give the same bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The bundle format, [`FORMAT_VERSION`]; the header carries it too.
    pub format: u32,
    /// The OS version the bundle installs (the recipe's `version`).
    pub version: String,
    /// Which hosts may install it: equal to the running OS's `KEEL_COMPATIBLE`.
    pub compatible: String,
    /// The payloads in the order they follow the signature: [`PayloadName::ORDER`].
    pub payloads: Vec<PayloadEntry>,
}

/// One payload's name, size and digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayloadEntry {
    pub name: PayloadName,
    /// Bytes, at most [`MAX_PAYLOAD_SIZE`].
    pub size: u64,
    pub sha256: Sha256Digest,
}

/// What a payload is, and so where an install writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PayloadName {
    /// The kernel, as the ESP holds it (`vmlinuz`).
    Kernel,
    /// The initramfs (gzip cpio), as the ESP holds it.
    Initramfs,
    /// The root filesystem image (erofs), written to the slot's partition.
    Root,
}

impl PayloadName {
    /// Every payload, in bundle order.
    pub const ORDER: [PayloadName; 3] = [PayloadName::Kernel, PayloadName::Initramfs, PayloadName::Root];

    pub fn as_str(self) -> &'static str {
        match self {
            PayloadName::Kernel => "kernel",
            PayloadName::Initramfs => "initramfs",
            PayloadName::Root => "root",
        }
    }
}

impl fmt::Display for PayloadName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A sha256 digest, written as 64 lower-case hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sha256Digest(pub [u8; 32]);

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{self}")
    }
}

impl Serialize for Sha256Digest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Sha256Digest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        super::keys::decode_hex::<32>(&text)
            .map(Sha256Digest)
            .ok_or_else(|| serde::de::Error::custom("a sha256 must be 64 lower-case hex digits"))
    }
}

/// A manifest that parsed but describes no bundle this reader accepts.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManifestError {
    #[error("the manifest says format {manifest}, the header format {header}")]
    FormatMismatch { manifest: u32, header: u32 },
    #[error(
        "the manifest's version {version:?} is not a keel version: 1 to {} letters, digits, '.', '_', '~' or '-'",
        crate::version::MAX_VERSION_LEN
    )]
    Version { version: String },
    #[error(
        "the manifest's compatible {compatible:?} is not valid: 1 to {MAX_COMPATIBLE_LEN} letters, digits, '.', '_' \
         or '-'"
    )]
    Compatible { compatible: String },
    #[error(
        "the manifest lists the payloads [{found}]; format {FORMAT_VERSION} has kernel, initramfs, root in that order"
    )]
    Payloads { found: String },
    #[error("the manifest's payload {name} is {size} bytes, more than the {MAX_PAYLOAD_SIZE} a payload may have")]
    PayloadTooLarge { name: PayloadName, size: u64 },
}

/// Whether `compatible` may be a `compatible` string: 1 to [`MAX_COMPATIBLE_LEN`] letters, digits, `.`, `_`, `-`.
pub fn is_valid_compatible(compatible: &str) -> bool {
    !compatible.is_empty()
        && compatible.len() <= MAX_COMPATIBLE_LEN
        && compatible.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"._-".contains(&byte))
}

impl Manifest {
    /// A format-[`FORMAT_VERSION`] manifest.
    pub fn new(version: &str, compatible: &str, payloads: Vec<PayloadEntry>) -> Self {
        Manifest { format: FORMAT_VERSION, version: version.to_owned(), compatible: compatible.to_owned(), payloads }
    }

    /// The manifest's bytes as the bundle holds them.
    pub fn to_json(&self) -> Vec<u8> {
        // A struct of strings, integers and enums: serde_json cannot fail on it.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Checks what parsing alone does not: the format matches the header's, the version and `compatible` are
    /// usable as names, and the payloads are format 1's three, each within [`MAX_PAYLOAD_SIZE`].
    pub fn check(&self, header_format: u32) -> Result<(), ManifestError> {
        if self.format != header_format {
            return Err(ManifestError::FormatMismatch { manifest: self.format, header: header_format });
        }
        if !version::is_valid(&self.version) {
            return Err(ManifestError::Version { version: self.version.clone() });
        }
        if !is_valid_compatible(&self.compatible) {
            return Err(ManifestError::Compatible { compatible: self.compatible.clone() });
        }
        let names: Vec<PayloadName> = self.payloads.iter().map(|payload| payload.name).collect();
        if names != PayloadName::ORDER {
            let found: Vec<&str> = names.iter().map(|name| name.as_str()).collect();
            return Err(ManifestError::Payloads { found: found.join(", ") });
        }
        if let Some(payload) = self.payloads.iter().find(|payload| payload.size > MAX_PAYLOAD_SIZE) {
            return Err(ManifestError::PayloadTooLarge { name: payload.name, size: payload.size });
        }
        Ok(())
    }

    /// The entry of payload `name`.
    pub fn payload(&self, name: PayloadName) -> Option<&PayloadEntry> {
        self.payloads.iter().find(|payload| payload.name == name)
    }

    /// The bytes of all payloads together.
    pub fn payload_bytes(&self) -> u64 {
        self.payloads.iter().map(|payload| payload.size).fold(0, u64::saturating_add)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        let payloads = PayloadName::ORDER
            .iter()
            .map(|&name| PayloadEntry { name, size: 7, sha256: Sha256Digest([0xab; 32]) })
            .collect();
        Manifest::new("1.2.0", "keel-x86_64-qemu", payloads)
    }

    #[test]
    fn json_round_trips_in_a_fixed_form() {
        let manifest = manifest();
        let json = String::from_utf8(manifest.to_json()).unwrap();
        assert!(
            json.starts_with(r#"{"format":1,"version":"1.2.0","compatible":"keel-x86_64-qemu","payloads":[{"name":"kernel","size":7,"sha256":"abab"#),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<Manifest>(&json).unwrap(), manifest);
        assert_eq!(manifest.check(FORMAT_VERSION), Ok(()));
        assert_eq!(manifest.payload_bytes(), 21);
    }

    #[test]
    fn refuses_what_cannot_be_installed() {
        let mut wrong_order = manifest();
        wrong_order.payloads.swap(0, 2);
        let mut missing = manifest();
        missing.payloads.pop();
        let mut huge = manifest();
        huge.payloads[2].size = MAX_PAYLOAD_SIZE + 1;
        let mut version = manifest();
        version.version = "../../EFI".into();
        let mut compatible = manifest();
        compatible.compatible = String::new();
        let cases = [
            (wrong_order, ManifestError::Payloads { found: "root, initramfs, kernel".into() }),
            (missing, ManifestError::Payloads { found: "kernel, initramfs".into() }),
            (huge, ManifestError::PayloadTooLarge { name: PayloadName::Root, size: MAX_PAYLOAD_SIZE + 1 }),
            (version, ManifestError::Version { version: "../../EFI".into() }),
            (compatible, ManifestError::Compatible { compatible: String::new() }),
        ];
        for (manifest, error) in cases {
            assert_eq!(manifest.check(FORMAT_VERSION), Err(error));
        }
        assert_eq!(manifest().check(2), Err(ManifestError::FormatMismatch { manifest: 1, header: 2 }));
    }

    #[test]
    fn digests_must_be_lower_case_hex() {
        let json = String::from_utf8(manifest().to_json()).unwrap();
        for bad in ["AB".repeat(32), "ab".repeat(31), "zz".repeat(32)] {
            let text = json.replacen(&"ab".repeat(32), &bad, 1);
            assert!(serde_json::from_str::<Manifest>(&text).is_err(), "{bad}");
        }
        let unknown = json.replacen(r#""format":1,"#, r#""format":1,"extra":0,"#, 1);
        assert!(serde_json::from_str::<Manifest>(&unknown).is_err());
    }
}
