//! Reads a bundle from any `Read` as it arrives: checks the head (sizes bounded before anything is read,
//! signature, manifest, `compatible`, version order) before handing out a payload, then hands out each payload as a
//! `Read` that hashes while it streams and fails at the payload's end when the bytes do not match the manifest.

use std::cmp::Ordering;
use std::fmt;
use std::io::{self, Read};
use std::time::{Duration, Instant};

use ed25519_dalek::{Signature, VerifyingKey};
use ring::digest::{Context as Sha256, SHA256};

use super::head::Header;
use super::manifest::{Manifest, ManifestError, PayloadEntry, PayloadName, Sha256Digest};
use super::{FORMAT_VERSION, HEADER_LEN, MAGIC, MAX_MANIFEST_LEN, SIGNATURE_LEN, UPDATE_KEYS_DIR};
use crate::version;

/// What a host accepts: whose signature, which `compatible`, and whether an older version may replace its own.
#[derive(Debug, Clone, Copy)]
pub struct TrustPolicy<'a> {
    /// The update keys the running image trusts (from [`UPDATE_KEYS_DIR`]).
    pub keys: &'a [VerifyingKey],
    /// The running OS's `KEEL_COMPATIBLE`.
    pub compatible: &'a str,
    /// The running OS's version.
    pub running_version: &'a str,
    /// `[update] allow_downgrade`.
    pub allow_downgrade: bool,
}

/// The part of a bundle a read was in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BundlePart {
    Header,
    Manifest,
    Signature,
    Payload(PayloadName),
    /// After the last payload.
    End,
}

impl fmt::Display for BundlePart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BundlePart::Header => f.write_str("header"),
            BundlePart::Manifest => f.write_str("manifest"),
            BundlePart::Signature => f.write_str("signature"),
            BundlePart::Payload(name) => write!(f, "payload {name}"),
            BundlePart::End => f.write_str("end"),
        }
    }
}

