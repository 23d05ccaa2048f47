//! The build's fixed inputs for reproducibility: the timestamp from `SOURCE_DATE_EPOCH` and identifiers (UUIDs,
//! volume ids, hash seeds) derived from the OS version and a purpose name.

use sha2::{Digest, Sha256};

/// The epoch used when `SOURCE_DATE_EPOCH` is unset: 2025-11-29T00:00:00Z (the Makefile's fallback too).
pub const DEFAULT_SOURCE_DATE_EPOCH: u64 = 1_764_374_400;

#[derive(Debug, thiserror::Error)]
pub enum ReproducibleError {
    #[error("SOURCE_DATE_EPOCH={value:?} is not a number of seconds that fits in 32 bits")]
    ParseEpoch { value: String },
}

/// Reads `SOURCE_DATE_EPOCH`, or returns [`DEFAULT_SOURCE_DATE_EPOCH`]. The value must fit in 32 bits because cpio
/// stores it in 8 hex digits.
pub fn source_date_epoch() -> Result<u64, ReproducibleError> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(value) => parse_epoch(&value),
        Err(_) => Ok(DEFAULT_SOURCE_DATE_EPOCH),
    }
}

fn parse_epoch(value: &str) -> Result<u64, ReproducibleError> {
    value.trim().parse::<u32>().map(u64::from).map_err(|_| ReproducibleError::ParseEpoch { value: value.to_owned() })
}

/// Identifiers derived from the OS version, so that the same recipe always gives the same disk.
#[derive(Debug, Clone)]
pub struct DerivedIds {
    version: String,
}

impl DerivedIds {
    pub fn new(version: &str) -> Self {
        DerivedIds { version: version.to_owned() }
    }

    fn digest(&self, purpose: &str) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(b"keel-build\0");
        hasher.update(self.version.as_bytes());
        hasher.update(b"\0");
        hasher.update(purpose.as_bytes());
        hasher.finalize().into()
    }

    /// A UUID for `purpose` (e.g. `partition:esp`), lower-case, with RFC 9562 version 8 ("custom") and variant bits.
    pub fn uuid(&self, purpose: &str) -> String {
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&self.digest(purpose)[..16]);
        bytes[6] = (bytes[6] & 0x0f) | 0x80;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
        format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
    }

    /// A 32-bit id for `purpose`, e.g. a FAT volume id.
    pub fn u32(&self, purpose: &str) -> u32 {
        let digest = self.digest(purpose);
        u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_stable_and_distinct() {
        let ids = DerivedIds::new("0.1.0");
        let esp = ids.uuid("partition:esp");
        assert_eq!(esp, DerivedIds::new("0.1.0").uuid("partition:esp"));
        assert_ne!(esp, ids.uuid("partition:keel-data"));
        assert_ne!(esp, DerivedIds::new("0.2.0").uuid("partition:esp"));
        assert_eq!(esp.len(), 36);
        assert_eq!(&esp[14..15], "8");
    }

    #[test]
    fn epoch_must_be_a_32_bit_number() {
        assert_eq!(parse_epoch("1764374400").unwrap(), 1_764_374_400);
        assert!(parse_epoch("yesterday").is_err());
        assert!(parse_epoch("99999999999").is_err());
    }
}
