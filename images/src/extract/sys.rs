//! The raw syscalls the extractor needs, each relative to a directory fd; the only `unsafe` of the image module.
//!
//! Every function takes names as `&CStr`. Callers pass single path components (no `/`) for everything that
//! creates an entry, so the kernel never resolves a path here except in [`open_beneath`], which is confined to
//! the layer root by `RESOLVE_BENEATH`.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// Turns a libc return value into `io::Result`, reading errno on -1.
fn check(result: libc::c_int) -> io::Result<()> {
    if result == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The kernel's `struct open_how` (libc's is `non_exhaustive`, so it cannot be built outside libc).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// Opens `path` relative to `root`, refusing (EXDEV) any resolution that would leave `root`: `..` above it,
/// absolute symlinks, symlinks whose targets climb out; magic links (`/proc/self/fd/…`) are refused too.
pub fn open_beneath(root: BorrowedFd<'_>, path: &CStr, flags: libc::c_int) -> io::Result<OwnedFd> {
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC | libc::O_NOCTTY) as u64,
        mode: 0,
        resolve: libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS,
    };
    // The kernel returns EAGAIN when a concurrent rename races a `..` lookup; a few retries settle it.
    for _ in 0..16 {
        // SAFETY: `path` is a NUL-terminated string and `how` a fully initialised `open_how` whose size we pass;
        // both outlive the call, and the kernel only reads them.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                root.as_raw_fd(),
                path.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        if fd >= 0 {
            let fd = libc::c_int::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
            // SAFETY: openat2 returned a new descriptor that nothing else owns.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
        }
        let error = io::Error::last_os_error();
        if error.raw_os_error() != Some(libc::EAGAIN) {
            return Err(error);
        }
    }
    Err(io::Error::from_raw_os_error(libc::EAGAIN))
}

/// Opens a directory by absolute path; used once for the layer root itself.
pub fn open_dir(path: &CStr) -> io::Result<OwnedFd> {
    // SAFETY: `path` is NUL-terminated and outlives the call.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC) };
    check(fd)?;
    // SAFETY: open returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens the single component `name` in `dir` without following a symlink there.
pub fn open_child(dir: BorrowedFd<'_>, name: &CStr, flags: libc::c_int, mode: libc::mode_t) -> io::Result<OwnedFd> {
    let flags = flags | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NOCTTY;
    // SAFETY: `name` is NUL-terminated and outlives the call; `mode` is passed as the variadic mode argument.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags, libc::c_uint::from(mode)) };
    check(fd)?;
    // SAFETY: openat returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub fn mkdirat(dir: BorrowedFd<'_>, name: &CStr, mode: libc::mode_t) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated and outlives the call.
    check(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode) })
}

/// Creates a symlink; the target is stored as data and never resolved here.
pub fn symlinkat(target: &CStr, dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    // SAFETY: both strings are NUL-terminated and outlive the call.
    check(unsafe { libc::symlinkat(target.as_ptr(), dir.as_raw_fd(), name.as_ptr()) })
}

/// Hard-links `old_dir/old_name` (not following a symlink there: no AT_SYMLINK_FOLLOW) as `new_dir/new_name`.
pub fn linkat(old_dir: BorrowedFd<'_>, old_name: &CStr, new_dir: BorrowedFd<'_>, new_name: &CStr) -> io::Result<()> {
    // SAFETY: both names are NUL-terminated and outlive the call.
    check(unsafe { libc::linkat(old_dir.as_raw_fd(), old_name.as_ptr(), new_dir.as_raw_fd(), new_name.as_ptr(), 0) })
}

/// Creates a device node or FIFO; `kind` is `S_IFCHR`, `S_IFBLK` or `S_IFIFO`.
pub fn mknodat(
    dir: BorrowedFd<'_>,
    name: &CStr,
    kind: libc::mode_t,
    permissions: libc::mode_t,
    major: u32,
    minor: u32,
) -> io::Result<()> {
    let device = libc::makedev(major, minor);
    // SAFETY: `name` is NUL-terminated and outlives the call.
    check(unsafe { libc::mknodat(dir.as_raw_fd(), name.as_ptr(), kind | permissions, device) })
}

/// `lchown` relative to `dir`: a symlink's own owner changes, never its target's.
pub fn chown_nofollow(dir: BorrowedFd<'_>, name: &CStr, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated and outlives the call.
    check(unsafe { libc::fchownat(dir.as_raw_fd(), name.as_ptr(), uid, gid, libc::AT_SYMLINK_NOFOLLOW) })
}

