//! Named volumes: `<volumes>/<name>`, created on first use and, like Docker, filled from the image at the target.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{lchown, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::sys;

/// What failed while preparing a named volume.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("volume {volume}: creating {path}")]
    Create {
        volume: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("volume {volume}: mounting the image's layers at {path} to copy from: errno {errno}")]
    MountImage { volume: String, path: PathBuf, errno: i32 },
    #[error("volume {volume}: copying the image's {target} into it")]
    Populate {
        volume: String,
        target: String,
        #[source]
        source: io::Error,
    },
}

/// Makes sure volume `name` exists under `volumes_dir`; a new (empty) one gets a copy of what the image has at
/// `target`, read through a temporary read-only overlay of `layer_dirs` mounted at `scratch`.
pub fn ensure_named_volume(
    volumes_dir: &Path,
    name: &str,
    target: &str,
    layer_dirs_lowest_first: &[PathBuf],
    scratch: &Path,
) -> Result<PathBuf, VolumeError> {
    let path = volumes_dir.join(name);
    let create_error = |path: &Path, source| VolumeError::Create { volume: name.to_owned(), path: path.into(), source };
    let is_empty = match fs::read_dir(&path) {
        Ok(mut entries) => entries.next().is_none(),
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(&path).map_err(|source| create_error(&path, source))?;
            true
        }
        Err(source) => return Err(create_error(&path, source)),
    };
    if is_empty && !layer_dirs_lowest_first.is_empty() {
        populate(name, &path, target, layer_dirs_lowest_first, scratch)?;
    }
    Ok(path)
}

fn populate(
    name: &str,
    volume: &Path,
    target: &str,
    layer_dirs: &[PathBuf],
    scratch: &Path,
) -> Result<(), VolumeError> {
    let populate_error = |source| VolumeError::Populate { volume: name.to_owned(), target: target.to_owned(), source };
    if let [only] = layer_dirs {
        // One layer is its own merged view (overlayfs wants two lower layers for a mount without upper).
        return copy_from(only, target, volume).map_err(populate_error);
    }
    fs::create_dir_all(scratch).map_err(|source| VolumeError::Create {
        volume: name.to_owned(),
        path: scratch.into(),
        source,
    })?;
    // Absolute lowerdirs: the supervisor is multi-threaded and cannot chdir to shorten them; this mount is rare
    // (first use of a volume) and a failure only costs the copy.
    let lower: Vec<String> = layer_dirs.iter().rev().map(|dir| dir.display().to_string()).collect();
    let options = format!("lowerdir={}", lower.join(":"));
    let mount_error = |errno| VolumeError::MountImage { volume: name.to_owned(), path: scratch.into(), errno };
    let (Ok(options), Ok(scratch_c)) = (CString::new(options), CString::new(scratch.as_os_str().as_encoded_bytes()))
    else {
        return Err(mount_error(libc::EINVAL));
    };
    sys::mount(Some(c"overlay"), &scratch_c, Some(c"overlay"), libc::MS_RDONLY, Some(&options)).map_err(mount_error)?;
    let result = copy_from(scratch, target, volume);
    let _ = sys::umount_detach(&scratch_c);
    let _ = fs::remove_dir(scratch);
    result.map_err(populate_error)
}

/// Copies the directory the image has at `target` (if it is one) into `volume`, taking its mode and owner too.
/// `target` is resolved inside `image_root` (the image's merged view): an image symlink on the way, such as
/// `srv -> /var/lib/keel`, is followed within the image and can never lead the copy to the host's files.
fn copy_from(image_root: &Path, target: &str, volume: &Path) -> io::Result<()> {
    let root = fs::File::open(image_root)?;
    let Ok(relative) = CString::new(target.trim_start_matches('/')) else {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    };
    let relative = if relative.as_bytes().is_empty() { c".".to_owned() } else { relative };
    let flags = libc::O_PATH | libc::O_DIRECTORY;
    let source = match sys::openat2(root.as_raw_fd(), &relative, flags, 0, sys::RESOLVE_IMAGE_PATH) {
        // SAFETY: openat2 returned a new descriptor that nothing else owns.
        Ok(fd) => unsafe { OwnedFd::from_raw_fd(fd) },
        // Nothing (or no directory) there: the volume starts empty, as with Docker.
        Err(libc::ENOENT | libc::ENOTDIR) => return Ok(()),
        Err(errno) => return Err(io::Error::from_raw_os_error(errno)),
    };
    // Below the resolved directory the copy follows no symlink (it recreates them), so walking it by the fd's
    // path is as confined as the fd itself.
    let source_path = PathBuf::from(format!("/proc/self/fd/{}", source.as_raw_fd()));
    let meta = fs::metadata(&source_path)?;
    copy_tree(&source_path, volume)?;
    copy_attributes(&meta, volume)
}

/// Copies directories, regular files and symlinks with their modes and owners; other node types are skipped.
fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        let destination = to.join(entry.file_name());
        let kind = meta.file_type();
        if kind.is_dir() {
            fs::create_dir(&destination)?;
            copy_tree(&entry.path(), &destination)?;
        } else if kind.is_file() {
            fs::copy(entry.path(), &destination)?;
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(entry.path())?, &destination)?;
        } else {
            continue;
        }
        copy_attributes(&meta, &destination)?;
    }
    Ok(())
}

fn copy_attributes(meta: &fs::Metadata, path: &Path) -> io::Result<()> {
    lchown(path, Some(meta.uid()), Some(meta.gid()))?;
    if !meta.file_type().is_symlink() {
        fs::set_permissions(path, fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    }
    Ok(())
}
