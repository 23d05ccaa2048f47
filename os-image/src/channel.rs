//! The update channel document: a small signed file naming the latest version of a channel and where its bundle
//! is, which `keel-build channel` writes and the host's poller fetches from `[update] url`. `docs/update.md`,
//! "Channels", describes it for people.
//!
//! The file is one envelope, so that publishing it is one atomic rename on the server (a detached `.sig` could be
//! fetched from before the document's change and the new document from after):
//!
//! ```text
//! {"format":1,"compatible":"keel-x86_64","version":"0.2.0","bundle":"keel-0.2.0.bundle"}\n
//! ed25519-signature <128 hex digits>\n
//! ```
//!
//! The signature is over the document line with its newline, by the same ed25519 key as the bundles. A reader
//! bounds the file to [`MAX_CHANNEL_LEN`] before reading it, verifies the signature before parsing the JSON, and
//! then checks the fields as the bundle's manifest does.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::bundle::keys::{decode_hex, encode_hex};
use crate::bundle::manifest::is_valid_compatible;
use crate::version;

/// The channel format this code writes and reads.
pub const CHANNEL_FORMAT: u32 = 1;
/// The longest channel file a reader accepts: a document is about 150 bytes.
pub const MAX_CHANNEL_LEN: usize = 64 * 1024;
/// The longest `bundle` reference.
pub const MAX_BUNDLE_REF_LEN: usize = 2048;

const SIGNATURE_PREFIX: &str = "ed25519-signature ";

/// What a channel says: its latest version, for which hosts, and where the bundle is. Serialised with its fields
/// in this order, so the same values always give the same bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelDocument {
    /// [`CHANNEL_FORMAT`].
    pub format: u32,
    /// The `compatible` of the bundle: the hosts the channel is for.
    pub compatible: String,
    /// The version of the bundle.
    pub version: String,
    /// The bundle's URL: absolute (`https://…`), or relative to the channel's own URL (`keel-0.2.0.bundle`,
    /// `/bundles/keel-0.2.0.bundle`).
    pub bundle: String,
}

/// A channel file that is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChannelError {
    #[error("the channel file is {length} bytes, more than the limit of {MAX_CHANNEL_LEN}")]
    TooLarge { length: usize },
    #[error("the channel file is not a document line followed by an \"ed25519-signature <128 hex digits>\" line")]
    Form,
    #[error("no update key is trusted: the image has none")]
    NoTrustedKeys,
    #[error("the channel's signature matches none of the {keys} trusted update keys")]
    Signature { keys: usize },
    #[error("the channel's signed document is not a format {CHANNEL_FORMAT} channel document: {reason}")]
    Parse { reason: String },
    #[error("the channel document is format {format}; this keel reads format {CHANNEL_FORMAT}")]
    Format { format: u32 },
    #[error(
        "the channel's version {version:?} is not a keel version: 1 to {} letters, digits, '.', '_', '~' or '-'",
        version::MAX_VERSION_LEN
    )]
    Version { version: String },
    #[error("the channel's compatible {compatible:?} is not valid: 1 to 64 letters, digits, '.', '_' or '-'")]
    Compatible { compatible: String },
    #[error("the channel's bundle {bundle:?} is not an http(s) URL or a relative reference without '..'")]
    Bundle { bundle: String },
    #[error("the channel URL {url:?} is not an http:// or https:// URL")]
    ChannelUrl { url: String },
}

impl ChannelDocument {
    /// A format-[`CHANNEL_FORMAT`] document.
    pub fn new(compatible: &str, version: &str, bundle: &str) -> Self {
        ChannelDocument {
            format: CHANNEL_FORMAT,
            compatible: compatible.to_owned(),
            version: version.to_owned(),
            bundle: bundle.to_owned(),
        }
    }

    /// Checks what parsing alone does not: the format, version and `compatible` usable as names, and a `bundle`
    /// that resolves to an http(s) URL.
    pub fn check(&self) -> Result<(), ChannelError> {
        if self.format != CHANNEL_FORMAT {
            return Err(ChannelError::Format { format: self.format });
        }
        if !version::is_valid(&self.version) {
            return Err(ChannelError::Version { version: self.version.clone() });
        }
        if !is_valid_compatible(&self.compatible) {
            return Err(ChannelError::Compatible { compatible: self.compatible.clone() });
        }
        check_bundle_ref(&self.bundle)
    }