/// Why a bundle is refused, with the part and byte offset where that showed.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("cannot read the bundle's {part} at byte {offset}")]
    Read {
        part: BundlePart,
        offset: u64,
        #[source]
        source: io::Error,
    },
    #[error("the bundle ends at byte {offset}, inside its {part}: {received} of {expected} bytes")]
    Truncated { part: BundlePart, offset: u64, received: u64, expected: u64 },
    #[error("not a keel update bundle: it starts with \"{found}\", not \"KEELBNDL\"")]
    Magic { found: String },
    #[error("the bundle is format {format}; this keel reads format {FORMAT_VERSION}")]
    Format { format: u32 },
    #[error("the bundle's header (bytes 12..16) gives a manifest of {length} bytes, more than the limit of {MAX_MANIFEST_LEN}")]
    ManifestTooLarge { length: u32 },
    #[error("no update key is trusted: the image has none in {UPDATE_KEYS_DIR}")]
    NoTrustedKeys,
    #[error("the bundle's signature (bytes {offset}..{}) matches none of the {keys} trusted update keys", .offset + SIGNATURE_LEN as u64)]
    Signature { offset: u64, keys: usize },
    #[error("the bundle's signed manifest is not a format {FORMAT_VERSION} manifest")]
    ManifestParse(#[source] serde_json::Error),
    #[error("the bundle's signed manifest cannot be installed")]
    Manifest(#[source] ManifestError),
    #[error("the bundle is for {bundle:?} hosts; this host is {host:?}")]
    Incompatible { bundle: String, host: String },
    #[error("the bundle's version {bundle} is older than the running {running}, and downgrades are not allowed")]
    Downgrade { bundle: String, running: String },
    #[error("the bundle's payload {name} (bytes {start}..{end}) has sha256 {actual}, the manifest says {expected}")]
    PayloadHash { name: PayloadName, start: u64, end: u64, expected: Sha256Digest, actual: Sha256Digest },
    #[error("the bundle has data after its last payload, at byte {offset}")]
    TrailingData { offset: u64 },
    #[error("the bundle is not read further after an error")]
    AfterError,
}

impl BundleError {
    /// The bundle error inside an `io::Error` from [`PayloadReader`], or the error itself when it came from
    /// elsewhere (the writer of an `io::copy`).
    pub fn from_io(error: io::Error) -> Result<BundleError, io::Error> {
        if !error.get_ref().is_some_and(|inner| inner.is::<BundleError>()) {
            return Err(error);
        }
        let kind = error.kind();
        match error.into_inner().map(|inner| inner.downcast::<BundleError>()) {
            Some(Ok(bundle_error)) => Ok(*bundle_error),
            // Checked above; kept total rather than panicking.
            Some(Err(other)) => Err(io::Error::new(kind, other)),
            None => Err(io::Error::from(kind)),
        }
    }

    fn into_io(self) -> io::Error {
        let kind = match &self {
            BundleError::Truncated { .. } => io::ErrorKind::UnexpectedEof,
            BundleError::Read { source, .. } => source.kind(),
            _ => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, self)
    }
}

/// A bundle whose head is verified, handing out its payloads in order.
pub struct BundleReader<R> {
    source: R,
    manifest: Manifest,
    head_len: u64,
    /// Bytes of the bundle read so far.
    offset: u64,
    /// Index of the next payload to hand out.
    next: usize,
    current: Option<Streaming>,
    failed: bool,
    /// Time spent hashing so far: what verifying costs beyond reading.
    hashing: Duration,
}

/// The payload being read.
struct Streaming {
    index: usize,
    start: u64,
    remaining: u64,
    hasher: Sha256,
    verified: bool,
}

impl<R: Read> BundleReader<R> {
    /// Reads the head and checks it against `policy`: the manifest length is bounded before it is read, the
    /// signature is verified (`verify_strict`) before the manifest is parsed, then `compatible` and the version
    /// order. Nothing of a payload has been read when this returns.
    pub fn open(mut source: R, policy: &TrustPolicy) -> Result<Self, BundleError> {
        let mut offset = 0;
        let mut header_bytes = [0u8; HEADER_LEN];
        read_full(&mut source, &mut header_bytes, BundlePart::Header, &mut offset)?;
        let header = Header::decode(&header_bytes);
        if header.magic != MAGIC {
            return Err(BundleError::Magic { found: header.magic.escape_ascii().to_string() });
        }
        if header.format != FORMAT_VERSION {
            return Err(BundleError::Format { format: header.format });
        }
        if header.manifest_len > MAX_MANIFEST_LEN {
            return Err(BundleError::ManifestTooLarge { length: header.manifest_len });
        }
        // At most 64 KiB, checked just above.
        let manifest_len = header.manifest_len as usize;
        let mut signed = Vec::with_capacity(HEADER_LEN + manifest_len);
        signed.extend_from_slice(&header_bytes);
        signed.resize(HEADER_LEN + manifest_len, 0);
        read_full(&mut source, &mut signed[HEADER_LEN..], BundlePart::Manifest, &mut offset)?;
        let mut signature = [0u8; SIGNATURE_LEN];
        let signature_offset = offset;
        read_full(&mut source, &mut signature, BundlePart::Signature, &mut offset)?;
        verify(policy.keys, &signed, &signature, signature_offset)?;

        let manifest: Manifest = serde_json::from_slice(&signed[HEADER_LEN..]).map_err(BundleError::ManifestParse)?;
        manifest.check(header.format).map_err(BundleError::Manifest)?;
        if manifest.compatible != policy.compatible {
            return Err(BundleError::Incompatible {
                bundle: manifest.compatible.clone(),
                host: policy.compatible.to_owned(),
            });
        }
        if !policy.allow_downgrade && version::compare(&manifest.version, policy.running_version) == Ordering::Less {
            return Err(BundleError::Downgrade {
                bundle: manifest.version.clone(),
                running: policy.running_version.to_owned(),
            });
        }
        Ok(BundleReader {
            source,
            manifest,
            head_len: offset,
            offset,
            next: 0,
            current: None,
            failed: false,
            hashing: Duration::ZERO,
        })
    }

    /// The verified manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Bytes of the bundle read so far: progress, against [`BundleReader::bundle_len`].
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Time spent hashing payloads so far.
    pub fn hashing_time(&self) -> Duration {
        self.hashing
    }

    /// The bundle's whole length as its manifest gives it.
    pub fn bundle_len(&self) -> u64 {
        self.head_len.saturating_add(self.manifest.payload_bytes())
    }

    /// The next payload, in manifest order, or `None` after the last. The rest of a payload not read to its end is
    /// read and checked first; its error, if any, is returned here.
    pub fn next_payload(&mut self) -> Result<Option<PayloadReader<'_, R>>, BundleError> {
        self.finish_current()?;
        let Some(entry) = self.manifest.payloads.get(self.next).cloned() else {
            return Ok(None);
        };
        self.current = Some(Streaming {
            index: self.next,
            start: self.offset,
            remaining: entry.size,
            hasher: Sha256::new(&SHA256),
            verified: false,
        });
        self.next += 1;
        Ok(Some(PayloadReader { entry, bundle: self }))
    }

    /// Reads and checks whatever payloads were not read, and that nothing follows the last one.
    pub fn finish(mut self) -> Result<Manifest, BundleError> {
        while self.next_payload()?.is_some() {}
        self.finish_current()?;
        let mut byte = [0u8; 1];
        loop {
            return match self.source.read(&mut byte) {
                Ok(0) => Ok(self.manifest),
                Ok(_) => Err(BundleError::TrailingData { offset: self.offset }),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => Err(BundleError::Read { part: BundlePart::End, offset: self.offset, source }),
            };
        }
    }

    fn finish_current(&mut self) -> Result<(), BundleError> {
        let mut buffer = Vec::new();
        while self.current.as_ref().is_some_and(|streaming| !streaming.verified) {
            if buffer.is_empty() {
                buffer = vec![0u8; 64 * 1024];
            }
            self.read_payload(&mut buffer)?;
        }
        Ok(())
    }

    fn read_payload(&mut self, buf: &mut [u8]) -> Result<usize, BundleError> {
        if self.failed {
            return Err(BundleError::AfterError);
        }
        let result = self.read_payload_unchecked(buf);
        self.failed = result.is_err();
        result
    }

    fn read_payload_unchecked(&mut self, buf: &mut [u8]) -> Result<usize, BundleError> {
        let Some(streaming) = self.current.as_mut() else {
            return Ok(0);
        };
        let Some(entry) = self.manifest.payloads.get(streaming.index) else {
            return Ok(0);
        };
        if streaming.remaining == 0 {
            // Only an empty payload gets here unverified: the read that took the last byte checked the others.
            if !streaming.verified {
                check_digest(streaming, entry, self.offset)?;
            }
            return Ok(0);
        }
        if buf.is_empty() {
            return Ok(0);
        }
        let want = buf.len().min(usize::try_from(streaming.remaining).unwrap_or(usize::MAX));
        let count = loop {
            match self.source.read(&mut buf[..want]) {
                Ok(0) => {
                    return Err(BundleError::Truncated {
                        part: BundlePart::Payload(entry.name),
                        offset: self.offset,
                        received: entry.size - streaming.remaining,
                        expected: entry.size,
                    })
                }
                // A source claiming more than it was given cannot move the count past the buffer.
                Ok(count) => break count.min(want),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(BundleError::Read {
                        part: BundlePart::Payload(entry.name),
                        offset: self.offset,
                        source,
                    })
                }
            }
        };
        let hashing_from = Instant::now();
        streaming.hasher.update(&buf[..count]);
        self.hashing += hashing_from.elapsed();
        streaming.remaining -= count as u64;
        self.offset += count as u64;
        if streaming.remaining == 0 {
            // The read that completes the payload fails instead of returning its last bytes: a consumer that
            // stops after exactly `size` bytes still sees the mismatch.
            check_digest(streaming, entry, self.offset)?;
        }
        Ok(count)
    }
}

