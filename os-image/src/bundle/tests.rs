//! The reader against bundles made in memory: a good one reads back; each attack is refused with an error that
//! names the part and the place, payload errors only at the end of the payload.

use std::io::{self, Cursor, Read};

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use super::head::Header;
use super::*;

const COMPATIBLE: &str = "keel-x86_64-test";

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn payload_bytes() -> [Vec<u8>; 3] {
    let root: Vec<u8> = (0..200_000u32).map(|index| (index % 251) as u8).collect();
    [b"kernel bytes".to_vec(), b"initramfs bytes, a few more".to_vec(), root]
}

fn manifest_for(version: &str, payloads: &[Vec<u8>; 3]) -> Manifest {
    let entries = PayloadName::ORDER
        .iter()
        .zip(payloads)
        .map(|(&name, bytes)| PayloadEntry {
            name,
            size: bytes.len() as u64,
            sha256: Sha256Digest(Sha256::digest(bytes).into()),
        })
        .collect();
    Manifest::new(version, COMPATIBLE, entries)
}

fn bundle_with(manifest: &Manifest, signer: &SigningKey, payloads: &[Vec<u8>; 3]) -> Vec<u8> {
    let mut bundle = signed_head(manifest, signer).unwrap();
    for payload in payloads {
        bundle.extend_from_slice(payload);
    }
    bundle
}

fn bundle(version: &str) -> Vec<u8> {
    let payloads = payload_bytes();
    bundle_with(&manifest_for(version, &payloads), &key(1), &payloads)
}

fn head_len(bundle: &[u8]) -> usize {
    let manifest_len = u32::from_le_bytes([bundle[12], bundle[13], bundle[14], bundle[15]]) as usize;
    HEADER_LEN + manifest_len + SIGNATURE_LEN
}

fn policy(keys: &[VerifyingKey]) -> TrustPolicy<'_> {
    TrustPolicy { keys, compatible: COMPATIBLE, running_version: "1.0.0", allow_downgrade: false }
}

fn open(bundle: &[u8], policy: &TrustPolicy) -> Result<BundleReader<Cursor<Vec<u8>>>, BundleError> {
    BundleReader::open(Cursor::new(bundle.to_vec()), policy)
}

fn trusted() -> Vec<VerifyingKey> {
    vec![key(9).verifying_key(), key(1).verifying_key()]
}

/// Reads every payload to its end; the first error, with the bytes of the payload it was in.
fn read_all(reader: &mut BundleReader<Cursor<Vec<u8>>>) -> Result<Vec<Vec<u8>>, (BundleError, Vec<u8>)> {
    let mut payloads = Vec::new();
    while let Some(mut payload) = reader.next_payload().map_err(|error| (error, Vec::new()))? {
        let mut bytes = Vec::new();
        match payload.read_to_end(&mut bytes) {
            Ok(_) => payloads.push(bytes),
            Err(error) => return Err((BundleError::from_io(error).unwrap(), bytes)),
        }
    }
    Ok(payloads)
}

#[test]
fn a_good_bundle_reads_back() {
    let bundle = bundle("1.1.0");
    let keys = trusted();
    let mut reader = open(&bundle, &policy(&keys)).unwrap();
    assert_eq!(reader.manifest().version, "1.1.0");
    assert_eq!(reader.offset(), head_len(&bundle) as u64, "no payload byte is read by open");
    assert_eq!(reader.bundle_len(), bundle.len() as u64);
    assert_eq!(read_all(&mut reader).unwrap(), payload_bytes());
    assert_eq!(reader.finish().unwrap().payloads.len(), 3);
}

#[test]
fn the_same_inputs_give_the_same_bytes() {
    assert_eq!(bundle("1.1.0"), bundle("1.1.0"));
}

#[test]
fn a_bad_signature_is_refused() {
    let keys = trusted();
    let original = bundle("1.1.0");

    let mut manifest_changed = original.clone();
    let at = original.windows(5).position(|window| window == b"1.1.0").unwrap();
    manifest_changed[at + 2] = b'9';
    let mut signature_changed = original.clone();
    signature_changed[head_len(&original) - 1] ^= 1;
    let payloads = payload_bytes();
    let other_signer = bundle_with(&manifest_for("1.1.0", &payloads), &key(2), &payloads);

    let signature_offset = (head_len(&original) - SIGNATURE_LEN) as u64;
    for bundle in [manifest_changed, signature_changed, other_signer] {
        let error = open(&bundle, &policy(&keys)).err().expect("refused");
        assert!(matches!(error, BundleError::Signature { offset, keys: 2 } if offset == signature_offset), "{error:?}");
        let end = signature_offset + SIGNATURE_LEN as u64;
        assert_eq!(
            error.to_string(),
            format!(
                "the bundle's signature (bytes {signature_offset}..{end}) matches none of the 2 trusted update keys"
            )
        );
    }
    assert!(matches!(open(&original, &policy(&[])), Err(BundleError::NoTrustedKeys)));
}

