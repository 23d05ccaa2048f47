//! Host names: the default, and the RFC 1123 rules a configured name must follow.

/// The host name of a keel host that was not given one.
pub const DEFAULT_HOSTNAME: &str = "keel";

/// Longest host name the kernel accepts (`HOST_NAME_MAX`).
const MAX_LENGTH: usize = 64;

/// A host name the kernel or resolvers would not accept.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HostnameError {
    #[error("host name is empty")]
    Empty,
    #[error("host name {name:?} is longer than {MAX_LENGTH} characters")]
    TooLong { name: String },
    #[error("host name {name:?} has an invalid label {label:?}: labels are 1-63 letters, digits or '-', not starting or ending with '-'")]
    BadLabel { name: String, label: String },
}

/// Checks a host name against RFC 1123: dot-separated labels of letters, digits and inner hyphens.
pub fn validate_hostname(name: &str) -> Result<(), HostnameError> {
    if name.is_empty() {
        return Err(HostnameError::Empty);
    }
    if name.len() > MAX_LENGTH {
        return Err(HostnameError::TooLong { name: name.to_owned() });
    }
    for label in name.split('.') {
        let valid = (1..=63).contains(&label.len())
            && label.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !valid {
            return Err(HostnameError::BadLabel { name: name.to_owned(), label: label.to_owned() });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_rfc1123_names() {
        for name in [DEFAULT_HOSTNAME, "web-1", "node7.example.com", "1host"] {
            assert_eq!(validate_hostname(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn rejects_bad_names_with_the_reason() {
        assert_eq!(validate_hostname(""), Err(HostnameError::Empty));
        assert_eq!(
            validate_hostname("web_1").unwrap_err().to_string(),
            "host name \"web_1\" has an invalid label \"web_1\": labels are 1-63 letters, digits or '-', not starting or ending with '-'"
        );
        assert!(matches!(validate_hostname("a..b"), Err(HostnameError::BadLabel { .. })));
        assert!(matches!(validate_hostname("-a"), Err(HostnameError::BadLabel { .. })));
        assert!(matches!(validate_hostname(&"a".repeat(65)), Err(HostnameError::TooLong { .. })));
    }
}