fn check_digest(streaming: &mut Streaming, entry: &PayloadEntry, end: u64) -> Result<(), BundleError> {
    let digest = std::mem::replace(&mut streaming.hasher, Sha256::new(&SHA256)).finish();
    let mut bytes = [0u8; 32];
    bytes.copy_from_slice(digest.as_ref());
    let actual = Sha256Digest(bytes);
    if actual != entry.sha256 {
        return Err(BundleError::PayloadHash {
            name: entry.name,
            start: streaming.start,
            end,
            expected: entry.sha256,
            actual,
        });
    }
    streaming.verified = true;
    Ok(())
}

fn verify(
    keys: &[VerifyingKey],
    signed: &[u8],
    signature: &[u8; SIGNATURE_LEN],
    offset: u64,
) -> Result<(), BundleError> {
    if keys.is_empty() {
        return Err(BundleError::NoTrustedKeys);
    }
    let signature = Signature::from_bytes(signature);
    if keys.iter().any(|key| key.verify_strict(signed, &signature).is_ok()) {
        Ok(())
    } else {
        Err(BundleError::Signature { offset, keys: keys.len() })
    }
}

/// Fills `buf` from `source`, counting what was read into `offset`; the end of the source is an error naming
/// `part`.
fn read_full(source: &mut impl Read, buf: &mut [u8], part: BundlePart, offset: &mut u64) -> Result<(), BundleError> {
    let mut filled = 0;
    while filled < buf.len() {
        match source.read(&mut buf[filled..]) {
            Ok(0) => {
                return Err(BundleError::Truncated {
                    part,
                    offset: *offset,
                    received: filled as u64,
                    expected: buf.len() as u64,
                })
            }
            Ok(count) => {
                let count = count.min(buf.len() - filled);
                filled += count;
                *offset += count as u64;
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => return Err(BundleError::Read { part, offset: *offset, source }),
        }
    }
    Ok(())
}

/// One payload of a bundle as a `Read`. It is good only once `read` has returned `Ok(0)`: a wrong hash or a
/// truncated payload is an error of the read that would have completed it. Errors are `io::Error`s carrying a
/// [`BundleError`] ([`BundleError::from_io`] takes it back).
pub struct PayloadReader<'a, R> {
    entry: PayloadEntry,
    bundle: &'a mut BundleReader<R>,
}

impl<R: Read> PayloadReader<'_, R> {
    /// What the manifest says of this payload.
    pub fn entry(&self) -> &PayloadEntry {
        &self.entry
    }

    /// Bytes of the bundle read so far, for progress.
    pub fn bundle_offset(&self) -> u64 {
        self.bundle.offset
    }
}

impl<R: Read> Read for PayloadReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.bundle.read_payload(buf).map_err(BundleError::into_io)
    }
}
