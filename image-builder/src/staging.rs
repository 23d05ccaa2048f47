//! Writes files and directories into a staging tree with exact modes, and sets every timestamp in a tree to the
//! build epoch, so the filesystems made from it do not depend on the umask or the time of the build.

use std::fs::{FileTimes, Permissions};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

#[derive(Debug, thiserror::Error)]
pub enum StagingError {
    #[error("cannot create directory {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}")]
    WriteFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot copy {from} to {to}")]
    CopyFile {
        from: PathBuf,
        to: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot set the mode of {path}")]
    SetMode {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot set the timestamps of {path}")]
    SetTimes {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot list {path}")]
    ListDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Creates `path` and its missing parents (mode 0755), then gives `path` exactly `mode`.
pub fn make_dir(path: &Path, mode: u32) -> Result<(), StagingError> {
    std::fs::create_dir_all(path).map_err(|source| StagingError::CreateDir { path: path.into(), source })?;
    set_mode(path, mode)
}

/// Writes `data` to `path` (creating parents, mode 0755) with exactly `mode`.
pub fn write_file(path: &Path, data: &[u8], mode: u32) -> Result<(), StagingError> {
    make_parent(path)?;
    std::fs::write(path, data).map_err(|source| StagingError::WriteFile { path: path.into(), source })?;
    set_mode(path, mode)
}

/// Copies `from` to `to` (creating parents, mode 0755) with exactly `mode`.
pub fn copy_file(from: &Path, to: &Path, mode: u32) -> Result<(), StagingError> {
    make_parent(to)?;
    std::fs::copy(from, to).map_err(|source| StagingError::CopyFile { from: from.into(), to: to.into(), source })?;
    set_mode(to, mode)
}

fn make_parent(path: &Path) -> Result<(), StagingError> {
    match path.parent() {
        Some(parent) if !parent.is_dir() => {
            std::fs::create_dir_all(parent).map_err(|source| StagingError::CreateDir { path: parent.into(), source })
        }
        _ => Ok(()),
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<(), StagingError> {
    std::fs::set_permissions(path, Permissions::from_mode(mode))
        .map_err(|source| StagingError::SetMode { path: path.into(), source })
}

/// Creates the symbolic link `path` pointing at `target`, and its missing parents.
pub fn make_symlink(target: &str, path: &Path) -> Result<(), StagingError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|source| StagingError::CreateDir { path: parent.into(), source })?;
    }
    std::os::unix::fs::symlink(target, path).map_err(|source| StagingError::WriteFile { path: path.into(), source })
}

/// Sets the access and modification times of `root` and everything below it to `epoch` (children before their
/// directory, since writing into a directory changes its mtime). Symbolic links are not followed.
pub fn set_tree_times(root: &Path, epoch: u64) -> Result<(), StagingError> {
    let time = SystemTime::UNIX_EPOCH + Duration::from_secs(epoch);
    let metadata =
        std::fs::symlink_metadata(root).map_err(|source| StagingError::SetTimes { path: root.into(), source })?;
    if metadata.is_symlink() {
        return Ok(());
    }
    if metadata.is_dir() {
        let list_error = |source| StagingError::ListDir { path: root.into(), source };
        for entry in std::fs::read_dir(root).map_err(list_error)? {
            set_tree_times(&entry.map_err(list_error)?.path(), epoch)?;
        }
    }
    let times = FileTimes::new().set_accessed(time).set_modified(time);
    std::fs::File::open(root)
        .and_then(|file| file.set_times(times))
        .map_err(|source| StagingError::SetTimes { path: root.into(), source })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    #[test]
    fn modes_and_times_are_exact() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a/b/file");
        write_file(&file, b"x", 0o640).unwrap();
        make_dir(&dir.path().join("tmp"), 0o1777).unwrap();
        set_tree_times(dir.path(), 1_000_000).unwrap();
        let metadata = std::fs::metadata(&file).unwrap();
        assert_eq!(metadata.mode() & 0o7777, 0o640);
        assert_eq!(metadata.mtime(), 1_000_000);
        assert_eq!(std::fs::metadata(dir.path().join("a")).unwrap().mtime(), 1_000_000);
        assert_eq!(std::fs::metadata(dir.path().join("tmp")).unwrap().mode() & 0o7777, 0o1777);
    }
}
