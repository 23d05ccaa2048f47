//! Byte sizes written like Docker's `--memory`: a number with an optional suffix b, k, m or g.

/// Text that is not a byte size.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{text:?} is not a size like 512m or 1g (a whole number with suffix b, k, m or g)")]
pub struct ByteSizeError {
    pub text: String,
}

/// Parses `1024`, `512k`, `512m`, `1g` (suffixes case-insensitive, powers of 1024) into bytes.
pub fn parse_byte_size(text: &str) -> Result<u64, ByteSizeError> {
    let error = || ByteSizeError { text: text.to_owned() };
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(error());
    }
    let number: u64 = text[..digits].parse().map_err(|_| error())?;
    let shift = match text[digits..].to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        _ => return Err(error()),
    };
    number.checked_mul(1 << shift).ok_or_else(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_sizes() {
        assert_eq!(parse_byte_size("512m"), Ok(512 << 20));
        assert_eq!(parse_byte_size("1G"), Ok(1 << 30));
        assert_eq!(parse_byte_size("100"), Ok(100));
        assert_eq!(parse_byte_size("4k"), Ok(4096));
        for bad in ["", "m", "1.5g", "12q", "1 g", "-1m"] {
            assert!(parse_byte_size(bad).is_err(), "{bad}");
        }
    }
}
