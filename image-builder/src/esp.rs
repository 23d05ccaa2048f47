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
    #[error("mkfs.fat made {image} with {clusters} clusters of {cluster_bytes} bytes: FAT32 needs at least {FAT32_MIN_CLUSTERS}")]
    TooFewClusters { image: PathBuf, clusters: u64, cluster_bytes: u64 },
    #[error("cannot read the boot sector of {image}")]
    BootSector {
        image: PathBuf,
        #[source]
        source: std::io::Error,
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

/// FAT32's fewest clusters: with fewer, the FAT specification (and firmware that follows it) takes a volume for
/// FAT16, whatever its boot sector says.
pub const FAT32_MIN_CLUSTERS: u64 = 65525;

/// The smallest ESP that holds [`FAT32_MIN_CLUSTERS`] clusters of 512 bytes.
pub const MIN_MIB: u64 = 33;

/// From this size up the ESP gets 4 KiB clusters, else 512-byte ones: [`FAT32_MIN_CLUSTERS`] of 4 KiB fit from
/// about 258 MiB, and 260 MiB is the size Microsoft documents for FAT32 ESPs with 4 KiB clusters. (mkfs.fat makes a
/// FAT32 volume with too few clusters without a word; `make` checks.)
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
        .args(["-F", "32", "-s"])
        .arg(sectors_per_cluster(size_mib).to_string())
        .arg("-i")
        .arg(format!("{volume_id:08x}"))
        .arg("-C")
        .arg(image)
        .arg((size_mib * 1024).to_string())
        .env("SOURCE_DATE_EPOCH", epoch)
        .run()
        .map_err(|source| EspError::Mkfs { image: image.into(), source })?;
    let geometry =
        FatGeometry::read(image, 0).map_err(|source| EspError::BootSector { image: image.into(), source })?;
    if geometry.clusters < FAT32_MIN_CLUSTERS {
        let cluster_bytes = geometry.cluster_bytes();
        return Err(EspError::TooFewClusters { image: image.into(), clusters: geometry.clusters, cluster_bytes });
    }

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

/// A FAT volume's geometry, from its boot sector's BPB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FatGeometry {
    pub bytes_per_sector: u64,
    pub sectors_per_cluster: u64,
    /// Data clusters, counted as the FAT specification counts them to tell FAT12, FAT16 and FAT32 apart.
    pub clusters: u64,
}

impl FatGeometry {
    /// The geometry of the FAT32 volume at `offset` in `image` (0 for a volume of its own, a partition's start in a
    /// disk image).
    pub fn read(image: &Path, offset: u64) -> std::io::Result<FatGeometry> {
        use std::os::unix::fs::FileExt;
        let mut boot_sector = [0u8; 512];
        std::fs::File::open(image)?.read_exact_at(&mut boot_sector, offset)?;
        FatGeometry::parse(&boot_sector)
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "not a FAT32 boot sector"))
    }

    /// The geometry a FAT32 boot sector describes; `None` when its numbers do not add up.
    pub fn parse(boot_sector: &[u8; 512]) -> Option<FatGeometry> {
        let u16_at = |at: usize| u64::from(u16::from_le_bytes([boot_sector[at], boot_sector[at + 1]]));
        let u32_at = |at: usize| {
            let bytes = [boot_sector[at], boot_sector[at + 1], boot_sector[at + 2], boot_sector[at + 3]];
            u64::from(u32::from_le_bytes(bytes))
        };
        let (bytes_per_sector, sectors_per_cluster) = (u16_at(11), u64::from(boot_sector[13]));
        let (reserved, fats, total, fat_sectors) = (u16_at(14), u64::from(boot_sector[16]), u32_at(32), u32_at(36));
        let data_sectors = total.checked_sub(reserved)?.checked_sub(fats.checked_mul(fat_sectors)?)?;
        let clusters = data_sectors.checked_div(sectors_per_cluster)?;
        Some(FatGeometry { bytes_per_sector, sectors_per_cluster, clusters })
    }

    pub fn cluster_bytes(&self) -> u64 {
        self.bytes_per_sector * self.sectors_per_cluster
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geometry(size_mib: u64) -> FatGeometry {
        let dir = tempfile::tempdir().unwrap();
        let (image, staging) = (dir.path().join("esp.img"), dir.path().join("staging"));
        std::fs::create_dir(&staging).unwrap();
        make(&image, &staging, size_mib, 0x1234_5678, &[], 0).unwrap();
        FatGeometry::read(&image, 0).unwrap()
    }

    #[test]
    fn small_esps_get_512_byte_clusters_and_from_260_mib_4_kib_ones_always_enough_for_fat32() {
        for (size_mib, cluster_bytes) in [(MIN_MIB, 512), (259, 512), (FOUR_KIB_CLUSTERS_FROM_MIB, 4096), (1024, 4096)]
        {
            let geometry = geometry(size_mib);
            assert_eq!((geometry.bytes_per_sector, geometry.cluster_bytes()), (512, cluster_bytes), "{size_mib} MiB");
            assert!(geometry.clusters >= FAT32_MIN_CLUSTERS, "{size_mib} MiB: {geometry:?}");
        }
    }

    #[test]
    fn a_boot_sector_whose_numbers_do_not_add_up_is_none() {
        assert_eq!(FatGeometry::parse(&[0u8; 512]), None);
    }
}
