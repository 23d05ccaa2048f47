//! Paths that come from an image, created and mounted on from the cloned child inside the container's root.
//!
//! After `pivot_root` an image's absolute symlinks resolve inside the container, but the host's root is still
//! reachable under [`HOST_ROOT`](super::child::HOST_ROOT) until it is detached (bind sources need it). Every directory a step creates or
//! mounts on is therefore opened with `openat2` from the root's fd and checked not to lie in the host's tree;
//! once the container's `/proc` is there, mounts go through `/proc/self/fd/N` of the checked fd. Nothing here
//! allocates: the child runs it after `clone`.

use std::cell::Cell;
use std::ffi::CStr;
use std::os::fd::RawFd;

use super::sys;

/// The container's root after `pivot_root`, to create image-steered paths in.
pub(crate) struct ContainerRoot {
    /// `O_PATH` fd of `/`; paths are resolved from it with [`sys::RESOLVE_IMAGE_PATH`].
    pub(crate) fd: RawFd,
    /// `(st_dev, st_ino)` of the host's root at HOST_ROOT.
    host: (u64, u64),
    /// The container's `/proc` is mounted: mount targets are then given as `/proc/self/fd/N` of the checked fd,
    /// so that nothing (a container sharing a volume) can swap a path component between the check and the mount.
    pub(crate) proc_ready: Cell<bool>,
}

impl ContainerRoot {
    pub(crate) fn open() -> sys::SysResult<ContainerRoot> {
        let host = sys::open(c"/.keel-host", libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC, 0)?;
        let identity = sys::fstat(host);
        sys::close(host);
        let (dev, ino, _) = identity?;
        let fd = sys::open(c"/", libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC, 0)?;
        Ok(ContainerRoot { fd, host: (dev, ino), proc_ready: Cell::new(false) })
    }

    /// Opens directory `path` resolved inside the root and refuses (EXDEV) one in the host's tree: an image
    /// symlink such as `/etc -> /.keel-host/…` is followed in the root, where it still names the host.
    fn open_dir(&self, path: &CStr) -> sys::SysResult<RawFd> {
        let dir = sys::openat2(self.fd, path, libc::O_PATH | libc::O_DIRECTORY, 0, sys::RESOLVE_IMAGE_PATH)?;
        match self.refuse_host(dir) {
            Ok(()) => Ok(dir),
            Err(errno) => {
                sys::close(dir);
                Err(errno)
            }
        }
    }

    /// Walks `..` from `dir` up to the root (where `..` stays put): passing the host's root means `dir` is in the
    /// host's tree. `..` crosses from a mount's root to its mount point, so the host's submounts are caught too.
    fn refuse_host(&self, dir: RawFd) -> sys::SysResult {
        let mut current = sys::openat(dir, c".", libc::O_PATH | libc::O_DIRECTORY, 0)?;
        loop {
            let checked = sys::fstat(current).and_then(|(dev, ino, _)| {
                if (dev, ino) == self.host {
                    return Err(libc::EXDEV);
                }
                let parent = sys::openat(current, c"..", libc::O_PATH | libc::O_DIRECTORY, 0)?;
                match sys::fstat(parent) {
                    Ok((parent_dev, parent_ino, _)) if (parent_dev, parent_ino) == (dev, ino) => {
                        sys::close(parent);
                        Ok(None)
                    }
                    Ok(_) => Ok(Some(parent)),
                    Err(errno) => {
                        sys::close(parent);
                        Err(errno)
                    }
                }
            });
            sys::close(current);
            match checked {
                Ok(Some(parent)) => current = parent,
                Ok(None) => return Ok(()),
                Err(errno) => return Err(errno),
            }
        }
    }

    /// `mkdir -p`'s one step: the parent is resolved in the root, the last component is made there, and what
    /// the path then names (an existing symlink is followed, in the root) must be a directory outside the host.
    pub(crate) fn mkdir(&self, path: &CStr, mode: u32) -> sys::SysResult {
        let mut buffer = [0u8; libc::PATH_MAX as usize];
        let (parent, name) = split_path(path, &mut buffer)?;
        if !name.is_empty() {
            let dir = self.open_dir(parent)?;
            let made = sys::mkdirat(dir, name, mode);
            sys::close(dir);
            made?;
        }
        let made = self.open_dir(path)?;
        sys::close(made);
        Ok(())
    }

    /// An empty file to bind onto, in a parent resolved in the root; an existing symlink is refused (ELOOP).
    pub(crate) fn touch(&self, path: &CStr) -> sys::SysResult {
        let mut buffer = [0u8; libc::PATH_MAX as usize];
        let (parent, name) = split_path(path, &mut buffer)?;
        let dir = self.open_dir(parent)?;
        let file = sys::openat(dir, name, libc::O_CREAT | libc::O_WRONLY | libc::O_NOFOLLOW, 0o644);
        sys::close(dir);
        sys::close(file?);
        Ok(())
    }
}

