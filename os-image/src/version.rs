//! OS version strings: which ones are allowed (they end up in boot entry and file names) and how two compare, so
//! that an update can tell a downgrade from an upgrade.
//!
//! The order: the release (the part before the first `-` or `~`) is compared component by component, split at
//! `.`, a missing component counting as `0` (`1.2` = `1.2.0`). Inside a component, runs of digits compare as numbers
//! and runs of other characters bytewise, a number before text (`1.10` > `1.9`, `1.0rc2` < `1.0rc10`). A version with
//! a pre-release suffix (`-rc1`, `~beta`) sorts before the same release without one, and two suffixes compare like
//! releases (`1.0-rc1` < `1.0-rc2` < `1.0`).

use std::cmp::Ordering;

/// The longest allowed version: boot entry names and paths on the ESP are built from it.
pub const MAX_VERSION_LEN: usize = 64;

/// Whether `version` may name an OS version: 1 to [`MAX_VERSION_LEN`] letters, digits, `.`, `_`, `~` and `-`.
/// `+` would read as systemd-boot's boot counter in an entry name; `/` and spaces break paths.
pub fn is_valid(version: &str) -> bool {
    !version.is_empty()
        && version.len() <= MAX_VERSION_LEN
        && version.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"._~-".contains(&byte))
}

/// Compares two versions in the order the module documentation describes.
pub fn compare(a: &str, b: &str) -> Ordering {
    let (a_release, a_pre) = split_prerelease(a);
    let (b_release, b_pre) = split_prerelease(b);
    compare_dotted(a_release, b_release).then_with(|| match (a_pre, b_pre) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(a_pre), Some(b_pre)) => compare_dotted(a_pre, b_pre),
    })
}

fn split_prerelease(version: &str) -> (&str, Option<&str>) {
    match version.find(['-', '~']) {
        Some(at) => (&version[..at], Some(&version[at + 1..])),
        None => (version, None),
    }
}

fn compare_dotted(a: &str, b: &str) -> Ordering {
    let mut a_parts = a.split('.');
    let mut b_parts = b.split('.');
    loop {
        match (a_parts.next(), b_parts.next()) {
            (None, None) => return Ordering::Equal,
            (a_part, b_part) => {
                let order = compare_component(a_part.unwrap_or("0"), b_part.unwrap_or("0"));
                if order != Ordering::Equal {
                    return order;
                }
            }
        }
    }
}

/// Compares runs of digits as numbers and runs of other characters bytewise.
fn compare_component(a: &str, b: &str) -> Ordering {
    let mut a_runs = Runs(a);
    let mut b_runs = Runs(b);
    loop {
        match (a_runs.next(), b_runs.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(a_run), Some(b_run)) => {
                let order = compare_run(a_run, b_run);
                if order != Ordering::Equal {
                    return order;
                }
            }
        }
    }
}

fn compare_run(a: &str, b: &str) -> Ordering {
    match (is_number(a), is_number(b)) {
        // Compared as text without leading zeros: no overflow however long the number.
        (true, true) => {
            let a = a.trim_start_matches('0');
            let b = b.trim_start_matches('0');
            a.len().cmp(&b.len()).then_with(|| a.cmp(b))
        }
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => a.cmp(b),
    }
}

fn is_number(run: &str) -> bool {
    run.bytes().next().is_some_and(|byte| byte.is_ascii_digit())
}

/// The runs of a component: maximal stretches of digits, and of everything else.
struct Runs<'a>(&'a str);

impl<'a> Iterator for Runs<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let first = self.0.bytes().next()?;
        let digits = first.is_ascii_digit();
        let end = self.0.bytes().position(|byte| byte.is_ascii_digit() != digits).unwrap_or(self.0.len());
        let (run, rest) = self.0.split_at(end);
        self.0 = rest;
        Some(run)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_releases_numerically() {
        let ascending = [
            "0.1.0", "0.1.1", "0.2", "0.2.1", "0.9", "0.10", "1.0-rc1", "1.0-rc2", "1.0-rc10", "1.0", "1.0.1", "2",
            "2.0.0.1", "10",
        ];
        for (index, lower) in ascending.iter().enumerate() {
            for higher in &ascending[index + 1..] {
                assert_eq!(compare(lower, higher), Ordering::Less, "{lower} < {higher}");
                assert_eq!(compare(higher, lower), Ordering::Greater, "{higher} > {lower}");
            }
        }
    }

    #[test]
    fn equal_forms_are_equal() {
        for (a, b) in [("1.2", "1.2.0"), ("1.02", "1.2"), ("1.0~rc1", "1.0-rc1"), ("3", "3.0.0")] {
            assert_eq!(compare(a, b), Ordering::Equal, "{a} = {b}");
        }
        let huge = "1.123456789012345678901234567890";
        assert_eq!(compare(huge, &format!("{huge}1")), Ordering::Less);
    }

    #[test]
    fn validity() {
        assert!(is_valid("1.0.0-rc1~x_y"));
        for bad in ["", "1+2", "1/2", "1 2", "ä", &"1".repeat(MAX_VERSION_LEN + 1)] {
            assert!(!is_valid(bad), "{bad:?}");
        }
    }
}
