//! The `time` field of a json-file line: RFC 3339 UTC with nanoseconds, written and read back.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::append::push_digits;
use crate::syslog::timestamp::SecondStamp;

/// `2026-11-29T20:47:07.123456789Z`, as Docker's json-file driver writes it (always nine digits here).
/// Instants before 1970 are written as 1970-01-01T00:00:00Z: a container's output is never that old.
pub fn rfc3339_nanos(time: SystemTime) -> String {
    let mut out = Vec::with_capacity(30);
    write_rfc3339_nanos(&mut SecondStamp::default(), time, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// [`rfc3339_nanos`] appended to `out`, the second taken from `stamp` (a json-file line is written per container
/// line).
pub(crate) fn write_rfc3339_nanos(stamp: &mut SecondStamp, time: SystemTime, out: &mut Vec<u8>) {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    stamp.push(i64::try_from(since.as_secs()).unwrap_or(i64::MAX), out);
    out.push(b'.');
    push_digits(out, u64::from(since.subsec_nanos()), 9);
    out.push(b'Z');
}

/// Reads `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`; `None` for anything else.
pub fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let bytes = text.as_bytes();
    if bytes.len() < 20 || bytes.len() > 40 || !text.is_ascii() {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        part.bytes().all(|byte| byte.is_ascii_digit()).then(|| part.parse().ok())?
    };
    if bytes[4] != b'-' || bytes[7] != b'-' || bytes[10] != b'T' || bytes[13] != b':' || bytes[16] != b':' {
        return None;
    }
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = &text[19..];
    let mut nanos = 0u32;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 9 {
            return None;
        }
        nanos = format!("{:0<9}", &fraction[..digits]).parse().ok()?;
        rest = &fraction[digits..];
    }
    let offset = match rest {
        "Z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            if rest.len() != 6 || rest.as_bytes()[3] != b':' {
                return None;
            }
            sign * (number_in(rest, 1..3)? * 3600 + number_in(rest, 4..6)? * 60)
        }
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset;
    let seconds = u64::try_from(seconds).ok()?;
    UNIX_EPOCH.checked_add(Duration::new(seconds, nanos))
}

fn number_in(text: &str, range: std::ops::Range<usize>) -> Option<i64> {
    let part = text.get(range)?;
    part.bytes().all(|byte| byte.is_ascii_digit()).then(|| part.parse().ok())?
}

/// (year, month 1..=12, day) to days since 1970-01-01: Howard Hinnant's `days_from_civil`, the inverse of
/// `civil_from_days`.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let shifted_month = if month > 2 { month - 3 } else { month + 9 };
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nanosecond_times_round_trip() {
        let time = UNIX_EPOCH + Duration::new(1_709_210_096, 123_456_789);
        assert_eq!(rfc3339_nanos(time), "2024-02-29T12:34:56.123456789Z");
        assert_eq!(parse_rfc3339("2024-02-29T12:34:56.123456789Z"), Some(time));
        assert_eq!(rfc3339_nanos(UNIX_EPOCH), "1970-01-01T00:00:00.000000000Z");
        for seconds in (0..4_102_444_800u64).step_by(86_400 * 7 + 3_601) {
            let time = UNIX_EPOCH + Duration::new(seconds, 7);
            assert_eq!(parse_rfc3339(&rfc3339_nanos(time)), Some(time), "{seconds}");
        }
    }

    #[test]
    fn docker_forms_and_garbage() {
        let time = UNIX_EPOCH + Duration::from_millis(1_709_210_096_500);
        assert_eq!(parse_rfc3339("2024-02-29T12:34:56.5Z"), Some(time));
        assert_eq!(parse_rfc3339("2024-02-29T13:34:56.5+01:00"), Some(time));
        for bad in ["", "2024-02-29 12:34:56Z", "2024-13-01T00:00:00Z", "2024-02-29T12:34:56.Z", "2024-02-29T12:34:56"]
        {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
}
