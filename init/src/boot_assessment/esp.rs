//! Renames the booted entry's file on the ESP: mounts the boot disk's ESP read-write for the rename alone, syncs the
//! directory and unmounts it again, so that a power cut at any other moment finds it clean.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use keel_logs::error_chain;
use keel_os_image::boot_entry::BootEntryName;
use keel_os_image::layout::{ESP_ENTRIES_DIR, ESP_PARTITION};
use nix::mount::{umount, umount2, MntFlags, MsFlags};

use crate::block::{wait_for_partition, PartitionError, Scope};
use crate::boot_disk;
use crate::mounts::{Mount, MountError};

/// Where the ESP is mounted for the rename.
const ESP_MOUNT_POINT: &str = "/run/keel/esp";
/// The ESP is on the boot disk, which is long there.
const ESP_WAIT: Duration = Duration::from_secs(2);
/// At most this many files are looked at in the entries directory: a handful are keel's.
const MAX_ENTRIES: usize = 256;

/// Why the entry could not be renamed.
#[derive(Debug, thiserror::Error)]
pub enum EspError {
    #[error("cannot tell the boot disk: the root filesystem is not on a partition")]
    NoBootDisk,
    #[error("cannot find the ESP")]
    Partition(#[source] PartitionError),
    #[error("cannot mount the ESP")]
    Mount(#[source] MountError),
    #[error("cannot read {}", path.display())]
    ReadEntries {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("no file in {} on the ESP is entry {entry} with a boot counter", ESP_ENTRIES_DIR)]
    EntryNotFound { entry: String },
    #[error("cannot rename {from} to {to} in {} on the ESP", ESP_ENTRIES_DIR)]
    Rename {
        from: String,
        to: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot sync {} on the ESP", ESP_ENTRIES_DIR)]
    Sync(#[source] io::Error),
}

/// Renames the counted file of `entry` (whatever its counter says now) to the name `rename` gives it; returns
/// the old and the new file name.
pub fn rename_entry(
    entry: &BootEntryName,
    rename: impl Fn(&BootEntryName) -> BootEntryName,
) -> Result<(String, String), EspError> {
    let disk = boot_disk::root_filesystem_disk().ok_or(EspError::NoBootDisk)?;
    let device = wait_for_partition(ESP_PARTITION, Scope::Disk(&disk), ESP_WAIT).map_err(EspError::Partition)?;
    let device = device.to_string_lossy().into_owned();
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC | MsFlags::MS_NOATIME;
    // FAT with the kernel's default codepage and iocharset, which stage 1 loaded for the config drive.
    let esp = Mount { source: &device, target: ESP_MOUNT_POINT, fstype: "vfat", flags, data: None };
    esp.ensure().map_err(EspError::Mount)?;
    let renamed = rename_in(&Path::new(ESP_MOUNT_POINT).join(ESP_ENTRIES_DIR), entry, rename);
    if let Err(error) = umount(ESP_MOUNT_POINT) {
        // The rename is synced already; a lazy unmount keeps the next mount from failing.
        log::warn!("cannot unmount the ESP: {}", error_chain(&error));
        let _ = umount2(ESP_MOUNT_POINT, MntFlags::MNT_DETACH);
    }
    renamed
}

/// The rename inside the mounted entries directory `dir`.
fn rename_in(
    dir: &Path,
    entry: &BootEntryName,
    rename: impl Fn(&BootEntryName) -> BootEntryName,
) -> Result<(String, String), EspError> {
    let read_error = |source| EspError::ReadEntries { path: dir.to_path_buf(), source };
    let mut current = None;
    for file in fs::read_dir(dir).map_err(read_error)?.take(MAX_ENTRIES) {
        let name = file.map_err(read_error)?.file_name().to_string_lossy().into_owned();
        match name.parse::<BootEntryName>() {
            Ok(parsed) if parsed.counter.is_some() && parsed.is_same_entry(entry) => current = Some((name, parsed)),
            _ => {}
        }
    }
    let (from, parsed) = current.ok_or_else(|| EspError::EntryNotFound { entry: entry.blessed().to_string() })?;
    let to = rename(&parsed).to_string();
    if to != from {
        fs::rename(dir.join(&from), dir.join(&to)).map_err(|source| EspError::Rename {
            from: from.clone(),
            to: to.clone(),
            source,
        })?;
    }
    File::open(dir).and_then(|directory| directory.sync_all()).map_err(EspError::Sync)?;
    Ok((from, to))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renames_the_counted_file_of_the_entry_only() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["keel-0.1.0-a.conf", "keel-0.2.0-b+2-1.conf", "loader.conf"] {
            fs::write(dir.path().join(name), name).unwrap();
        }
        let selected: BootEntryName = "keel-0.2.0-b+3.conf".parse().unwrap();
        let (from, to) = rename_in(dir.path(), &selected, BootEntryName::marked_bad).unwrap();
        assert_eq!((from.as_str(), to.as_str()), ("keel-0.2.0-b+2-1.conf", "keel-0.2.0-b+0-1.conf"));
        let mut names: Vec<String> =
            fs::read_dir(dir.path()).unwrap().map(|file| file.unwrap().file_name().to_string_lossy().into()).collect();
        names.sort();
        assert_eq!(names, ["keel-0.1.0-a.conf", "keel-0.2.0-b+0-1.conf", "loader.conf"]);
        assert_eq!(fs::read_to_string(dir.path().join("keel-0.2.0-b+0-1.conf")).unwrap(), "keel-0.2.0-b+2-1.conf");

        // The blessed fallback entry has no counter: it is never the one renamed.
        let other: BootEntryName = "keel-0.1.0-a+3.conf".parse().unwrap();
        let error = rename_in(dir.path(), &other, BootEntryName::blessed).unwrap_err();
        assert!(matches!(error, EspError::EntryNotFound { .. }), "{error:?}");
    }
}