    /// The signed file: the document line and the signature line. ed25519 signatures are deterministic, so the
    /// same document and key give the same bytes.
    pub fn sign(&self, key: &SigningKey) -> Result<Vec<u8>, ChannelError> {
        self.check()?;
        // A struct of strings and an integer: serde_json cannot fail on it.
        let mut file = serde_json::to_vec(self).unwrap_or_default();
        file.push(b'\n');
        let signature = key.sign(&file);
        file.extend_from_slice(format!("{SIGNATURE_PREFIX}{}\n", encode_hex(&signature.to_bytes())).as_bytes());
        Ok(file)
    }

    /// Verifies a channel file against the trusted keys and returns its checked document.
    pub fn verify(file: &[u8], keys: &[VerifyingKey]) -> Result<ChannelDocument, ChannelError> {
        if file.len() > MAX_CHANNEL_LEN {
            return Err(ChannelError::TooLarge { length: file.len() });
        }
        if keys.is_empty() {
            return Err(ChannelError::NoTrustedKeys);
        }
        let document_end = file.iter().position(|&byte| byte == b'\n').ok_or(ChannelError::Form)? + 1;
        let (document, signature_line) = file.split_at(document_end);
        let signature = std::str::from_utf8(signature_line)
            .ok()
            .and_then(|line| line.strip_suffix('\n').unwrap_or(line).strip_prefix(SIGNATURE_PREFIX))
            .and_then(decode_hex::<64>)
            .map(|bytes| Signature::from_bytes(&bytes))
            .ok_or(ChannelError::Form)?;
        if !keys.iter().any(|key| key.verify_strict(document, &signature).is_ok()) {
            return Err(ChannelError::Signature { keys: keys.len() });
        }
        let parsed: ChannelDocument =
            serde_json::from_slice(document).map_err(|error| ChannelError::Parse { reason: error.to_string() })?;
        parsed.check()?;
        Ok(parsed)
    }

    /// The bundle's absolute URL, `bundle` resolved against `channel_url` (the URL the document came from).
    pub fn bundle_url(&self, channel_url: &str) -> Result<String, ChannelError> {
        resolve_bundle_url(channel_url, &self.bundle)
    }
}

/// A `bundle` is an http(s) URL or a relative reference without `..` segments, of at most
/// [`MAX_BUNDLE_REF_LEN`] printable ASCII characters.
fn check_bundle_ref(bundle: &str) -> Result<(), ChannelError> {
    let error = || ChannelError::Bundle { bundle: bundle.to_owned() };
    let printable = bundle.bytes().all(|byte| byte.is_ascii_graphic());
    if bundle.is_empty() || bundle.len() > MAX_BUNDLE_REF_LEN || !printable || bundle.starts_with("//") {
        return Err(error());
    }
    if let Some((scheme, _)) = bundle.split_once("://") {
        return if (scheme == "http" || scheme == "https") && url_origin(bundle).is_some() {
            Ok(())
        } else {
            Err(error())
        };
    }
    if bundle.contains(':') || bundle.split(['/', '?', '#']).any(|segment| segment == "..") {
        return Err(error());
    }
    Ok(())
}

/// `scheme://host[:port]` of an http(s) URL, and the rest (the path, query and fragment).
fn url_origin(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"))?;
    let host_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    if host_len == 0 {
        return None;
    }
    let origin_len = url.len() - rest.len() + host_len;
    Some(url.split_at(origin_len))
}