impl ContainerRoot {
    /// Runs `mount` on target `path`, resolved in the root and checked not to be in the host's tree; once `/proc`
    /// is there, through the fd itself. The first target, `/proc`, is made by the steps just before with nothing
    /// else mounted yet, so naming it by path cannot be raced.
    pub(crate) fn at_target(&self, path: &CStr, mount: impl FnOnce(&CStr) -> sys::SysResult) -> sys::SysResult {
        if !self.proc_ready.get() {
            let checked = self.open_target(path)?;
            sys::close(checked);
            return mount(path);
        }
        let target = self.open_target(path)?;
        let mut buffer = [0u8; 32];
        let result = fd_path(target, &mut buffer).and_then(mount);
        sys::close(target);
        result
    }

    /// An `O_PATH` fd of mount target `path`: a directory resolved in the root (symlinks followed there) outside the
    /// host's tree, or a file that is no symlink in such a directory.
    fn open_target(&self, path: &CStr) -> sys::SysResult<RawFd> {
        let resolved = sys::openat2(self.fd, path, libc::O_PATH, 0, sys::RESOLVE_IMAGE_PATH)?;
        let mode = sys::fstat(resolved).map(|(_, _, mode)| mode & libc::S_IFMT);
        sys::close(resolved);
        if mode? == libc::S_IFDIR {
            return self.open_dir(path);
        }
        let mut buffer = [0u8; libc::PATH_MAX as usize];
        let (parent, name) = split_path(path, &mut buffer)?;
        let dir = self.open_dir(parent)?;
        let file = sys::openat(dir, name, libc::O_PATH | libc::O_NOFOLLOW, 0);
        sys::close(dir);
        let file = file?;
        match sys::fstat(file) {
            Ok((_, _, mode)) if mode & libc::S_IFMT != libc::S_IFLNK => Ok(file),
            Ok(_) => {
                sys::close(file);
                Err(libc::ELOOP)
            }
            Err(errno) => {
                sys::close(file);
                Err(errno)
            }
        }
    }
}

/// `/proc/self/fd/<fd>` written into `buffer`, NUL-terminated, without allocating.
fn fd_path(fd: RawFd, buffer: &mut [u8; 32]) -> sys::SysResult<&CStr> {
    let prefix = b"/proc/self/fd/";
    buffer[..prefix.len()].copy_from_slice(prefix);
    let mut digits = [0u8; 10];
    let mut count = 0;
    let mut rest = u32::try_from(fd).map_err(|_| libc::EBADF)?;
    loop {
        digits[count] = b'0' + (rest % 10) as u8;
        count += 1;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    for index in 0..count {
        buffer[prefix.len() + index] = digits[count - 1 - index];
    }
    buffer[prefix.len() + count] = 0;
    CStr::from_bytes_with_nul(&buffer[..prefix.len() + count + 1]).map_err(|_| libc::EINVAL)
}

/// Splits an absolute `path` into its parent (copied, NUL-terminated, into `buffer`; `/` for a top-level name)
/// and its last component; `/` itself gives `("/", "")`. No allocation: runs in the cloned child.
fn split_path<'a>(path: &'a CStr, buffer: &'a mut [u8]) -> sys::SysResult<(&'a CStr, &'a CStr)> {
    let bytes = path.to_bytes_with_nul();
    let slash = bytes.iter().rposition(|byte| *byte == b'/').ok_or(libc::EINVAL)?;
    let name = CStr::from_bytes_with_nul(&bytes[slash + 1..]).map_err(|_| libc::EINVAL)?;
    let parent_len = slash.max(1);
    let parent_bytes = buffer.get_mut(..parent_len + 1).ok_or(libc::ENAMETOOLONG)?;
    parent_bytes[..parent_len].copy_from_slice(&bytes[..parent_len]);
    parent_bytes[parent_len] = 0;
    let parent = CStr::from_bytes_with_nul(parent_bytes).map_err(|_| libc::EINVAL)?;
    Ok((parent, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_into_parent_and_name_without_allocating() {
        let mut buffer = [0u8; 64];
        assert_eq!(split_path(c"/etc/hosts", &mut buffer).unwrap(), (c"/etc", c"hosts"));
        assert_eq!(split_path(c"/proc", &mut buffer).unwrap(), (c"/", c"proc"));
        assert_eq!(split_path(c"/", &mut buffer).unwrap(), (c"/", c""));
        let mut small = [0u8; 4];
        assert_eq!(split_path(c"/a/b/c/d", &mut small), Err(libc::ENAMETOOLONG));
    }

    #[test]
    fn fd_paths_name_the_fd() {
        let mut buffer = [0u8; 32];
        assert_eq!(fd_path(0, &mut buffer).unwrap(), c"/proc/self/fd/0");
        assert_eq!(fd_path(2147483647, &mut buffer).unwrap(), c"/proc/self/fd/2147483647");
    }
}
