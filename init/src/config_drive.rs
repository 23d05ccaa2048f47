//! The config drive: found among the block devices by its label (`cidata` for NoCloud, `config-2` for OpenStack,
//! any case, on FAT or ISO 9660), mounted read-only just long enough to read user-data and meta-data.

use std::fs;
use std::path::{Path, PathBuf};

use keel_config::meta_data::{parse_nocloud, parse_openstack};
use keel_config::MetaData;
use nix::mount::{umount, MsFlags};

use crate::fs_label::{self, LabeledFs};
use crate::mounts::{Mount, MountError};

const MOUNT_POINT: &str = "/run/keel/config-drive";

/// The two layouts cloud-init knows and keel reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriveLayout {
    NoCloud,
    OpenStack,
}

impl DriveLayout {
    fn from_label(label: &str) -> Option<Self> {
        match label.to_ascii_lowercase().as_str() {
            "cidata" => Some(DriveLayout::NoCloud),
            "config-2" => Some(DriveLayout::OpenStack),
            _ => None,
        }
    }

    /// The user-data file, relative to the drive's root; also the name errors are reported under.
    pub fn user_data_path(self) -> &'static str {
        match self {
            DriveLayout::NoCloud => "user-data",
            DriveLayout::OpenStack => "openstack/latest/user_data",
        }
    }

    fn meta_data_path(self) -> &'static str {
        match self {
            DriveLayout::NoCloud => "meta-data",
            DriveLayout::OpenStack => "openstack/latest/meta_data.json",
        }
    }
}

/// What a config drive holds.
#[derive(Debug)]
pub struct ConfigDrive {
    pub device: PathBuf,
    pub layout: DriveLayout,
    /// `None` when the drive has no user-data file.
    pub user_data: Option<String>,
    pub meta_data: MetaData,
}

/// Why a config drive that is there could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigDriveError {
    #[error(transparent)]
    Mount(#[from] MountError),
    #[error("cannot read {path} on {device}: {source}")]
    Read { device: PathBuf, path: String, source: std::io::Error },
}

/// The first block device labelled as a config drive, with its filesystem and layout. The boot disk's own
/// partitions and disks with a partition table are not read: a config drive is a whole-disk filesystem, and
/// every device read costs boot time.
pub fn find() -> Option<(PathBuf, LabeledFs, DriveLayout)> {
    let mut devices: Vec<String> = fs::read_dir("/sys/class/block")
        .ok()?
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| may_be_config_drive(name))
        .collect();
    devices.sort();
    devices.into_iter().find_map(|name| {
        let device = Path::new("/dev").join(&name);
        let (filesystem, label) = fs_label::probe(&device)?;
        DriveLayout::from_label(&label).map(|layout| (device, filesystem, layout))
    })
}

/// Whether a block device may hold a config drive: not a partition of a partitioned disk, not a disk that has
/// partitions.
fn may_be_config_drive(name: &str) -> bool {
    let sys = Path::new("/sys/class/block").join(name);
    let is_partition = sys.join("partition").exists();
    let has_partitions = fs::read_dir(&sys)
        .map(|entries| entries.flatten().any(|entry| entry.path().join("partition").exists()))
        .unwrap_or(false);
    !is_partition && !has_partitions
}

/// Mounts the drive read-only, reads its files and unmounts it again.
pub fn read(device: &Path, filesystem: LabeledFs, layout: DriveLayout) -> Result<ConfigDrive, ConfigDriveError> {
    let source = device.to_string_lossy();
    let flags = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    Mount { source: &source, target: MOUNT_POINT, fstype: filesystem.mount_type(), flags, data: None }.ensure()?;
    let contents = read_files(device, layout);
    if let Err(error) = umount(MOUNT_POINT) {
        log::warn!("cannot unmount the config drive {}: {error}", device.display());
    }
    contents
}

fn read_files(device: &Path, layout: DriveLayout) -> Result<ConfigDrive, ConfigDriveError> {
    let read_optional = |path: &str| match fs::read_to_string(Path::new(MOUNT_POINT).join(path)) {
        Ok(text) => Ok(Some(text)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ConfigDriveError::Read { device: device.to_owned(), path: path.to_owned(), source }),
    };
    let user_data = read_optional(layout.user_data_path())?;
    let meta_data = match read_optional(layout.meta_data_path())? {
        Some(text) => {
            let parsed = match layout {
                DriveLayout::NoCloud => parse_nocloud(&text),
                DriveLayout::OpenStack => parse_openstack(&text),
            };
            parsed.unwrap_or_else(|error| {
                log::error!("config drive {}: {error}; meta-data ignored", device.display());
                MetaData::default()
            })
        }
        None => MetaData::default(),
    };
    Ok(ConfigDrive { device: device.to_owned(), layout, user_data, meta_data })
}