/// Resolves `bundle` against the channel's URL as a browser would for the forms [`check_bundle_ref`] allows: an
/// absolute URL stays, `/path` replaces the path, anything else replaces the channel file's name.
pub fn resolve_bundle_url(channel_url: &str, bundle: &str) -> Result<String, ChannelError> {
    check_bundle_ref(bundle)?;
    if bundle.contains("://") {
        return Ok(bundle.to_owned());
    }
    let (origin, path) = url_origin(channel_url).ok_or_else(|| ChannelError::ChannelUrl { url: channel_url.into() })?;
    if bundle.starts_with('/') {
        return Ok(format!("{origin}{bundle}"));
    }
    let path = &path[..path.find(['?', '#']).unwrap_or(path.len())];
    let directory = &path[..path.rfind('/').map_or(0, |slash| slash + 1)];
    let directory = if directory.is_empty() { "/" } else { directory };
    Ok(format!("{origin}{directory}{bundle}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn document() -> ChannelDocument {
        ChannelDocument::new("keel-x86_64", "0.2.0", "keel-0.2.0.bundle")
    }

    #[test]
    fn signs_in_a_fixed_form_and_verifies() {
        let file = document().sign(&key(1)).unwrap();
        let text = String::from_utf8(file.clone()).unwrap();
        let (line, signature) = text.split_once('\n').unwrap();
        assert_eq!(line, r#"{"format":1,"compatible":"keel-x86_64","version":"0.2.0","bundle":"keel-0.2.0.bundle"}"#);
        assert!(signature.starts_with("ed25519-signature ") && signature.len() == 18 + 128 + 1, "{signature}");
        assert_eq!(file, document().sign(&key(1)).unwrap(), "deterministic");
        let trusted = [key(2).verifying_key(), key(1).verifying_key()];
        assert_eq!(ChannelDocument::verify(&file, &trusted), Ok(document()));
        // Without the final newline too: an editor may strip it.
        assert_eq!(ChannelDocument::verify(&file[..file.len() - 1], &trusted), Ok(document()));
    }

    #[test]
    fn refuses_a_foreign_or_changed_signature() {
        let file = document().sign(&key(1)).unwrap();
        assert_eq!(ChannelDocument::verify(&file, &[key(2).verifying_key()]), Err(ChannelError::Signature { keys: 1 }));
        let changed = String::from_utf8(file).unwrap().replacen("0.2.0", "0.3.0", 1);
        assert_eq!(
            ChannelDocument::verify(changed.as_bytes(), &[key(1).verifying_key()]),
            Err(ChannelError::Signature { keys: 1 })
        );
        assert_eq!(ChannelDocument::verify(b"{}\n", &[key(1).verifying_key()]), Err(ChannelError::Form));
        assert_eq!(ChannelDocument::verify(b"{}", &[key(1).verifying_key()]), Err(ChannelError::Form));
        assert_eq!(ChannelDocument::verify(b"", &[]), Err(ChannelError::NoTrustedKeys));
    }

    #[test]
    fn bounds_the_file_before_anything_else() {
        let huge = vec![b' '; MAX_CHANNEL_LEN + 1];
        assert_eq!(
            ChannelDocument::verify(&huge, &[key(1).verifying_key()]),
            Err(ChannelError::TooLarge { length: MAX_CHANNEL_LEN + 1 })
        );
    }

    #[test]
    fn parses_only_after_the_signature_and_checks_fields() {
        // A signed document with an unknown field, or a bad version, is still refused.
        let sign_raw = |line: &str| {
            let mut file = format!("{line}\n").into_bytes();
            let signature = key(1).sign(&file);
            file.extend_from_slice(format!("ed25519-signature {}\n", encode_hex(&signature.to_bytes())).as_bytes());
            ChannelDocument::verify(&file, &[key(1).verifying_key()])
        };
        assert!(matches!(
            sign_raw(r#"{"format":1,"compatible":"c","version":"1","bundle":"b","extra":1}"#),
            Err(ChannelError::Parse { .. })
        ));
        assert_eq!(
            sign_raw(r#"{"format":2,"compatible":"c","version":"1","bundle":"b"}"#),
            Err(ChannelError::Format { format: 2 })
        );
        assert_eq!(
            sign_raw(r#"{"format":1,"compatible":"c","version":"1+2","bundle":"b"}"#),
            Err(ChannelError::Version { version: "1+2".into() })
        );
        assert_eq!(
            sign_raw(r#"{"format":1,"compatible":"c/d","version":"1","bundle":"b"}"#),
            Err(ChannelError::Compatible { compatible: "c/d".into() })
        );
        for bad in ["../x.bundle", "a/../../x", "file:///etc/shadow", "ftp://h/x", "//evil/x", "a b", ""] {
            let line = format!(r#"{{"format":1,"compatible":"c","version":"1","bundle":"{bad}"}}"#);
            assert_eq!(sign_raw(&line), Err(ChannelError::Bundle { bundle: bad.into() }), "{bad}");
        }
    }

    #[test]
    fn resolves_bundle_references() {
        let channel = "http://10.0.2.2:8080/keel/stable.json?x=1";
        let resolve = |bundle| resolve_bundle_url(channel, bundle).unwrap();
        assert_eq!(resolve("keel-0.2.0.bundle"), "http://10.0.2.2:8080/keel/keel-0.2.0.bundle");
        assert_eq!(resolve("b/k.bundle"), "http://10.0.2.2:8080/keel/b/k.bundle");
        assert_eq!(resolve("/k.bundle"), "http://10.0.2.2:8080/k.bundle");
        assert_eq!(resolve("https://cdn.example/k.bundle"), "https://cdn.example/k.bundle");
        assert_eq!(resolve_bundle_url("https://h", "k.bundle").unwrap(), "https://h/k.bundle");
        assert_eq!(resolve_bundle_url("https://h/c.json", "k").unwrap(), "https://h/k");
        assert_eq!(
            resolve_bundle_url("/local/c.json", "k"),
            Err(ChannelError::ChannelUrl { url: "/local/c.json".into() })
        );
    }
}
