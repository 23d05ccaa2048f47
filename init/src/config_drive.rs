//! The config drive: found among the block devices by its label (`cidata` for NoCloud, `config-2` for OpenStack,
//! any case, on FAT or ISO 9660), mounted read-only just long enough to read user-data and meta-data.

use std::path::{Path, PathBuf};

use keel_config::bounded_file::{read_text_file_bounded, BoundedReadError, MAX_OUTSIDE_FILE};
use keel_config::meta_data::{parse_nocloud, parse_openstack};
use keel_config::MetaData;
use nix::mount::{umount, MsFlags};

use keel_logs::error_chain;
use keel_os_image::{layout, Slot};

use crate::block::{self, BlockDevice};
use crate::boot_disk;
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
    #[error("cannot read {path} on {device}")]
    Read {
        device: PathBuf,
        path: String,
        #[source]
        source: BoundedReadError,
    },
}

/// The first block device labelled as a config drive, with its filesystem and layout.
///
/// Like cloud-init's NoCloud, the label is looked for on whole disks and on partitions. Every probe is a device
/// read before `ready`, so the boot disk (the disk the root filesystem is on, found from sysfs without any read) is
/// skipped, and so are keel's own partitions; partitions of the boot disk that keel did not make come last, after
/// every other disk: a drive attached for the purpose wins over a seed partition left on the boot disk.
pub fn find() -> Option<(PathBuf, LabeledFs, DriveLayout)> {
    let devices = block::list_devices();
    let boot_disk = boot_disk::root_filesystem_disk();
    candidates(&devices, boot_disk.as_deref()).into_iter().find_map(|name| {
        let device = Path::new("/dev").join(name);
        let (filesystem, label) = fs_label::probe(&device)?;
        DriveLayout::from_label(&label).map(|layout| (device, filesystem, layout))
    })
}

/// The devices worth probing, in the order to probe them. Without a known boot disk, every disk holding a partition
/// with one of keel's names counts as one.
fn candidates<'d>(devices: &'d [BlockDevice], boot_disk: Option<&'d str>) -> Vec<&'d str> {
    let is_keel_partition = |device: &BlockDevice| device.partition_name.as_deref().is_some_and(is_keel_partition_name);
    let boot_disks: Vec<&str> = match boot_disk {
        Some(disk) => vec![disk],
        None => devices.iter().filter(|d| is_keel_partition(d)).filter_map(|d| d.disk.as_deref()).collect(),
    };
    let on_boot_disk = |device: &BlockDevice| {
        boot_disks.contains(&device.name.as_str())
            || device.disk.as_deref().is_some_and(|disk| boot_disks.contains(&disk))
    };
    let mut elsewhere: Vec<&str> =
        devices.iter().filter(|device| !on_boot_disk(device)).map(|device| device.name.as_str()).collect();
    let mut boot_disk_extras: Vec<&str> = devices
        .iter()
        .filter(|device| device.disk.is_some() && on_boot_disk(device) && !is_keel_partition(device))
        .map(|device| device.name.as_str())
        .collect();
    elsewhere.sort_unstable();
    boot_disk_extras.sort_unstable();
    elsewhere.extend(boot_disk_extras);
    elsewhere
}

/// Whether a GPT partition name is one keel-build gives: the ESP, a root slot or the data partition.
fn is_keel_partition_name(name: &str) -> bool {
    name == layout::ESP_PARTITION
        || name == layout::DATA_PARTITION
        || Slot::ALL.iter().any(|slot| name == layout::root_partition_name(*slot))
}

/// Mounts the drive read-only, reads its files and unmounts it again.
pub fn read(device: &Path, filesystem: LabeledFs, layout: DriveLayout) -> Result<ConfigDrive, ConfigDriveError> {
    let source = device.to_string_lossy();
    let flags = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    Mount { source: &source, target: MOUNT_POINT, fstype: filesystem.mount_type(), flags, data: None }.ensure()?;
    let contents = read_files(device, layout);
    if let Err(error) = umount(MOUNT_POINT) {
        log::warn!("cannot unmount the config drive {}: {}", device.display(), error_chain(&error));
    }
    contents
}

fn read_files(device: &Path, layout: DriveLayout) -> Result<ConfigDrive, ConfigDriveError> {
    read_files_in(Path::new(MOUNT_POINT), device, layout)
}

