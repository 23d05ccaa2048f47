//! Turns a `SystemTime` into the two syslog date forms (RFC 3339 UTC with milliseconds, and BSD `Mmm dd hh:mm:ss`).

use std::time::{SystemTime, UNIX_EPOCH};

use crate::append::{push_bytes, push_digits};

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// A UTC calendar instant, to the millisecond.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: i64,
    minute: i64,
    second: i64,
    millis: i64,
}

/// `2024-02-29T12:34:56.789Z`, as RFC 5424 wants it.
pub fn rfc3339_millis(time: SystemTime) -> String {
    let mut out = Vec::with_capacity(24);
    write_rfc3339_millis(&mut SecondStamp::default(), time, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// [`rfc3339_millis`] appended to `out`, the second taken from `stamp` (the relay writes one per line).
pub(crate) fn write_rfc3339_millis(stamp: &mut SecondStamp, time: SystemTime, out: &mut Vec<u8>) {
    let millis = millis_since_epoch(time);
    stamp.push(millis.div_euclid(1000), out);
    out.push(b'.');
    push_digits(out, millis.rem_euclid(1000).unsigned_abs(), 3);
    out.push(b'Z');
}

/// `YYYY-MM-DDTHH:MM:SS` (UTC) of the last second asked for: lines come many to a second, so the calendar is
/// worked out once a second rather than once a line.
#[derive(Debug, Default)]
pub(crate) struct SecondStamp {
    second: Option<i64>,
    text: Vec<u8>,
}

impl SecondStamp {
    /// `seconds` since the epoch as `YYYY-MM-DDTHH:MM:SS`, appended to `out`.
    pub(crate) fn push(&mut self, seconds: i64, out: &mut Vec<u8>) {
        if self.second != Some(seconds) {
            self.text.clear();
            let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
            write_civil(year, month, day, seconds.rem_euclid(86_400), &mut self.text);
            self.second = Some(seconds);
        }
        push_bytes(out, &self.text);
    }
}

fn write_civil(year: i64, month: u32, day: u32, second_of_day: i64, out: &mut Vec<u8>) {
    if year < 0 {
        out.push(b'-');
    }
    push_digits(out, year.unsigned_abs(), 4);
    out.push(b'-');
    push_digits(out, u64::from(month), 2);
    out.push(b'-');
    push_digits(out, u64::from(day), 2);
    out.push(b'T');
    let second_of_day = second_of_day.unsigned_abs();
    push_digits(out, second_of_day / 3600, 2);
    out.push(b':');
    push_digits(out, second_of_day / 60 % 60, 2);
    out.push(b':');
    push_digits(out, second_of_day % 60, 2);
}

/// `Feb 29 12:34:56` (UTC), the form local `/dev/log` readers parse (glibc's `syslog(3)` writes it).
pub(crate) fn bsd(time: SystemTime) -> String {
    let c = civil(time);
    let month = usize::try_from(c.month.saturating_sub(1)).ok().and_then(|index| MONTHS.get(index)).unwrap_or(&"Jan");
    format!("{month} {:>2} {:02}:{:02}:{:02}", c.day, c.hour, c.minute, c.second)
}

fn millis_since_epoch(time: SystemTime) -> i64 {
    // Before 1970 `duration_since` fails with the distance the other way; both saturate far beyond year 9999.
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_millis()).map(|millis| -millis).unwrap_or(i64::MIN),
    }
}

fn civil(time: SystemTime) -> Civil {
    let millis = millis_since_epoch(time);
    let days = millis.div_euclid(86_400_000);
    let of_day = millis.rem_euclid(86_400_000);
    let (year, month, day) = civil_from_days(days);
    Civil {
        year,
        month,
        day,
        hour: of_day / 3_600_000,
        minute: of_day / 60_000 % 60,
        second: of_day / 1000 % 60,
        millis: of_day % 1000,
    }
}

/// Days since 1970-01-01 to (year, month 1..=12, day 1..=31) in the proleptic Gregorian calendar.
/// Howard Hinnant's `civil_from_days`: count in 400-year eras starting on March 1st, so that the leap day is the
/// last day of the (shifted) year.
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days.saturating_add(719_468);
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097); // [0, 146096]
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365; // [0, 399]
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100); // [0, 365]
    let shifted_month = (5 * day_of_year + 2) / 153; // [0, 11], March = 0
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1; // [1, 31]
    let month = if shifted_month < 10 { shifted_month + 3 } else { shifted_month - 9 }; // [1, 12]
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, u32::try_from(month).unwrap_or(1), u32::try_from(day).unwrap_or(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(millis: i64) -> SystemTime {
        let distance = Duration::from_millis(millis.unsigned_abs());
        if millis >= 0 {
            UNIX_EPOCH + distance
        } else {
            UNIX_EPOCH - distance
        }
    }

    #[test]
    fn formats_known_instants() {
        let cases = [
            (0, "1970-01-01T00:00:00.000Z"),
            (951_782_400_000, "2000-02-29T00:00:00.000Z"),
            (1_234_567_890_123, "2009-02-13T23:31:30.123Z"),
            (1_709_210_096_789, "2024-02-29T12:34:56.789Z"),
            (1_709_251_199_999, "2024-02-29T23:59:59.999Z"),
            (1_709_251_200_000, "2024-03-01T00:00:00.000Z"),
            (4_102_444_800_000, "2100-01-01T00:00:00.000Z"),
            (253_402_300_799_999, "9999-12-31T23:59:59.999Z"),
            (-1, "1969-12-31T23:59:59.999Z"),
            (-86_400_000, "1969-12-31T00:00:00.000Z"),
        ];
        for (millis, expected) in cases {
            assert_eq!(rfc3339_millis(at(millis)), expected, "{millis}");
        }
    }

    #[test]
    fn days_round_trip_through_every_day_of_four_centuries() {
        // Walk day by day from 1900-01-01 to 2300-01-01 and check that the calendar advances one day at a time.
        let (mut year, mut month, mut day) = civil_from_days(-25_567);
        assert_eq!((year, month, day), (1900, 1, 1));
        for days in -25_566..120_000 {
            let next = civil_from_days(days);
            let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
            let length = match month {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            let expected = if day < length {
                (year, month, day + 1)
            } else if month < 12 {
                (year, month + 1, 1)
            } else {
                (year + 1, 1, 1)
            };
            assert_eq!(next, expected, "day {days}");
            (year, month, day) = next;
        }
    }

    #[test]
    fn one_stamp_serves_lines_of_many_seconds_in_any_order() {
        let mut stamp = SecondStamp::default();
        let mut out = Vec::new();
        for millis in [1_709_210_096_789, 1_709_210_096_001, 1_709_210_097_000, 0, 1_709_210_096_789, -1] {
            out.clear();
            write_rfc3339_millis(&mut stamp, at(millis), &mut out);
            assert_eq!(String::from_utf8_lossy(&out), rfc3339_millis(at(millis)), "{millis}");
            assert_eq!(String::from_utf8_lossy(&out), civil_millis(millis), "{millis}");
        }
    }

    /// The same instant through `civil`, the other road.
    fn civil_millis(millis: i64) -> String {
        let c = civil(at(millis));
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            c.year, c.month, c.day, c.hour, c.minute, c.second, c.millis
        )
    }

    #[test]
    fn formats_bsd_dates_with_a_padded_day() {
        assert_eq!(bsd(at(1_709_210_096_789)), "Feb 29 12:34:56");
        assert_eq!(bsd(at(0)), "Jan  1 00:00:00");
        assert_eq!(bsd(at(1_234_567_890_123)), "Feb 13 23:31:30");
    }
}
