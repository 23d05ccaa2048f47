//! Times as keelctl reads them from people (`--since 10m`, a Unix time, RFC 3339) and writes them (RFC 3339 in
//! UTC with nanoseconds, as `docker events` prints).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0:?} is not a time: use Unix seconds (1700000000.5), a duration before now (10m, 1h30m, 45s) or RFC 3339 (2026-11-29T20:00:00Z)")]
pub struct TimeParseError(String);

/// `text` as Unix seconds with a fraction, the form Docker's API takes for `since` and `until`.
pub fn parse(text: &str, now: SystemTime) -> Result<String, TimeParseError> {
    let error = || TimeParseError(text.to_owned());
    if !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit() || byte == b'.') {
        text.parse::<f64>().map_err(|_| error())?;
        return Ok(text.to_owned());
    }
    if let Some(ago) = duration(text) {
        let at = now.checked_sub(ago).ok_or_else(error)?;
        let since = at.duration_since(UNIX_EPOCH).map_err(|_| error())?;
        return Ok(format!("{}.{:09}", since.as_secs(), since.subsec_nanos()));
    }
    rfc3339(text).map(|seconds| seconds.to_string()).ok_or_else(error)
}

/// `1h30m`, `10m`, `45s`, `500ms`.
fn duration(text: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = text;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        let value: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = match &rest[..unit_end] {
            "ms" => Duration::from_millis(1),
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            _ => return None,
        };
        total = total.checked_add(unit.checked_mul(u32::try_from(value).ok()?)?)?;
        rest = &rest[unit_end..];
    }
    Some(total)
}

/// `YYYY-MM-DDTHH:MM:SS[.frac]Z` as Unix seconds (fractions dropped).
fn rfc3339(text: &str) -> Option<i64> {
    let text = text.strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let mut date = date.splitn(3, '-').map(|part| part.parse::<i64>().ok());
    let (year, month, day) = (date.next()??, date.next()??, date.next()??);
    let time = time.split('.').next()?;
    let mut time = time.splitn(3, ':').map(|part| part.parse::<i64>().ok());
    let (hour, minute, second) = (time.next()??, time.next()??, time.next()??);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Unix nanoseconds as `2026-11-29T20:00:00.123456789Z`.
pub fn format_nanos(nanos: i64) -> String {
    let seconds = nanos.div_euclid(1_000_000_000);
    let fraction = nanos.rem_euclid(1_000_000_000);
    let days = seconds.div_euclid(86400);
    let of_day = seconds.rem_euclid(86400);
    // The inverse of days_from_civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{fraction:09}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_form() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert_eq!(parse("1700000000.5", now).unwrap(), "1700000000.5");
        assert_eq!(parse("10m", now).unwrap(), "1799999400.000000000");
        assert_eq!(parse("1h30s", now).unwrap(), "1799996370.000000000");
        assert_eq!(parse("2026-11-29T20:00:00Z", now).unwrap(), "1795982400");
        assert!(parse("yesterday", now).is_err());
        assert!(parse("", now).is_err());
    }

    #[test]
    fn writes_rfc3339_with_nanoseconds() {
        assert_eq!(format_nanos(1_795_982_400_123_456_789), "2026-11-29T20:00:00.123456789Z");
        assert_eq!(format_nanos(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(format_nanos(951_782_400_000_000_000), "2000-02-29T00:00:00.000000000Z");
    }
}
