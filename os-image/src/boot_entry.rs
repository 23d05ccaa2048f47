//! Names of keel's Type #1 boot entries, `keel-<version>-<slot>[+LEFT[-DONE]].conf`, with systemd-boot's
//! boot-counting suffix.
//!
//! systemd-boot renames a counted entry on every boot attempt (`+3` → `+2-1` → … → `+0-3`), so code that looks
//! for an entry must compare the parsed name without its counter, never the file name.

use std::fmt;
use std::str::FromStr;

use crate::layout::{esp_initramfs_path, esp_kernel_path};
use crate::slot::SLOT_PARAMETER;
use crate::Slot;

const PREFIX: &str = "keel-";
const SUFFIX: &str = ".conf";

/// systemd-boot's boot-assessment counter: tries left and tries done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootCounter {
    pub left: u32,
    pub done: Option<u32>,
}

/// The parsed name of a keel boot entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootEntryName {
    pub version: String,
    pub slot: Slot,
    /// `None` for a blessed (or never counted) entry.
    pub counter: Option<BootCounter>,
}

/// A file name that is not a keel boot entry.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BootEntryError {
    #[error("{name:?} is not a keel boot entry: expected keel-<version>-<a|b>[+LEFT[-DONE]].conf")]
    NotAnEntry { name: String },
    #[error("{name:?} has a bad boot counter {counter:?}: expected +LEFT or +LEFT-DONE with whole numbers")]
    BadCounter { name: String, counter: String },
}

impl BootEntryName {
    /// A new, uncounted entry.
    pub fn new(version: &str, slot: Slot) -> Self {
        BootEntryName { version: version.to_owned(), slot, counter: None }
    }

    /// The same entry with a fresh counter of `tries` boot attempts, as an update writes it.
    pub fn with_tries(mut self, tries: u32) -> Self {
        self.counter = Some(BootCounter { left: tries, done: None });
        self
    }

    /// The entry's name once it is blessed: without the counter.
    pub fn blessed(&self) -> Self {
        BootEntryName { counter: None, ..self.clone() }
    }

    /// The same entry with no tries left (`+0-DONE`), as a failed trial boot leaves it: systemd-boot then boots
    /// it only when no other entry is left. `DONE` keeps the attempts made so far.
    pub fn marked_bad(&self) -> Self {
        let done = self.counter.and_then(|counter| counter.done).unwrap_or(0);
        BootEntryName { counter: Some(BootCounter { left: 0, done: Some(done) }), ..self.clone() }
    }

    /// Whether `other` is this entry under any counter: systemd-boot renames the file on every attempt.
    pub fn is_same_entry(&self, other: &BootEntryName) -> bool {
        self.slot == other.slot && self.version.eq_ignore_ascii_case(&other.version)
    }

    pub fn tries_left(&self) -> Option<u32> {
        self.counter.map(|counter| counter.left)
    }
}

impl fmt::Display for BootEntryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{}-{}", self.version, self.slot)?;
        match self.counter {
            Some(BootCounter { left, done: Some(done) }) => write!(f, "+{left}-{done}")?,
            Some(BootCounter { left, done: None }) => write!(f, "+{left}")?,
            None => {}
        }
        f.write_str(SUFFIX)
    }
}

impl FromStr for BootEntryName {
    type Err = BootEntryError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let not_an_entry = || BootEntryError::NotAnEntry { name: name.to_owned() };
        let stem = name.strip_prefix(PREFIX).and_then(|rest| rest.strip_suffix(SUFFIX)).ok_or_else(not_an_entry)?;
        let (stem, counter) = match stem.rsplit_once('+') {
            Some((stem, counter)) => (stem, Some(parse_counter(name, counter)?)),
            None => (stem, None),
        };
        let (version, slot) = stem.rsplit_once('-').ok_or_else(not_an_entry)?;
        let slot = slot.parse::<Slot>().map_err(|_| not_an_entry())?;
        if version.is_empty() {
            return Err(not_an_entry());
        }
        Ok(BootEntryName { version: version.to_owned(), slot, counter })
    }
}