#[test]
fn a_wrong_hash_fails_at_the_end_of_its_payload() {
    let mut bundle = bundle("1.1.0");
    let last = bundle.len() - 10;
    bundle[last] ^= 0xff;
    let keys = trusted();
    let mut reader = open(&bundle, &policy(&keys)).unwrap();
    let (error, delivered) = read_all(&mut reader).unwrap_err();
    let root_start = (head_len(&bundle) + payload_bytes()[0].len() + payload_bytes()[1].len()) as u64;
    match &error {
        BundleError::PayloadHash { name: PayloadName::Root, start, end, .. } => {
            assert_eq!((*start, *end), (root_start, bundle.len() as u64));
        }
        other => panic!("{other:?}"),
    }
    assert!(error.to_string().starts_with(&format!("the bundle's payload root (bytes {root_start}..")), "{error}");
    assert!(!delivered.is_empty(), "the error comes after the payload streamed, not before");
    assert!(matches!(reader.next_payload(), Err(BundleError::AfterError)));
}

#[test]
fn the_read_completing_a_payload_carries_its_error() {
    let mut bundle = bundle("1.1.0");
    let kernel_start = head_len(&bundle);
    bundle[kernel_start] ^= 1;
    let keys = trusted();
    let mut reader = open(&bundle, &policy(&keys)).unwrap();
    let mut kernel = reader.next_payload().unwrap().unwrap();
    let size = kernel.entry().size as usize;
    let mut byte = [0u8; 1];
    for _ in 1..size {
        assert_eq!(kernel.read(&mut byte).unwrap(), 1);
    }
    let error = BundleError::from_io(kernel.read(&mut byte).unwrap_err()).unwrap();
    assert!(matches!(error, BundleError::PayloadHash { name: PayloadName::Kernel, .. }), "{error:?}");
}

#[test]
fn a_skipped_payload_is_still_checked() {
    let mut bundle = bundle("1.1.0");
    let initramfs_start = head_len(&bundle) + payload_bytes()[0].len();
    bundle[initramfs_start + 3] ^= 1;
    let keys = trusted();
    let mut reader = open(&bundle, &policy(&keys)).unwrap();
    // Handed out and never read: the kernel, then the initramfs.
    assert!(reader.next_payload().unwrap().is_some());
    assert!(reader.next_payload().unwrap().is_some());
    let error = reader.next_payload().err().unwrap();
    assert!(matches!(error, BundleError::PayloadHash { name: PayloadName::Initramfs, .. }), "{error:?}");
}

