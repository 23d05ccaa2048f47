//! Domain names that may be written into `resolv.conf`: RFC 1035 labels, checked where they come in from the
//! network, so that a name cannot carry a newline and a `nameserver` line of its own.

use std::fmt;

/// Longest domain name in text form (255 octets on the wire, less the length bytes).
const MAX_LENGTH: usize = 253;
const MAX_LABEL_LENGTH: usize = 63;

/// A domain name of dot-separated labels of letters, digits and inner hyphens (RFC 1035 §2.3.1, with RFC 1123's
/// leading digit), 1–63 characters each and at most 253 in all; a trailing dot is dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainName(String);

/// Why a text is not a [`DomainName`]; the text is shown escaped, as it may hold control characters.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DomainNameError {
    #[error("the domain name is empty")]
    Empty,
    #[error("the domain name {name:?} is longer than {MAX_LENGTH} characters")]
    TooLong { name: String },
    #[error(
        "the domain name {name:?} has an invalid label {label:?}: labels are 1-{MAX_LABEL_LENGTH} letters, digits \
         or '-', not starting or ending with '-'"
    )]
    BadLabel { name: String, label: String },
}

impl DomainName {
    pub fn parse(text: &str) -> Result<DomainName, DomainNameError> {
        let name = text.strip_suffix('.').unwrap_or(text);
        if name.is_empty() {
            return Err(DomainNameError::Empty);
        }
        if name.len() > MAX_LENGTH {
            return Err(DomainNameError::TooLong { name: text.to_owned() });
        }
        for label in name.split('.') {
            let valid = (1..=MAX_LABEL_LENGTH).contains(&label.len())
                && label.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-');
            if !valid {
                return Err(DomainNameError::BadLabel { name: text.to_owned(), label: label.to_owned() });
            }
        }
        Ok(DomainName(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DomainName {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for (text, name) in [
            ("corp", "corp"),
            ("example.com", "example.com"),
            ("example.com.", "example.com"),
            ("eu-west-1.compute.internal", "eu-west-1.compute.internal"),
            ("1e100.net", "1e100.net"),
        ] {
            assert_eq!(DomainName::parse(text).map(|parsed| parsed.to_string()), Ok(name.to_owned()), "{text}");
        }
        let longest = ["a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(61)].join(".");
        assert_eq!(longest.len(), 253);
        assert!(DomainName::parse(&longest).is_ok());
    }

    #[test]
    fn refuses_what_could_break_out_of_its_line() {
        for text in [
            "corp\nnameserver 203.0.113.53",
            "corp nameserver",
            "corp\rx",
            "corp\0",
            "a..b",
            ".corp",
            "-corp",
            "corp-",
            "co_rp",
            "corp;x",
            "ex\u{e4}mple.com",
        ] {
            assert!(matches!(DomainName::parse(text), Err(DomainNameError::BadLabel { .. })), "{text:?}");
        }
        assert_eq!(DomainName::parse(""), Err(DomainNameError::Empty));
        assert_eq!(DomainName::parse("."), Err(DomainNameError::Empty));
        assert!(matches!(DomainName::parse(&"a".repeat(64)), Err(DomainNameError::BadLabel { .. })));
        let too_long = ["a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(62)].join(".");
        assert!(matches!(DomainName::parse(&too_long), Err(DomainNameError::TooLong { .. })));
    }
}
