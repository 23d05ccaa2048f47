//! Makes the EFI system partition image: FAT32 with systemd-boot, its loader.conf, the slot's Type #1 boot entry,
//! kernel and initramfs, written with mtools (no mount, no root) and reproducible timestamps.

use std::path::{Path, PathBuf};

use crate::command::{CommandError, Tool};
use crate::staging::{self, StagingError};

#[derive(Debug, thiserror::Error)]
pub enum EspError {
    #[error("staging the ESP files in {dir} failed")]
    Stage {
        dir: PathBuf,
        #[source]
        source: StagingError,
    },
    #[error("making the FAT filesystem {image} failed")]
    Mkfs {
        image: PathBuf,
        #[source]
        source: CommandError,
    },
    #[error("creating the ESP directories in {image} failed")]
    MakeDirs {
        image: PathBuf,
        #[source]
        source: CommandError,
    },
    #[error("copying {path} onto the ESP {image} failed")]
    Copy {
        image: PathBuf,
        path: String,
        #[source]
        source: CommandError,
    },
}

/// Where an ESP file's bytes come from.
pub enum EspSource<'a> {
    File(&'a Path),
    Bytes(Vec<u8>),
}

/// One file on the ESP, at a path like `EFI/BOOT/BOOTX64.EFI`.
pub struct EspFile<'a> {
    pub path: String,
    pub source: EspSource<'a>,
}

/// The smallest ESP that holds 65,525 clusters of 512 bytes, FAT32's minimum.
pub const MIN_MIB: u64 = 33;

/// From this size up the ESP gets 4 KiB clusters, else 512-byte ones. FAT32 needs at least 65,525 clusters: with
/// fewer, firmware that counts them (as the FAT specification says to) reads the volume as FAT16, and mkfs.fat
/// makes such a volume without a word. 4 KiB clusters have enough from about 258 MiB; 260 MiB is the size
/// Microsoft documents for FAT32 ESPs with 4 KiB clusters.
pub const FOUR_KIB_CLUSTERS_FROM_MIB: u64 = 260;

/// Sectors of 512 bytes per cluster for an ESP of `size_mib`. A file written during an update takes one cluster
/// allocation per 4 KiB page rather than eight: under TCG that halved the ESP's part of an install.
fn sectors_per_cluster(size_mib: u64) -> u32 {
    if size_mib >= FOUR_KIB_CLUSTERS_FROM_MIB {
        8
    } else {
        1
    }
}

/// Writes the FAT32 image `image` of `size_mib` MiB holding `files`; `staging` is an empty scratch directory.
pub fn make(
    image: &Path,
    staging: &Path,
    size_mib: u64,
    volume_id: u32,
    files: &[EspFile],
    epoch: u64,
) -> Result<(), EspError> {
    stage(staging, files, epoch).map_err(|source| EspError::Stage { dir: staging.into(), source })?;
    // No `-n` label: mkfs.fat stamps the label's directory entry with the current time.
    Tool::new("mkfs.fat")
        .args(["-F", "32", "-S", "4096", "-s", "1", "-i"])
        .arg(format!("{volume_id:08x}"))
        .arg("-C")
        .arg(image)
        .arg((size_mib * 1024).to_string())
        .env("SOURCE_DATE_EPOCH", epoch)
        .run()
        .map_err(|source| EspError::Mkfs { image: image.into(), source })?;

    let mut dirs: Vec<String> = Vec::new();
    for file in files {
        let mut prefix = String::new();
        for part in file.path.split('/').rev().skip(1).collect::<Vec<_>>().into_iter().rev() {
            prefix = if prefix.is_empty() { part.to_owned() } else { format!("{prefix}/{part}") };
            if !dirs.contains(&prefix) {
                dirs.push(prefix.clone());
            }
        }
    }
    dirs.sort();
    let mtools_image = image.as_os_str();
    if !dirs.is_empty() {
        Tool::new("mmd")
            .arg("-i")
            .arg(mtools_image)
            .args(dirs.iter().map(|dir| format!("::{dir}")))
            .env("SOURCE_DATE_EPOCH", epoch)
            .run()
            .map_err(|source| EspError::MakeDirs { image: image.into(), source })?;
    }
    for file in files {
        // `-m` keeps the staged file's mtime (the epoch); SOURCE_DATE_EPOCH covers the rest of mtools' stamps.
        Tool::new("mcopy")
            .args(["-m", "-i"])
            .arg(mtools_image)
            .arg(staging.join(&file.path))
            .arg(format!("::{}", file.path))
            .env("SOURCE_DATE_EPOCH", epoch)
            .run()
            .map_err(|source| EspError::Copy { image: image.into(), path: file.path.clone(), source })?;
    }
    Ok(())
}

fn stage(staging: &Path, files: &[EspFile], epoch: u64) -> Result<(), StagingError> {
    for file in files {
        let target = staging.join(&file.path);
        match &file.source {
            EspSource::File(source) => staging::copy_file(source, &target, 0o644)?,
            EspSource::Bytes(bytes) => staging::write_file(&target, bytes, 0o644)?,
        }
    }
    staging::set_tree_times(staging, epoch)
}

/// systemd-boot's `loader/loader.conf`: boot the first keel entry at once, no editor, keep the console mode.
pub fn loader_conf() -> String {
    "timeout 0\ndefault keel-*\neditor no\nconsole-mode keep\n".to_owned()
}
