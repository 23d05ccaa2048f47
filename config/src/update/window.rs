//! The maintenance window of `[update] reboot = "window"`: which days and hours (UTC) a host may reboot into an
//! installed update, read from user-data, and the pure function that says when the next such moment is.

use std::time::Duration;

use crate::reader::{Field, Reader};
use crate::values::duration::parse_duration;

const SECONDS_PER_DAY: u64 = 86_400;
/// The longest window: a week covers every moment already.
const MAX_LENGTH: Duration = Duration::from_secs(7 * SECONDS_PER_DAY);
/// The shortest window: a reboot needs a moment to start in.
const MIN_LENGTH: Duration = Duration::from_secs(60);
const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// `window = { days = ["sat", "sun"], start = "02:00", length = "3h" }`: a window opens at `start` (UTC) on each
/// of `days` and stays open for `length`, which may run past midnight into the next day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaintenanceWindow {
    /// Bit `n` set: the window opens on weekday `n`, Monday = 0 … Sunday = 6.
    pub days: u8,
    /// Seconds after midnight UTC the window opens.
    pub start: u32,
    pub length: Duration,
}

impl MaintenanceWindow {
    /// Every day of the week.
    pub const EVERY_DAY: u8 = 0b111_1111;

    /// The first moment at or after `now` (seconds since the Unix epoch, UTC) inside a window: `now` itself when a
    /// window is open, otherwise the start of the next one.
    pub fn next_reboot_at(&self, now: u64) -> u64 {
        let today = now / SECONDS_PER_DAY;
        // A window that opened up to a week ago may still be open; one opens within the next week.
        let first_day = today.saturating_sub(7);
        let mut next_start = None;
        for day in first_day..=today + 7 {
            if !self.opens_on(weekday(day)) {
                continue;
            }
            let opens = day * SECONDS_PER_DAY + u64::from(self.start);
            let closes = opens + self.length.as_secs();
            if opens <= now && now < closes {
                return now;
            }
            if opens > now && next_start.is_none() {
                next_start = Some(opens);
            }
        }
        // With no day set there is no window; the reader never builds one.
        next_start.unwrap_or(now)
    }

    fn opens_on(&self, weekday: u8) -> bool {
        self.days & (1 << weekday) != 0
    }
}

/// The weekday of a day counted from the epoch, Monday = 0: 1970-01-01 was a Thursday.
fn weekday(day: u64) -> u8 {
    ((day + 3) % 7) as u8
}

pub(crate) fn read(reader: &mut Reader, field: &Field) -> Option<MaintenanceWindow> {
    let table = reader.table(field, &["days", "start", "length"])?;
    let days = match table.get("days") {
        None => Some(MaintenanceWindow::EVERY_DAY),
        Some(days) => read_days(reader, &days),
    };
    let start = match table.get("start") {
        Some(start) => reader.parse(&start, parse_time_of_day),
        None => {
            reader.error(table.span.clone(), &table.path, "a window needs start = \"HH:MM\" (UTC)");
            None
        }
    };
    let length = match table.get("length") {
        Some(length) => reader.parse(&length, parse_length),
        None => {
            reader.error(table.span.clone(), &table.path, "a window needs a length like \"3h\"");
            None
        }
    };
    Some(MaintenanceWindow { days: days?, start: start?, length: length? })
}

fn read_days(reader: &mut Reader, field: &Field) -> Option<u8> {
    let items = reader.array(field)?;
    if items.is_empty() {
        reader.error(field.node.span(), &field.path, "no day given; leave days out for every day");
        return None;
    }
    let mut days = 0u8;
    let mut all_valid = true;
    for item in &items {
        match reader.parse(item, parse_day) {
            Some(weekday) => days |= 1 << weekday,
            None => all_valid = false,
        }
    }
    all_valid.then_some(days)
}

/// `"mon"` … `"sun"` → Monday = 0 … Sunday = 6.
fn parse_day(text: &str) -> Result<u8, String> {
    DAY_NAMES
        .iter()
        .position(|name| *name == text)
        .map(|weekday| weekday as u8)
        .ok_or_else(|| format!("{text:?} is not a day: mon, tue, wed, thu, fri, sat or sun"))
}

/// `"HH:MM"`, 24-hour, UTC → seconds after midnight.
fn parse_time_of_day(text: &str) -> Result<u32, String> {
    let error = || format!("{text:?} is not a time of day like \"02:00\" (24-hour HH:MM, UTC)");
    let (hours, minutes) = text.split_once(':').ok_or_else(error)?;
    let two_digits = |part: &str| part.len() == 2 && part.bytes().all(|byte| byte.is_ascii_digit());
    if !two_digits(hours) || !two_digits(minutes) {
        return Err(error());
    }
    let hours: u32 = hours.parse().map_err(|_| error())?;
    let minutes: u32 = minutes.parse().map_err(|_| error())?;
    if hours > 23 || minutes > 59 {
        return Err(error());
    }
    Ok(hours * 3600 + minutes * 60)
}

