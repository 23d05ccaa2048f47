//! Mounting: the helper every stage uses, mount-point detection, and the early kernel filesystems.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};

/// A mount that failed, naming what and where.
#[derive(Debug, thiserror::Error)]
#[error("cannot mount {fstype} {source_name} on {target}")]
pub struct MountError {
    pub fstype: String,
    pub source_name: String,
    pub target: PathBuf,
    #[source]
    pub errno: nix::Error,
}

/// One filesystem to mount.
pub struct Mount<'a> {
    pub source: &'a str,
    pub target: &'a str,
    pub fstype: &'a str,
    pub flags: MsFlags,
    pub data: Option<&'a str>,
}

impl Mount<'_> {
    /// Mounts it unless something is already mounted there, creating the mount point where the filesystem is
    /// writable (the initramfs; a read-only root must ship its mount points).
    pub fn ensure(&self) -> Result<(), MountError> {
        let target = Path::new(self.target);
        if is_mount_point(target) {
            return Ok(());
        }
        // A read-only root makes this fail; mount then reports the missing directory precisely.
        let _ = fs::create_dir_all(target);
        mount(Some(self.source), target, Some(self.fstype), self.flags, self.data).map_err(|errno| MountError {
            fstype: self.fstype.to_owned(),
            source_name: self.source.to_owned(),
            target: target.to_owned(),
            errno,
        })
    }
}

/// Whether `path` is the root of a mount: its device differs from its parent's. `/` always is.
pub fn is_mount_point(path: &Path) -> bool {
    let Some(parent) = path.parent() else { return true };
    match (fs::symlink_metadata(path), fs::metadata(parent)) {
        (Ok(own), Ok(parent)) => own.dev() != parent.dev() || own.ino() == parent.ino(),
        _ => false,
    }
}

const NOSUID_NODEV_NOEXEC: MsFlags = MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV).union(MsFlags::MS_NOEXEC);

/// `/proc`, `/sys` and `/dev`: what every stage needs before anything else. Stage 2 finds them already moved in.
pub fn mount_kernel_filesystems() -> Result<(), MountError> {
    Mount { source: "proc", target: "/proc", fstype: "proc", flags: NOSUID_NODEV_NOEXEC, data: None }.ensure()?;
    Mount { source: "sysfs", target: "/sys", fstype: "sysfs", flags: NOSUID_NODEV_NOEXEC, data: None }.ensure()?;
    // The kernel has DEVTMPFS but not DEVTMPFS_MOUNT: mounting it is ours to do.
    Mount { source: "devtmpfs", target: "/dev", fstype: "devtmpfs", flags: MsFlags::MS_NOSUID, data: Some("mode=0755") }
        .ensure()
}

/// `/run` and `/tmp` as tmpfs, and `/dev/pts` and `/dev/shm`, for the real root.
pub fn mount_runtime_filesystems() -> Result<(), MountError> {
    let nosuid_nodev = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    Mount { source: "tmpfs", target: "/run", fstype: "tmpfs", flags: nosuid_nodev, data: Some("mode=0755") }
        .ensure()?;
    Mount { source: "tmpfs", target: "/tmp", fstype: "tmpfs", flags: nosuid_nodev, data: Some("mode=1777") }
        .ensure()?;
    let devpts_flags = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC;
    Mount {
        source: "devpts",
        target: "/dev/pts",
        fstype: "devpts",
        flags: devpts_flags,
        data: Some("mode=0620,ptmxmode=0666"),
    }
    .ensure()?;
    Mount { source: "tmpfs", target: "/dev/shm", fstype: "tmpfs", flags: nosuid_nodev, data: Some("mode=1777") }
        .ensure()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_mount_points() {
        assert!(is_mount_point(Path::new("/")));
        assert!(is_mount_point(Path::new("/proc")));
        let dir = std::env::temp_dir().join(format!("keel-mount-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        assert!(!is_mount_point(&dir));
        fs::remove_dir(&dir).unwrap();
    }
}