fn parse_counter(name: &str, counter: &str) -> Result<BootCounter, BootEntryError> {
    let bad = || BootEntryError::BadCounter { name: name.to_owned(), counter: counter.to_owned() };
    let number = |text: &str| {
        if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
            return Err(bad());
        }
        text.parse::<u32>().map_err(|_| bad())
    };
    match counter.split_once('-') {
        Some((left, done)) => Ok(BootCounter { left: number(left)?, done: Some(number(done)?) }),
        None => Ok(BootCounter { left: number(counter)?, done: None }),
    }
}

/// The `sort-key` of every entry keel writes. systemd-boot orders entries that have one by their `version` line,
/// highest first, and puts them before entries without one (what keel wrote before generations).
pub const SORT_KEY: &str = "keel";

/// The text of a slot's Type #1 entry file: what `keel-build image` writes for slot a (generation 0) and an install
/// writes for the slot it filled (one more than the running entry's), so that both boot the same way.
///
/// The `version` line starts with the generation: systemd-boot boots the good entry of the highest, which is the
/// slot installed last whatever its version (an allowed downgrade too), and the running slot once the new entry is
/// marked bad. Without it, systemd-boot would order by the entries' names and prefer the higher version.
pub fn entry_file_text(version: &str, slot: Slot, options: &str, generation: u64) -> String {
    format!(
        "title keel {version} (slot {slot})\nsort-key {SORT_KEY}\nversion {generation}-{version}-{slot}\nlinux /{}\n\
         initrd /{}\noptions {options}\n",
        esp_kernel_path(slot),
        esp_initramfs_path(slot)
    )
}

/// The generation of an entry file's text (see [`entry_file_text`]); 0 for an entry without keel's `sort-key`.
pub fn entry_generation(text: &str) -> u64 {
    let sort_key = format!("sort-key {SORT_KEY}");
    if !text.lines().any(|line| line.trim_end() == sort_key) {
        return 0;
    }
    let version = text.lines().find_map(|line| line.strip_prefix("version "));
    version.and_then(|version| version.split('-').next()).and_then(|number| number.trim().parse().ok()).unwrap_or(0)
}

/// The `options` line of an entry file's text; `None` without one.
pub fn entry_options(text: &str) -> Option<&str> {
    text.lines().find_map(|line| line.strip_prefix("options ")).map(str::trim)
}

