//! Lists and renames the boot entries on a disk image's ESP with mtools, offline: how tests set up a trial boot
//! and read what PID 1's health gate left behind.

use std::path::Path;
use std::process::Command;

use keel_os_image::layout::{ESP_ENTRIES_DIR, ESP_PARTITION};

use crate::disk::{self, DiskError};

/// The file names in `loader/entries` on the ESP of `image`, sorted.
pub fn entries(image: &Path) -> Result<Vec<String>, DiskError> {
    let target = format!("::/{ESP_ENTRIES_DIR}");
    let listing = mtools(image, "mdir", &["-b", &target])?;
    let mut names: Vec<String> = String::from_utf8_lossy(&listing)
        .lines()
        .filter_map(|line| line.trim().rsplit('/').next().map(str::to_owned))
        .filter(|name| !name.is_empty() && !name.starts_with('.'))
        .collect();
    names.sort();
    Ok(names)
}

/// Renames `from` to `to` in `loader/entries` on the ESP of `image`.
pub fn rename_entry(image: &Path, from: &str, to: &str) -> Result<(), DiskError> {
    let from = format!("::/{ESP_ENTRIES_DIR}/{from}");
    mtools(image, "mren", &[&from, to]).map(drop)
}

/// The text of the entry file `name` in `loader/entries` on the ESP of `image`.
pub fn read_entry(image: &Path, name: &str) -> Result<String, DiskError> {
    let file = format!("::/{ESP_ENTRIES_DIR}/{name}");
    Ok(String::from_utf8_lossy(&mtools(image, "mtype", &[&file])?).into_owned())
}

/// Replaces the entry file `name` in `loader/entries` on the ESP of `image` with `text`.
pub fn write_entry(image: &Path, name: &str, text: &str) -> Result<(), DiskError> {
    let local =
        tempfile::NamedTempFile::new().map_err(|source| DiskError::Spawn { command: "mktemp".into(), source })?;
    std::fs::write(local.path(), text).map_err(|source| DiskError::Spawn { command: "write".into(), source })?;
    let file = format!("::/{ESP_ENTRIES_DIR}/{name}");
    let local_path = local.path().to_string_lossy().into_owned();
    mtools(image, "mcopy", &["-o", &local_path, &file]).map(drop)
}

fn mtools(image: &Path, tool: &str, args: &[&str]) -> Result<Vec<u8>, DiskError> {
    let offset = disk::partition_offset(image, ESP_PARTITION)?;
    let mut command = Command::new(tool);
    // mtools checks a FAT's geometry against a floppy's unless told not to.
    command.env("MTOOLS_SKIP_CHECK", "1").arg("-i").arg(format!("{}@@{offset}", image.display())).args(args);
    let shown = format!("{command:?}").replace('"', "");
    let out = command.output().map_err(|source| DiskError::Spawn { command: shown.clone(), source })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        return Err(DiskError::Failed { command: shown, status: out.status, stderr });
    }
    Ok(out.stdout)
}
