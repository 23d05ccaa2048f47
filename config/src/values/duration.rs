//! Durations written like Go and Docker write them: `30s`, `1m30s`, `500ms`, `2h`.

use std::time::Duration;

/// Text that is not a duration.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{text:?} is not a duration like 30s, 1m30s or 500ms (units h, m, s, ms, us, ns)")]
pub struct DurationError {
    pub text: String,
}

/// Parses one or more `<integer><unit>` parts; units are `h`, `m`, `s`, `ms`, `us`, `ns`.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let error = || DurationError { text: text.to_owned() };
    let mut rest = text;
    let mut total = Duration::ZERO;
    if rest.is_empty() {
        return Err(error());
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let unit_length = rest[digits..].bytes().take_while(u8::is_ascii_alphabetic).count();
        if digits == 0 || unit_length == 0 {
            return Err(error());
        }
        let number: u64 = rest[..digits].parse().map_err(|_| error())?;
        let part = match &rest[digits..digits + unit_length] {
            "h" => number.checked_mul(3600).map(Duration::from_secs),
            "m" => number.checked_mul(60).map(Duration::from_secs),
            "s" => Some(Duration::from_secs(number)),
            "ms" => Some(Duration::from_millis(number)),
            "us" => Some(Duration::from_micros(number)),
            "ns" => Some(Duration::from_nanos(number)),
            _ => None,
        };
        total = part.and_then(|part| total.checked_add(part)).ok_or_else(error)?;
        rest = &rest[digits + unit_length..];
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        for bad in ["", "30", "s", "1.5s", "3d", "1m 30s", "-1s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