pub fn fchmod(file: BorrowedFd<'_>, mode: libc::mode_t) -> io::Result<()> {
    // SAFETY: plain syscall on a descriptor we borrow for its duration.
    check(unsafe { libc::fchmod(file.as_raw_fd(), mode) })
}

/// Sets access and modification time of the file open as `file`: no path is resolved, so nothing a later entry
/// did to the names on the way can redirect it.
pub fn set_mtime_fd(file: BorrowedFd<'_>, seconds: i64) -> io::Result<()> {
    let time = libc::timespec { tv_sec: seconds as _, tv_nsec: 0 };
    let times = [time, time];
    // SAFETY: `times` holds the two timespecs futimens reads and outlives the call; the fd is borrowed for it.
    check(unsafe { libc::futimens(file.as_raw_fd(), times.as_ptr()) })
}

/// Sets access and modification time of `dir/name` without following a symlink there.
pub fn set_mtime_nofollow(dir: BorrowedFd<'_>, name: &CStr, seconds: i64) -> io::Result<()> {
    let time = libc::timespec { tv_sec: seconds as _, tv_nsec: 0 };
    let times = [time, time];
    // SAFETY: `name` is NUL-terminated and `times` holds the two timespecs utimensat reads; both outlive the call.
    check(unsafe { libc::utimensat(dir.as_raw_fd(), name.as_ptr(), times.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) })
}

pub fn fsetxattr(file: BorrowedFd<'_>, name: &CStr, value: &[u8]) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated; `value` points to `value.len()` readable bytes; both outlive the call.
    check(unsafe { libc::fsetxattr(file.as_raw_fd(), name.as_ptr(), value.as_ptr().cast(), value.len(), 0) })
}

/// Sets an xattr on `dir/name` without following a symlink there. There is no `lsetxattrat`, so the directory is
/// named through `/proc/self/fd/N` (a magic link to the fd we hold) and `lsetxattr` leaves the last component alone.
pub fn lsetxattr_at(dir: BorrowedFd<'_>, name: &CStr, attribute: &CStr, value: &[u8]) -> io::Result<()> {
    let mut path = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
    path.extend_from_slice(name.to_bytes());
    let path = CString::new(path).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: both strings are NUL-terminated; `value` points to `value.len()` readable bytes; all outlive the call.
    check(unsafe { libc::lsetxattr(path.as_ptr(), attribute.as_ptr(), value.as_ptr().cast(), value.len(), 0) })
}

/// Changes the mode of a node that cannot be opened for writing (device, FIFO) via an `O_PATH` fd's proc link,
/// which is how glibc implements `fchmodat(AT_SYMLINK_NOFOLLOW)`.
pub fn chmod_nofollow(dir: BorrowedFd<'_>, name: &CStr, mode: libc::mode_t) -> io::Result<()> {
    let node = open_child(dir, name, libc::O_PATH, 0)?;
    let path = CString::new(format!("/proc/self/fd/{}", node.as_raw_fd()))
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `path` is NUL-terminated and outlives the call; `node` stays open until after it.
    check(unsafe { libc::chmod(path.as_ptr(), mode) })
}

/// Removes `dir/name`; `directory` selects `AT_REMOVEDIR` (empty directories only).
pub fn unlinkat(dir: BorrowedFd<'_>, name: &CStr, directory: bool) -> io::Result<()> {
    let flags = if directory { libc::AT_REMOVEDIR } else { 0 };
    // SAFETY: `name` is NUL-terminated and outlives the call.
    check(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), flags) })
}

/// The file type bits (`S_IFMT`) of `dir/name` without following a symlink; `None` if it does not exist.
pub fn file_type_nofollow(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<Option<libc::mode_t>> {
    let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `name` is NUL-terminated; `stat` is writable memory of the right size that fstatat fills on success.
    let result = unsafe { libc::fstatat(dir.as_raw_fd(), name.as_ptr(), stat.as_mut_ptr(), libc::AT_SYMLINK_NOFOLLOW) };
    if result == -1 {
        let error = io::Error::last_os_error();
        return if error.raw_os_error() == Some(libc::ENOENT) { Ok(None) } else { Err(error) };
    }
    // SAFETY: fstatat succeeded, so it initialised `stat`.
    let stat = unsafe { stat.assume_init() };
    Ok(Some(stat.st_mode & libc::S_IFMT))
}

/// Flushes the filesystem holding `file`: one call makes a whole unpacked layer durable.
pub fn syncfs(file: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: plain syscall on a descriptor we borrow for its duration.
    check(unsafe { libc::syncfs(file.as_raw_fd()) })
}

/// Whether we may create device nodes, chown and set `trusted.*` xattrs.
pub fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}
