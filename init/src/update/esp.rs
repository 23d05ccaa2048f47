//! The install's writes to the EFI system partition: mounted read-write for the install alone, the inactive
//! slot's entries removed, files written under temporary names, synced and renamed, the new entry renamed last.
//! Every step syncs what it changed before the next, so that a power cut leaves each file old or new, never half.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use keel_logs::error_chain;
use keel_os_image::boot_entry::{entry_generation, entry_options, BootEntryName};
use keel_os_image::layout::{ESP_ENTRIES_DIR, ESP_PARTITION};
use keel_os_image::Slot;
use nix::mount::{umount, umount2, MntFlags, MsFlags};

use crate::block::{wait_for_partition, PartitionError, Scope};
use crate::mounts::{Mount, MountError};

/// Where the ESP is mounted during an install (apart from the health gate's, which may rename at the same time).
const ESP_MOUNT_POINT: &str = "/run/keel/update/esp";
/// The ESP is on the boot disk, which is long there.
const ESP_WAIT: Duration = Duration::from_secs(2);
/// At most this many files are looked at in the entries directory: a handful are keel's.
const MAX_ENTRIES: usize = 256;
/// An entry file is a few lines.
const MAX_ENTRY_FILE: u64 = 64 * 1024;
/// The suffix of a file being written; renamed away once synced.
const PARTIAL_SUFFIX: &str = ".partial";

/// A step on the ESP that failed, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum EspWriteError {
    #[error("cannot find the ESP")]
    Partition(#[source] PartitionError),
    #[error("cannot mount the ESP read-write")]
    Mount(#[source] MountError),
    #[error("cannot read {} on the ESP", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot remove {} from the ESP", path.display())]
    Remove {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write {} on the ESP", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "no boot entry of the running slot {slot} in {ESP_ENTRIES_DIR} on the ESP to take the kernel options from"
    )]
    NoRunningEntry { slot: Slot },
}

/// The ESP, mounted read-write until dropped.
pub struct MountedEsp {
    root: PathBuf,
}

impl MountedEsp {
    /// Mounts the ESP of `disk` (the boot disk).
    pub fn mount(disk: &str) -> Result<MountedEsp, EspWriteError> {
        let device =
            wait_for_partition(ESP_PARTITION, Scope::Disk(disk), ESP_WAIT).map_err(EspWriteError::Partition)?;
        let device = device.to_string_lossy().into_owned();
        let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC | MsFlags::MS_NOATIME;
        let esp = Mount { source: &device, target: ESP_MOUNT_POINT, fstype: "vfat", flags, data: None };
        esp.ensure().map_err(EspWriteError::Mount)?;
        Ok(MountedEsp { root: PathBuf::from(ESP_MOUNT_POINT) })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
}

impl Drop for MountedEsp {
    fn drop(&mut self) {
        if let Err(error) = umount(&self.root) {
            // Everything written is synced; a lazy unmount keeps the next install's mount from failing.
            log::warn!("update: cannot unmount the ESP: {}", error_chain(&error));
            let _ = umount2(&self.root, MntFlags::MNT_DETACH);
        }
    }
}

/// keel's entries in the entries directory under `esp`, by file name.
pub fn entries(esp: &Path) -> Result<Vec<(String, BootEntryName)>, EspWriteError> {
    let dir = esp.join(ESP_ENTRIES_DIR);
    let read_error = |source| EspWriteError::Read { path: dir.clone(), source };
    let mut found = Vec::new();
    for file in fs::read_dir(&dir).map_err(read_error)?.take(MAX_ENTRIES) {
        let name = file.map_err(read_error)?.file_name().to_string_lossy().into_owned();
        if let Ok(parsed) = name.parse::<BootEntryName>() {
            found.push((name, parsed));
        }
    }
    found.sort_by(|left, right| left.0.cmp(&right.0));
    Ok(found)
}

/// Removes every entry of `slot` (whatever version or counter) and syncs the directory: from here on nothing
/// boots `slot` until a new entry is written. Returns the names removed.
pub fn remove_slot_entries(esp: &Path, slot: Slot) -> Result<Vec<String>, EspWriteError> {
    let dir = esp.join(ESP_ENTRIES_DIR);
    let mut removed = Vec::new();
    for (name, entry) in entries(esp)? {
        if entry.slot != slot {
            continue;
        }
        let path = dir.join(&name);
        fs::remove_file(&path).map_err(|source| EspWriteError::Remove { path: path.clone(), source })?;
        removed.push(name);
    }
    // Leftovers of an install that stopped half-way are no entries, but take room.
    if let Ok(files) = fs::read_dir(&dir) {
        for file in files.filter_map(Result::ok).take(MAX_ENTRIES) {
            if file.file_name().to_string_lossy().ends_with(PARTIAL_SUFFIX) {
                let _ = fs::remove_file(file.path());
            }
        }
    }
    sync_dir(&dir)?;
    Ok(removed)
}

/// What an install takes from the running slot's entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningEntry {
    /// The kernel options.
    pub options: String,
    /// The entry's generation: the new entry gets the next one, so that it boots first.
    pub generation: u64,
}

/// The running slot's entry (any of its versions and counters; the highest generation when it has several).
pub fn running_entry(esp: &Path, running: Slot) -> Result<RunningEntry, EspWriteError> {
    let dir = esp.join(ESP_ENTRIES_DIR);
    let mut found: Option<RunningEntry> = None;
    for (name, entry) in entries(esp)? {
        if entry.slot != running {
            continue;
        }
        let path = dir.join(&name);
        let text = keel_config::bounded_file::read_file_bounded(&path, MAX_ENTRY_FILE)
            .map_err(|source| EspWriteError::Read { path: path.clone(), source: io::Error::other(source) })?;
        let text = String::from_utf8_lossy(&text);
        let Some(options) = entry_options(&text) else { continue };
        let generation = entry_generation(&text);
        if found.as_ref().is_none_or(|found| generation > found.generation) {
            found = Some(RunningEntry { options: options.to_owned(), generation });
        }
    }
    found.ok_or(EspWriteError::NoRunningEntry { slot: running })
}

