//! Leaving the initramfs: free it, move the kernel filesystems into the new root, make it `/`, exec its init.
//!
//! `pivot_root` does not work on the initramfs (it is the rootfs itself), so this is the classic
//! `MS_MOVE` + `chroot` dance that busybox and systemd's switch-root do.

use std::convert::Infallible;
use std::ffi::CString;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};
use nix::unistd::{chdir, chroot, execv};

/// The kernel filesystems that move along into the new root.
const MOVED_MOUNTS: [&str; 3] = ["/dev", "/proc", "/sys"];

/// A step of the switch that failed.
#[derive(Debug, thiserror::Error)]
pub enum SwitchRootError {
    #[error("the new root has no executable {init}")]
    NoInit { init: PathBuf },
    #[error("cannot move {mount} into the new root")]
    MoveMount {
        mount: String,
        #[source]
        errno: nix::Error,
    },
    #[error("cannot make {new_root} the root")]
    MakeRoot {
        new_root: PathBuf,
        #[source]
        errno: nix::Error,
    },
    #[error("cannot execute {init}")]
    Exec {
        init: String,
        #[source]
        errno: nix::Error,
    },
}

/// Switches to `new_root` and executes `init` there; returns only on failure.
pub fn switch_root(new_root: &Path, init: &str) -> Result<Infallible, SwitchRootError> {
    let new_init = new_root.join(init.trim_start_matches('/'));
    let executable = fs::metadata(&new_init).map(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0);
    if !matches!(executable, Ok(true)) {
        return Err(SwitchRootError::NoInit { init: new_init });
    }

    // The initramfs stays in RAM unless its files are deleted before it becomes unreachable.
    let root_device = fs::metadata("/").map(|meta| meta.dev()).ok();
    if let Some(device) = root_device {
        remove_same_device(Path::new("/"), device);
    }

    log::debug!("{}ms initramfs freed", crate::timeline::uptime_ms());
    for mount_point in MOVED_MOUNTS {
        let target = new_root.join(mount_point.trim_start_matches('/'));
        mount(Some(mount_point), &target, None::<&str>, MsFlags::MS_MOVE, None::<&str>)
            .map_err(|errno| SwitchRootError::MoveMount { mount: mount_point.to_owned(), errno })?;
    }
    let make_root = |errno| SwitchRootError::MakeRoot { new_root: new_root.to_owned(), errno };
    chdir(new_root).map_err(make_root)?;
    mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>).map_err(make_root)?;
    chroot(".").map_err(make_root)?;
    chdir("/").map_err(make_root)?;

    log::debug!("{}ms exec {init}", crate::timeline::uptime_ms());
    // The console's writer thread ends with the exec: what stage 1 logged must be out first.
    crate::logger::flush_console();
    let exec_error = |errno| SwitchRootError::Exec { init: init.to_owned(), errno };
    let path = CString::new(init).map_err(|_| exec_error(nix::Error::EINVAL))?;
    let errno = match execv(&path, &[&path]) {
        Err(errno) => errno,
        Ok(never) => match never {},
    };
    Err(exec_error(errno))
}

/// Deletes everything below `directory` that lives on `device`, without crossing into other mounts.
fn remove_same_device(directory: &Path, device: u64) {
    let Ok(entries) = fs::read_dir(directory) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = fs::symlink_metadata(&path) else { continue };
        if meta.dev() != device {
            continue;
        }
        if meta.is_dir() {
            remove_same_device(&path, device);
            // Mount points (/newroot, /proc, …) are on another device inside but are directories here; keeping
            // an empty directory costs nothing.
            let _ = fs::remove_dir(&path);
        } else {
            let _ = fs::remove_file(&path);
        }
    }
}