fn parse_length(text: &str) -> Result<Duration, String> {
    let length = parse_duration(text).map_err(|error| error.to_string())?;
    if length < MIN_LENGTH || length > MAX_LENGTH {
        return Err(format!("{length:?} is not between 1m and 168h (a week)"));
    }
    Ok(length)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-28, a Saturday, 00:00 UTC.
    const SATURDAY: u64 = 1_795_824_000;
    const HOUR: u64 = 3600;
    const DAY: u64 = SECONDS_PER_DAY;

    fn window(days: &[&str], start: &str, length: &str) -> MaintenanceWindow {
        let days = days.iter().fold(0, |set, day| set | 1 << parse_day(day).unwrap());
        MaintenanceWindow { days, start: parse_time_of_day(start).unwrap(), length: parse_length(length).unwrap() }
    }

    #[test]
    fn the_reference_day_is_a_saturday() {
        assert_eq!(weekday(SATURDAY / DAY), 5);
        assert_eq!(weekday(0), 3, "1970-01-01 was a Thursday");
    }

    #[test]
    fn inside_a_window_is_now() {
        let weekend = window(&["sat", "sun"], "02:00", "3h");
        for now in [SATURDAY + 2 * HOUR, SATURDAY + 4 * HOUR, SATURDAY + DAY + 5 * HOUR - 1] {
            assert_eq!(weekend.next_reboot_at(now), now);
        }
    }

    #[test]
    fn before_a_window_is_its_start() {
        let weekend = window(&["sat", "sun"], "02:00", "3h");
        assert_eq!(weekend.next_reboot_at(SATURDAY), SATURDAY + 2 * HOUR);
        assert_eq!(weekend.next_reboot_at(SATURDAY + 2 * HOUR - 1), SATURDAY + 2 * HOUR);
        // The window closes at 05:00: from then on, Sunday's.
        assert_eq!(weekend.next_reboot_at(SATURDAY + 5 * HOUR), SATURDAY + DAY + 2 * HOUR);
    }

    #[test]
    fn crosses_into_next_week() {
        let weekend = window(&["sat", "sun"], "02:00", "3h");
        let sunday_evening = SATURDAY + DAY + 20 * HOUR;
        assert_eq!(weekend.next_reboot_at(sunday_evening), SATURDAY + 7 * DAY + 2 * HOUR);
        let monday = window(&["mon"], "00:00", "1h");
        assert_eq!(monday.next_reboot_at(SATURDAY), SATURDAY + 2 * DAY);
        // Just after Monday's window closes: the following Monday.
        assert_eq!(monday.next_reboot_at(SATURDAY + 2 * DAY + HOUR), SATURDAY + 9 * DAY);
    }

    #[test]
    fn a_window_past_midnight_is_open_the_next_day() {
        let late_friday = window(&["fri"], "23:00", "3h");
        let friday = SATURDAY - DAY;
        assert_eq!(late_friday.next_reboot_at(SATURDAY + HOUR), SATURDAY + HOUR, "Saturday 01:00 is inside");
        assert_eq!(late_friday.next_reboot_at(SATURDAY + 2 * HOUR), friday + 7 * DAY + 23 * HOUR);
        assert_eq!(late_friday.next_reboot_at(friday + 22 * HOUR), friday + 23 * HOUR);
    }

    #[test]
    fn a_week_long_window_is_always_open_and_every_day_daily() {
        let always = window(&["wed"], "12:00", "168h");
        for now in [SATURDAY, SATURDAY + 3 * DAY + 5 * HOUR, SATURDAY + 4 * DAY + 12 * HOUR] {
            assert_eq!(always.next_reboot_at(now), now);
        }
        let nightly = MaintenanceWindow { days: MaintenanceWindow::EVERY_DAY, ..window(&["mon"], "03:30", "30m") };
        assert_eq!(nightly.next_reboot_at(SATURDAY + 4 * HOUR), SATURDAY + DAY + 3 * HOUR + 1800);
        assert_eq!(nightly.next_reboot_at(0), 3 * HOUR + 1800, "at the epoch");
    }

    #[test]
    fn times_of_day() {
        assert_eq!(parse_time_of_day("00:00"), Ok(0));
        assert_eq!(parse_time_of_day("23:59"), Ok(23 * 3600 + 59 * 60));
        for bad in ["24:00", "2:00", "02:60", "0200", "02:00:00", "aa:bb", ""] {
            assert!(parse_time_of_day(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn days_and_lengths() {
        assert_eq!(parse_day("mon"), Ok(0));
        assert_eq!(parse_day("sun"), Ok(6));
        assert!(parse_day("Sunday").is_err());
        assert_eq!(parse_length("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_length("59s").is_err());
        assert!(parse_length("169h").is_err());
    }
}
