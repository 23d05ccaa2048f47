//! The text form of update signing keys: `ed25519-public <64 hex digits>` (what images trust) and
//! `ed25519-secret <64 hex digits>` (the seed `keel-build bundle` signs with), one line each.
//!
//! The two forms differ in their first word so that a secret key passed where a public key belongs is refused,
//! not installed into an image for everyone to read.

use ed25519_dalek::{SigningKey, VerifyingKey};

const PUBLIC_PREFIX: &str = "ed25519-public ";
const SECRET_PREFIX: &str = "ed25519-secret ";

/// The longest key file a reader accepts, in bytes: one line of either form with room for a comment-free newline.
pub const MAX_KEY_FILE_LEN: u64 = 256;

/// Key text that is not a key of the expected kind.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("this is a secret key (ed25519-secret); a public key (ed25519-public) belongs here")]
    SecretWherePublic,
    #[error("this is a public key (ed25519-public); the secret key (ed25519-secret) belongs here")]
    PublicWhereSecret,
    #[error("not an update key: expected one line \"{expected}<64 hex digits>\"")]
    Form { expected: &'static str },
    #[error("the public key is not a valid ed25519 point")]
    NotAPoint,
}

/// Parses a public key file's text.
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, KeyError> {
    let line = text.trim();
    if line.starts_with(SECRET_PREFIX) {
        return Err(KeyError::SecretWherePublic);
    }
    let bytes = line
        .strip_prefix(PUBLIC_PREFIX)
        .and_then(decode_hex::<32>)
        .ok_or(KeyError::Form { expected: PUBLIC_PREFIX })?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| KeyError::NotAPoint)
}

/// Parses a secret key file's text.
pub fn parse_secret_key(text: &str) -> Result<SigningKey, KeyError> {
    let line = text.trim();
    if line.starts_with(PUBLIC_PREFIX) {
        return Err(KeyError::PublicWhereSecret);
    }
    let seed = line
        .strip_prefix(SECRET_PREFIX)
        .and_then(decode_hex::<32>)
        .ok_or(KeyError::Form { expected: SECRET_PREFIX })?;
    Ok(SigningKey::from_bytes(&seed))
}

/// A public key file's text, with its newline.
pub fn format_public_key(key: &VerifyingKey) -> String {
    format!("{PUBLIC_PREFIX}{}\n", encode_hex(key.as_bytes()))
}

/// A secret key file's text, with its newline.
pub fn format_secret_key(key: &SigningKey) -> String {
    format!("{SECRET_PREFIX}{}\n", encode_hex(&key.to_bytes()))
}

/// Lower-case hex of `bytes`.
pub fn encode_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Exactly `N` bytes from `2 * N` lower-case hex digits, or `None`.
pub fn decode_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let digits = text.as_bytes();
    if digits.len() != 2 * N {
        return None;
    }
    let value = |digit: u8| match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    };
    let mut bytes = [0u8; N];
    for (byte, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = (value(pair[0])? << 4) | value(pair[1])?;
    }
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let secret = SigningKey::from_bytes(&[7; 32]);
        let text = format_secret_key(&secret);
        assert_eq!(parse_secret_key(&text).unwrap().to_bytes(), secret.to_bytes());
        let public = format_public_key(&secret.verifying_key());
        assert!(public.starts_with("ed25519-public ") && public.ends_with('\n') && public.len() == 15 + 64 + 1);
        assert_eq!(parse_public_key(&public).unwrap(), secret.verifying_key());
    }

    #[test]
    fn the_kinds_are_not_mixed_up() {
        let secret = SigningKey::from_bytes(&[7; 32]);
        assert_eq!(parse_public_key(&format_secret_key(&secret)), Err(KeyError::SecretWherePublic));
        assert_eq!(parse_secret_key(&format_public_key(&secret.verifying_key())), Err(KeyError::PublicWhereSecret));
        let bare = encode_hex(secret.verifying_key().as_bytes());
        assert_eq!(parse_public_key(&bare), Err(KeyError::Form { expected: "ed25519-public " }));
        assert_eq!(parse_public_key("ed25519-public abc"), Err(KeyError::Form { expected: "ed25519-public " }));
    }

    #[test]
    fn hex() {
        assert_eq!(decode_hex::<2>("0aff"), Some([0x0a, 0xff]));
        assert_eq!(decode_hex::<2>("0AFF"), None);
        assert_eq!(decode_hex::<2>("0af"), None);
        assert_eq!(encode_hex(&[0x0a, 0xff]), "0aff");
    }
}
