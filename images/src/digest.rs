//! Content digests (`sha256:<hex>`) and the readers/writers that hash bytes while they stream.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

/// Why a digest string was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum DigestError {
    #[error("digest {digest:?}: only sha256 is supported")]
    UnsupportedAlgorithm { digest: String },
    #[error("digest {digest:?}: expected 64 lowercase hex characters after `sha256:`")]
    MalformedHex { digest: String },
}

/// A sha256 content digest; the only algorithm registries and OCI layouts use in practice.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    hex: String,
}

impl Digest {
    /// The 64 lowercase hex characters, as used for blob file names.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The first 12 hex characters: for readable temp and log names only, never an identity (a 48-bit prefix
    /// collision can be made).
    pub fn short(&self) -> &str {
        &self.hex[..12]
    }

    /// The digest of a byte slice held in memory (manifests, configs).
    pub fn of_bytes(bytes: &[u8]) -> Digest {
        let mut hasher = Sha256::new();
        hasher.update(bytes);
        Digest::from_hasher(hasher)
    }

    fn from_hasher(hasher: Sha256) -> Digest {
        Digest { hex: to_hex(&hasher.finalize()) }
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let Some(hex) = text.strip_prefix("sha256:") else {
            return Err(DigestError::UnsupportedAlgorithm { digest: text.to_string() });
        };
        let well_formed = hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !well_formed {
            return Err(DigestError::MalformedHex { digest: text.to_string() });
        }
        Ok(Digest { hex: hex.to_string() })
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Lowercase hex of arbitrary bytes; small enough not to warrant the `hex` crate.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(DIGITS[usize::from(byte >> 4)] as char);
        out.push(DIGITS[usize::from(byte & 0xf)] as char);
    }
    out
}

/// Hashes and counts everything read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader { inner, hasher: Sha256::new(), bytes: 0 }
    }

    /// Bytes read so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// Reads the rest of the stream (so trailing padding is hashed too) and returns the digest and byte count.
    pub fn finish(mut self) -> io::Result<(Digest, u64, R)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((Digest::from_hasher(self.hasher), self.bytes, self.inner))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let count = self.inner.read(buf)?;
        self.hasher.update(&buf[..count]);
        self.bytes += count as u64;
        Ok(count)
    }
}

/// Copies everything read from `inner` into `copy` as well: the blob file gets the compressed bytes while the
/// decompressor reads them.
pub struct TeeReader<R, W> {
    inner: R,
    copy: W,
}

impl<R: Read, W: Write> TeeReader<R, W> {
    pub fn new(inner: R, copy: W) -> Self {
        TeeReader { inner, copy }
    }

    pub fn into_parts(self) -> (R, W) {
        (self.inner, self.copy)
    }
}

impl<R: Read, W: Write> Read for TeeReader<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let count = self.inner.read(buf)?;
        self.copy.write_all(&buf[..count])?;
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_of_empty_input_is_the_well_known_one() {
        assert_eq!(
            Digest::of_bytes(b"").to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn parse_rejects_other_algorithms_and_bad_hex() {
        assert!("sha512:abcd".parse::<Digest>().is_err());
        assert!("sha256:ABCD".parse::<Digest>().is_err());
        assert!(format!("sha256:{}", "g".repeat(64)).parse::<Digest>().is_err());
        let good = format!("sha256:{}", "a".repeat(64));
        assert_eq!(good.parse::<Digest>().unwrap().to_string(), good);
    }

    #[test]
    fn hashing_reader_matches_in_memory_digest() {
        let data = vec![7u8; 100_000];
        let mut reader = HashingReader::new(&data[..]);
        let mut first = [0u8; 10];
        reader.read_exact(&mut first).unwrap();
        let (digest, bytes, _) = reader.finish().unwrap();
        assert_eq!(bytes, 100_000);
        assert_eq!(digest, Digest::of_bytes(&data));
    }
}