/// Files written at their paths under the ESP through temporary names: all their bytes made durable with one
/// sync of the ESP, then each renamed over its target when the caller says, with a sync between renames that must
/// not be reordered.
pub struct PartialFiles {
    /// The ESP's root, for `syncfs` and the flush of its directory.
    esp: File,
    /// `(relative, temporary, target)` for each file not renamed yet.
    pending: Vec<(String, PathBuf, PathBuf)>,
}

impl PartialFiles {
    /// Creates and writes each of `files` (relative path, bytes) under its temporary name, then syncs.
    pub fn write(esp: &Path, files: &[(&str, &[u8])]) -> Result<PartialFiles, EspWriteError> {
        let esp_dir = File::open(esp).map_err(|source| EspWriteError::Write { path: esp.to_path_buf(), source })?;
        let mut pending = Vec::new();
        for (relative, bytes) in files {
            let target = esp.join(relative);
            let partial = PathBuf::from(format!("{}{PARTIAL_SUFFIX}", target.display()));
            let write_error = |source| EspWriteError::Write { path: PathBuf::from(relative), source };
            if let Some(parent) = target.parent() {
                fs::create_dir_all(parent).map_err(write_error)?;
            }
            File::create(&partial).and_then(|mut file| file.write_all(bytes)).map_err(write_error)?;
            pending.push(((*relative).to_owned(), partial, target));
        }
        let files = PartialFiles { esp: esp_dir, pending };
        files.sync()?;
        Ok(files)
    }

    /// Renames the temporary file of `relative` over its target; durable with the next [`PartialFiles::sync`].
    pub fn rename(&mut self, relative: &str) -> Result<(), EspWriteError> {
        let Some(index) = self.pending.iter().position(|(name, _, _)| name == relative) else {
            return Ok(());
        };
        let (_, partial, target) = self.pending.remove(index);
        fs::rename(&partial, &target).map_err(|source| EspWriteError::Write { path: target, source })
    }

    /// Writes back everything on the ESP (`syncfs`), then flushes the disk's cache through an `fsync` of the
    /// ESP's root directory: vfat's `syncfs` writes the blocks but does not flush.
    pub fn sync(&self) -> Result<(), EspWriteError> {
        let sync_error = |source| EspWriteError::Write { path: PathBuf::from("/"), source };
        nix::unistd::syncfs(&self.esp).map_err(|errno| sync_error(io::Error::from(errno)))?;
        self.esp.sync_all().map_err(sync_error)
    }
}

fn sync_dir(dir: &Path) -> Result<(), EspWriteError> {
    File::open(dir)
        .and_then(|directory| directory.sync_all())
        .map_err(|source| EspWriteError::Write { path: dir.to_path_buf(), source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::update::test_support::names;

    #[test]
    fn removes_only_the_inactive_slots_entries() {
        let esp = tempfile::tempdir().unwrap();
        let dir = esp.path().join(ESP_ENTRIES_DIR);
        fs::create_dir_all(&dir).unwrap();
        for name in ["keel-0.1.0-a.conf", "keel-0.2.0-b+0-3.conf", "keel-0.1.5-b.conf", "other.conf", "x.partial"] {
            fs::write(dir.join(name), "options console=ttyS0 keel.slot=a\n").unwrap();
        }
        let removed = remove_slot_entries(esp.path(), Slot::B).unwrap();
        assert_eq!(removed, ["keel-0.1.5-b.conf", "keel-0.2.0-b+0-3.conf"]);
        assert_eq!(names(&dir), ["keel-0.1.0-a.conf", "other.conf"]);
        let running = running_entry(esp.path(), Slot::A).unwrap();
        assert_eq!(running, RunningEntry { options: "console=ttyS0 keel.slot=a".into(), generation: 0 });
        assert!(matches!(running_entry(esp.path(), Slot::B), Err(EspWriteError::NoRunningEntry { .. })));
        let text = keel_os_image::boot_entry::entry_file_text("0.3.0", Slot::A, "console=ttyS0 keel.slot=a", 4);
        fs::write(dir.join("keel-0.3.0-a.conf"), text).unwrap();
        assert_eq!(running_entry(esp.path(), Slot::A).unwrap().generation, 4);
    }

    #[test]
    fn files_appear_under_their_names_only_when_renamed() {
        let esp = tempfile::tempdir().unwrap();
        let files: [(&str, &[u8]); 2] = [("keel/b/vmlinuz", b"kernel"), ("loader/entries/keel-1-b+3.conf", b"entry")];
        let mut written = PartialFiles::write(esp.path(), &files).unwrap();
        assert_eq!(names(&esp.path().join("keel/b")), ["vmlinuz.partial"]);
        written.rename("keel/b/vmlinuz").unwrap();
        written.sync().unwrap();
        assert_eq!(names(&esp.path().join("keel/b")), ["vmlinuz"]);
        assert_eq!(fs::read(esp.path().join("keel/b/vmlinuz")).unwrap(), b"kernel");
        assert_eq!(names(&esp.path().join("loader/entries")), ["keel-1-b+3.conf.partial"]);
        written.rename("loader/entries/keel-1-b+3.conf").unwrap();
        assert_eq!(fs::read(esp.path().join("loader/entries/keel-1-b+3.conf")).unwrap(), b"entry");
    }
}