#[test]
fn a_truncated_payload_is_refused_where_it_ends() {
    let bundle = bundle("1.1.0");
    let cut = bundle.len() - 1000;
    let keys = trusted();
    let mut reader = open(&bundle[..cut], &policy(&keys)).unwrap();
    let (error, delivered) = read_all(&mut reader).unwrap_err();
    let root_size = payload_bytes()[2].len() as u64;
    match &error {
        BundleError::Truncated { part: BundlePart::Payload(PayloadName::Root), offset, received, expected } => {
            assert_eq!((*offset, *received, *expected), (cut as u64, root_size - 1000, root_size));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(delivered.len() as u64, root_size - 1000, "every byte before the end was streamed");
    assert_eq!(
        error.to_string(),
        format!("the bundle ends at byte {cut}, inside its payload root: {} of {root_size} bytes", root_size - 1000)
    );

    let head_cut = head_len(&bundle) - 10;
    let error = open(&bundle[..head_cut], &policy(&keys)).err().unwrap();
    assert!(matches!(error, BundleError::Truncated { part: BundlePart::Signature, received: 54, .. }), "{error:?}");
}

#[test]
fn trailing_data_is_refused() {
    let mut bundle = bundle("1.1.0");
    bundle.push(0);
    let keys = trusted();
    let reader = open(&bundle, &policy(&keys)).unwrap();
    let error = reader.finish().err().unwrap();
    assert!(matches!(error, BundleError::TrailingData { offset } if offset == bundle.len() as u64 - 1), "{error:?}");
}

#[test]
fn the_wrong_compatible_is_refused() {
    let keys = trusted();
    let policy = TrustPolicy { compatible: "keel-aarch64", ..policy(&keys) };
    let error = open(&bundle("1.1.0"), &policy).err().unwrap();
    assert_eq!(error.to_string(), "the bundle is for \"keel-x86_64-test\" hosts; this host is \"keel-aarch64\"");
}

#[test]
fn a_lower_version_is_refused_unless_allowed() {
    let keys = trusted();
    let older = bundle("0.9.10");
    let error = open(&older, &policy(&keys)).err().unwrap();
    assert_eq!(
        error.to_string(),
        "the bundle's version 0.9.10 is older than the running 1.0.0, and downgrades are not allowed"
    );
    let allowed = TrustPolicy { allow_downgrade: true, ..policy(&keys) };
    assert!(open(&older, &allowed).is_ok());
    assert!(open(&bundle("1.0.0"), &policy(&keys)).is_ok(), "the same version reinstalls");
    assert!(open(&bundle("1.0.0-rc1"), &policy(&keys)).is_err());
}

/// A source that counts the bytes taken from it.
struct Counting {
    inner: Cursor<Vec<u8>>,
    taken: usize,
}

impl Read for Counting {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let count = self.inner.read(buf)?;
        self.taken += count;
        Ok(count)
    }
}

#[test]
fn an_oversized_manifest_length_is_refused_before_reading_it() {
    let header = Header { magic: MAGIC, format: FORMAT_VERSION, manifest_len: MAX_MANIFEST_LEN + 1 }.encode();
    let mut bytes = header.to_vec();
    bytes.resize(1 << 20, b' ');
    let mut source = Counting { inner: Cursor::new(bytes), taken: 0 };
    let keys = trusted();
    let error = BundleReader::open(&mut source, &policy(&keys)).err().unwrap();
    assert!(matches!(error, BundleError::ManifestTooLarge { length } if length == MAX_MANIFEST_LEN + 1), "{error:?}");
    assert_eq!(source.taken, HEADER_LEN, "nothing after the header was read");
    assert!(error.to_string().contains("bytes 12..16"), "{error}");
}

#[test]
fn other_files_and_formats_are_refused() {
    let keys = trusted();
    let error = open(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0", &policy(&keys)).err().unwrap();
    assert_eq!(
        error.to_string(),
        "not a keel update bundle: it starts with \"\\x7fELF\\x02\\x01\\x01\\x00\", not \"KEELBNDL\""
    );
    let mut format_two = bundle("1.1.0");
    format_two[8] = 2;
    assert!(matches!(open(&format_two, &policy(&keys)), Err(BundleError::Format { format: 2 })));
}

#[test]
fn a_signed_but_hostile_manifest_is_refused() {
    // What signed_head refuses to write, signed by hand with a trusted key: a payload over the size cap.
    let payloads = payload_bytes();
    let mut manifest = manifest_for("1.1.0", &payloads);
    manifest.payloads[2].size = MAX_PAYLOAD_SIZE + 1;
    let json = manifest.to_json();
    let mut head = Header { magic: MAGIC, format: FORMAT_VERSION, manifest_len: json.len() as u32 }.encode().to_vec();
    head.extend_from_slice(&json);
    let signature = key(1).sign(&head);
    head.extend_from_slice(&signature.to_bytes());
    let keys = trusted();
    let error = open(&head, &policy(&keys)).err().unwrap();
    assert!(
        matches!(&error, BundleError::Manifest(ManifestError::PayloadTooLarge { name: PayloadName::Root, .. })),
        "{error:?}"
    );
    assert_eq!(signed_head(&manifest, &key(1)).err().map(|error| matches!(error, HeadError::Manifest(_))), Some(true));
}

#[test]
fn errors_from_the_writer_side_stay_theirs() {
    let foreign = io::Error::new(io::ErrorKind::PermissionDenied, "disk full");
    let back = BundleError::from_io(foreign).unwrap_err();
    assert_eq!(back.kind(), io::ErrorKind::PermissionDenied);
}