/// Reads the drive's files from where it is mounted, `mounted`. Whoever made the drive chose their sizes: each is
/// read only as a regular file of at most [`MAX_OUTSIDE_FILE`] bytes.
fn read_files_in(mounted: &Path, device: &Path, layout: DriveLayout) -> Result<ConfigDrive, ConfigDriveError> {
    let read_optional = |path: &str| match read_text_file_bounded(&mounted.join(path), MAX_OUTSIDE_FILE) {
        Ok(text) => Ok(Some(text)),
        Err(error) if error.is_not_found() => Ok(None),
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
                log::error!("config drive {}: {}; meta-data ignored", device.display(), error_chain(&error));
                MetaData::default()
            })
        }
        None => MetaData::default(),
    };
    Ok(ConfigDrive { device: device.to_owned(), layout, user_data, meta_data })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_1_gib_user_data_is_refused_naming_the_file() {
        let mounted = tempfile::tempdir().unwrap();
        let user_data = std::fs::File::create(mounted.path().join("user-data")).unwrap();
        // Sparse: a drive costs its maker nothing to claim 1 GiB.
        user_data.set_len(1 << 30).unwrap();
        std::fs::write(mounted.path().join("meta-data"), "instance-id: i-1\n").unwrap();
        let error = read_files_in(mounted.path(), Path::new("/dev/vdb"), DriveLayout::NoCloud)
            .expect_err("a 1 GiB user-data must be refused");
        let message = keel_logs::error_chain(&error);
        assert!(message.contains("user-data on /dev/vdb"), "{message}");
        assert!(message.contains("user-data is larger than 1048576 bytes"), "{message}");
        // What a drive made by hand may hold instead of a file is refused as well.
        std::fs::remove_file(mounted.path().join("user-data")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", mounted.path().join("user-data")).unwrap();
        let error = read_files_in(mounted.path(), Path::new("/dev/vdb"), DriveLayout::NoCloud).unwrap_err();
        assert!(keel_logs::error_chain(&error).contains("is not a regular file"), "{error:?}");
    }

    fn device(name: &str, disk: Option<&str>, partition_name: Option<&str>) -> BlockDevice {
        BlockDevice {
            name: name.to_owned(),
            disk: disk.map(str::to_owned),
            partition_name: partition_name.map(str::to_owned),
        }
    }

    #[test]
    fn skips_the_boot_disk_and_finds_partitions_elsewhere_first() {
        let devices = [
            device("vda", None, None),
            device("vda1", Some("vda"), Some("esp")),
            device("vda2", Some("vda"), Some("keel-root-a")),
            device("vda3", Some("vda"), Some("keel-root-b")),
            device("vda4", Some("vda"), Some("keel-data")),
            device("vda5", Some("vda"), Some("seed")),
            device("vdc", None, None),
            device("vdb", None, None),
            device("vdb1", Some("vdb"), None),
            device("vdb2", Some("vdb"), Some("cidata")),
        ];
        assert_eq!(candidates(&devices, Some("vda")), ["vdb", "vdb1", "vdb2", "vdc", "vda5"]);
        assert_eq!(candidates(&devices, None), ["vdb", "vdb1", "vdb2", "vdc", "vda5"]);
    }

    #[test]
    fn a_disk_with_keel_partition_names_is_not_the_boot_disk() {
        // vda is a tenant's disk carrying a partition named keel-data; the boot disk is vdb.
        let devices = [
            device("vda", None, None),
            device("vda1", Some("vda"), Some("keel-data")),
            device("vda2", Some("vda"), Some("cidata")),
            device("vdb", None, None),
            device("vdb1", Some("vdb"), Some("esp")),
            device("vdb2", Some("vdb"), Some("keel-root-a")),
            device("vdb5", Some("vdb"), Some("seed")),
        ];
        assert_eq!(candidates(&devices, Some("vdb")), ["vda", "vda1", "vda2", "vdb5"]);
    }

    #[test]
    fn without_a_keel_disk_every_device_is_a_candidate() {
        let devices = [device("sr0", None, None), device("vda", None, None), device("vda1", Some("vda"), None)];
        assert_eq!(candidates(&devices, None), ["sr0", "vda", "vda1"]);
    }
}