/// A kernel command line for `slot`: `options` with its `keel.slot=` parameters dropped and `slot`'s appended,
/// as `keel-build` appends it. An install takes the running entry's options: format 1 bundles carry none.
pub fn options_for_slot(options: &str, slot: Slot) -> String {
    let prefix = format!("{SLOT_PARAMETER}=");
    let mut kept: Vec<&str> = options.split_whitespace().filter(|token| !token.starts_with(&prefix)).collect();
    let parameter = format!("{prefix}{slot}");
    kept.push(&parameter);
    kept.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_counter_form() {
        let plain: BootEntryName = "keel-1.0.0-a.conf".parse().unwrap();
        assert_eq!(plain, BootEntryName::new("1.0.0", Slot::A));

        let fresh: BootEntryName = "keel-1.0.0-rc1-b+3.conf".parse().unwrap();
        assert_eq!(fresh.version, "1.0.0-rc1");
        assert_eq!(fresh.slot, Slot::B);
        assert_eq!(fresh.counter, Some(BootCounter { left: 3, done: None }));

        let tried: BootEntryName = "keel-2-b+0-3.conf".parse().unwrap();
        assert_eq!(tried.counter, Some(BootCounter { left: 0, done: Some(3) }));
    }

    #[test]
    fn formats_what_it_parses() {
        for name in ["keel-1.0.0-a.conf", "keel-1.0.0-rc1-b+3.conf", "keel-2-b+0-3.conf"] {
            assert_eq!(name.parse::<BootEntryName>().unwrap().to_string(), name);
        }
        let counted = BootEntryName::new("7", Slot::B).with_tries(3);
        assert_eq!(counted.to_string(), "keel-7-b+3.conf");
        assert_eq!(counted.blessed().to_string(), "keel-7-b.conf");
    }

    #[test]
    fn names_a_blessed_and_a_bad_trial() {
        // systemd-boot renamed `+3` to `+2-1` before booting it.
        let tried: BootEntryName = "keel-2.0.0-b+2-1.conf".parse().unwrap();
        assert_eq!(tried.blessed().to_string(), "keel-2.0.0-b.conf");
        assert_eq!(tried.marked_bad().to_string(), "keel-2.0.0-b+0-1.conf");
        let last_try: BootEntryName = "keel-2.0.0-b+0-3.conf".parse().unwrap();
        assert_eq!(last_try.marked_bad().to_string(), "keel-2.0.0-b+0-3.conf");
        // An entry booted without systemd-boot's bump (another loader) has made no counted attempt.
        let fresh: BootEntryName = "keel-2.0.0-b+3.conf".parse().unwrap();
        assert_eq!(fresh.marked_bad().to_string(), "keel-2.0.0-b+0-0.conf");
        assert_eq!(fresh.marked_bad().tries_left(), Some(0));
    }

    #[test]
    fn the_same_entry_under_any_counter() {
        let selected: BootEntryName = "keel-2.0.0-b+3.conf".parse().unwrap();
        let on_disk: BootEntryName = "keel-2.0.0-b+2-1.conf".parse().unwrap();
        assert!(selected.is_same_entry(&on_disk));
        assert!(selected.is_same_entry(&on_disk.blessed()));
        assert!(!selected.is_same_entry(&"keel-2.0.0-a+2-1.conf".parse().unwrap()));
        assert!(!selected.is_same_entry(&"keel-2.0.1-b+2-1.conf".parse().unwrap()));
    }

    #[test]
    fn rejects_what_is_not_an_entry() {
        for name in ["loader.conf", "keel-1.0.0-c.conf", "keel--a.conf", "keel-1-a.efi", "other-1-a.conf"] {
            assert_eq!(
                name.parse::<BootEntryName>(),
                Err(BootEntryError::NotAnEntry { name: name.to_owned() }),
                "{name}"
            );
        }
        assert_eq!(
            "keel-1-a+x-1.conf".parse::<BootEntryName>(),
            Err(BootEntryError::BadCounter { name: "keel-1-a+x-1.conf".into(), counter: "x-1".into() })
        );
    }

    #[test]
    fn writes_an_entry_file_for_a_slot() {
        let text = entry_file_text("0.2.0", Slot::B, "console=ttyS0 panic=-1 keel.slot=b", 7);
        assert_eq!(
            text,
            "title keel 0.2.0 (slot b)\nsort-key keel\nversion 7-0.2.0-b\nlinux /keel/b/vmlinuz\n\
             initrd /keel/b/initrd.img\noptions console=ttyS0 panic=-1 keel.slot=b\n"
        );
        assert_eq!(entry_options(&text), Some("console=ttyS0 panic=-1 keel.slot=b"));
        assert_eq!(entry_options("title x\n"), None);
        assert_eq!(entry_generation(&text), 7);
    }

    #[test]
    fn an_entry_without_keels_sort_key_is_generation_0() {
        let before_generations = "title keel 0.2.0 (slot b)\nversion 0.2.0-b\nlinux /keel/b/vmlinuz\n";
        assert_eq!(entry_generation(before_generations), 0);
        assert_eq!(entry_generation("sort-key keel\nversion x-1.0-a\n"), 0);
        assert_eq!(entry_generation("sort-key other\nversion 5-1.0-a\n"), 0);
        assert_eq!(entry_generation("sort-key keel\nversion 12-1.0-a\n"), 12);
    }

    #[test]
    fn moves_the_options_to_the_other_slot() {
        assert_eq!(
            options_for_slot("console=ttyS0 keel.slot=a panic=-1", Slot::B),
            "console=ttyS0 panic=-1 keel.slot=b"
        );
        assert_eq!(options_for_slot("console=ttyS0", Slot::A), "console=ttyS0 keel.slot=a");
    }
}
