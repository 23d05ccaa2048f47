//! Which boot entry this boot came from and whether it is a trial, from systemd-boot's variables.

use std::fmt;

use keel_os_image::boot_entry::BootEntryName;

use crate::efi_vars::{self, LOADER_BOOT_COUNT_PATH, LOADER_ENTRY_SELECTED};

/// What the loader says about this boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootKind {
    /// No UEFI: the direct kernel boot has no entry and no counter.
    NoUefi,
    /// UEFI, but no `LoaderEntrySelected`: another loader.
    NoEntry,
    /// An entry that is not named like keel's.
    ForeignEntry(String),
    /// A keel entry without a boot counter: blessed, nothing to assess.
    Blessed(BootEntryName),
    /// A keel entry with a boot counter: this boot is a trial the health gate decides.
    Trial(BootEntryName),
}

impl BootKind {
    /// Reads the loader's variables.
    pub fn read() -> BootKind {
        classify(efi_vars::read_loader_strings([LOADER_ENTRY_SELECTED, LOADER_BOOT_COUNT_PATH]))
    }

    /// The keel entry booted, trial or not.
    pub fn entry(&self) -> Option<&BootEntryName> {
        match self {
            BootKind::Blessed(entry) | BootKind::Trial(entry) => Some(entry),
            _ => None,
        }
    }
}

/// Decides from `[LoaderEntrySelected, LoaderBootCountPath]`, `None` without UEFI. The entry id carries its
/// counter in the systemd-boot keel ships (the file name before this attempt's rename, lowercased); later
/// versions strip it from the id, and then `LoaderBootCountPath`, set only for a counted entry, tells.
pub fn classify(variables: Option<[Option<String>; 2]>) -> BootKind {
    let Some([selected, count_path]) = variables else { return BootKind::NoUefi };
    let Some(selected) = selected else { return BootKind::NoEntry };
    let Ok(entry) = selected.parse::<BootEntryName>() else { return BootKind::ForeignEntry(selected) };
    let counted_file = count_path
        .as_deref()
        .and_then(|path| path.rsplit(['\\', '/']).next())
        .and_then(|name| name.parse::<BootEntryName>().ok())
        .filter(|file| file.is_same_entry(&entry) && file.counter.is_some());
    match (entry.counter.is_some(), counted_file) {
        (true, _) => BootKind::Trial(entry),
        (false, Some(file)) => BootKind::Trial(BootEntryName { counter: file.counter, ..entry }),
        (false, None) => BootKind::Blessed(entry),
    }
}

impl fmt::Display for BootKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BootKind::NoUefi => f.write_str("not a trial boot: no UEFI (a direct kernel boot has no boot counter)"),
            BootKind::NoEntry => f.write_str("not a trial boot: the boot loader did not say which entry it booted"),
            BootKind::ForeignEntry(id) => write!(f, "not a trial boot: the booted entry {id:?} is not keel's"),
            BootKind::Blessed(entry) => write!(f, "not a trial boot: entry {entry} has no boot counter"),
            BootKind::Trial(entry) => {
                write!(f, "trial boot of entry {entry}: the health gate decides whether it stays")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::efi_vars::parse_string_variable;
    use crate::efi_vars::tests::variable;

    fn kind(selected: Option<&str>, count_path: Option<&str>) -> BootKind {
        let read = |text: &str| parse_string_variable(&variable(text));
        classify(Some([selected.and_then(read), count_path.and_then(read)]))
    }

    #[test]
    fn a_counted_entry_is_a_trial() {
        let expected = BootKind::Trial("keel-0.2.0-b+3.conf".parse().unwrap());
        assert_eq!(kind(Some("keel-0.2.0-b+3.conf"), Some("\\loader\\entries\\keel-0.2.0-b+2-1.conf")), expected);
        assert_eq!(kind(Some("keel-0.2.0-b+3.conf"), None), expected);
    }

    #[test]
    fn an_id_without_its_counter_is_a_trial_when_the_loader_counted_it() {
        let trial = kind(Some("keel-0.2.0-b.conf"), Some("\\loader\\entries\\keel-0.2.0-b+2-1.conf"));
        assert_eq!(trial, BootKind::Trial("keel-0.2.0-b+2-1.conf".parse().unwrap()));
        // A count path of another entry says nothing about this one.
        let other = kind(Some("keel-0.2.0-b.conf"), Some("\\loader\\entries\\keel-0.1.0-a+2-1.conf"));
        assert_eq!(other, BootKind::Blessed("keel-0.2.0-b.conf".parse().unwrap()));
    }

    #[test]
    fn everything_else_is_not_a_trial() {
        assert_eq!(classify(None), BootKind::NoUefi);
        assert_eq!(kind(None, None), BootKind::NoEntry);
        assert_eq!(kind(Some("keel-0.1.0-a.conf"), None), BootKind::Blessed("keel-0.1.0-a.conf".parse().unwrap()));
        assert_eq!(kind(Some("auto-efi-shell"), None), BootKind::ForeignEntry("auto-efi-shell".into()));
    }
}
