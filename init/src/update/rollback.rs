//! Rollback on request: the running slot's entry is renamed to `+0-DONE` (no tries left), so that systemd-boot,
//! which sorts such entries last, boots the other slot's good entry next and on every boot after. A rename on the
//! ESP survives any number of reboots and needs no EFI variable (`LoaderEntryDefault` would also pin every later
//! install to the old entry until cleared).

use std::fs::{self, File};
use std::path::Path;

use keel_os_image::boot_entry::BootEntryName;
use keel_os_image::layout::ESP_ENTRIES_DIR;
use keel_os_image::Slot;

use super::esp::{self, EspWriteError, MountedEsp};
use crate::boot_disk;

/// Why the rollback was not done.
#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    #[error("this boot has no keel boot entry to roll back from (no UEFI, or another loader)")]
    NoRunningEntry,
    #[error("slot {slot} has no good boot entry (blessed, or with tries left) to roll back to")]
    NothingToRollBackTo { slot: Slot },
    #[error("cannot tell the boot disk: the root filesystem is not on a partition")]
    NoBootDisk,
    #[error("cannot rename the running entry on the ESP")]
    Esp(#[source] EspWriteError),
}

/// The other slot's entry that boots next, and the running entry's file before and after its rename.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolledBack {
    pub target: BootEntryName,
    pub from: String,
    pub to: String,
}

/// Marks the running entry `running` bad so that the other slot's good entry boots next. Does not reboot.
pub fn roll_back(running: &BootEntryName) -> Result<RolledBack, RollbackError> {
    let disk = boot_disk::root_filesystem_disk().ok_or(RollbackError::NoBootDisk)?;
    let esp = MountedEsp::mount(&disk).map_err(RollbackError::Esp)?;
    roll_back_in(esp.root(), running)
}

/// The rollback on the ESP mounted at `esp`.
fn roll_back_in(esp: &Path, running: &BootEntryName) -> Result<RolledBack, RollbackError> {
    let entries = esp::entries(esp).map_err(RollbackError::Esp)?;
    let other = running.slot.other();
    let target = rollback_target(entries.iter().map(|(_, entry)| entry), other)
        .cloned()
        .ok_or(RollbackError::NothingToRollBackTo { slot: other })?;
    let (from, current) =
        entries.iter().find(|(_, entry)| entry.is_same_entry(running)).cloned().ok_or(RollbackError::NoRunningEntry)?;
    let to = current.marked_bad().to_string();
    let dir = esp.join(ESP_ENTRIES_DIR);
    let rename_error = |source| RollbackError::Esp(EspWriteError::Write { path: dir.join(&from), source });
    fs::rename(dir.join(&from), dir.join(&to)).map_err(rename_error)?;
    File::open(&dir).and_then(|directory| directory.sync_all()).map_err(rename_error)?;
    Ok(RolledBack { target, from, to })
}

/// The entry of `slot` systemd-boot would boot: blessed (no counter) or with tries left.
pub fn rollback_target<'a>(entries: impl Iterator<Item = &'a BootEntryName>, slot: Slot) -> Option<&'a BootEntryName> {
    entries
        .filter(|entry| entry.slot == slot && entry.tries_left() != Some(0))
        .max_by(|left, right| keel_os_image::version::compare(&left.version, &right.version))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::update::test_support::names;

    #[test]
    fn picks_a_good_entry_of_the_other_slot_only() {
        let parse =
            |names: &[&str]| names.iter().map(|name| name.parse::<BootEntryName>().unwrap()).collect::<Vec<_>>();
        let entries = parse(&["keel-0.1.0-a.conf", "keel-0.2.0-b+2-1.conf", "keel-0.3.0-a+0-3.conf"]);
        assert_eq!(
            rollback_target(entries.iter(), Slot::A).map(ToString::to_string).as_deref(),
            Some("keel-0.1.0-a.conf")
        );
        assert_eq!(
            rollback_target(entries.iter(), Slot::B).map(ToString::to_string).as_deref(),
            Some("keel-0.2.0-b+2-1.conf")
        );
        let bad_only = parse(&["keel-0.3.0-a+0-3.conf"]);
        assert_eq!(rollback_target(bad_only.iter(), Slot::A), None);
    }

    #[test]
    fn marks_the_running_entry_bad_and_leaves_the_other() {
        let esp = tempfile::tempdir().unwrap();
        let dir = esp.path().join(ESP_ENTRIES_DIR);
        fs::create_dir_all(&dir).unwrap();
        for name in ["keel-0.1.0-a.conf", "keel-0.2.0-b.conf"] {
            fs::write(dir.join(name), name).unwrap();
        }
        let running: BootEntryName = "keel-0.2.0-b.conf".parse().unwrap();
        let done = roll_back_in(esp.path(), &running).unwrap();
        assert_eq!(done.target.to_string(), "keel-0.1.0-a.conf");
        assert_eq!((done.from.as_str(), done.to.as_str()), ("keel-0.2.0-b.conf", "keel-0.2.0-b+0-0.conf"));
        assert_eq!(names(&dir), ["keel-0.1.0-a.conf", "keel-0.2.0-b+0-0.conf"]);
        // Back on a, nothing good is left in b.
        let running: BootEntryName = "keel-0.1.0-a.conf".parse().unwrap();
        assert!(matches!(roll_back_in(esp.path(), &running), Err(RollbackError::NothingToRollBackTo { .. })));
    }
}
