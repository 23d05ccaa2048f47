//! Raw syscalls for the container child: every `unsafe` of the runtime lives here, none of it allocates.
//!
//! The functions run between a raw `clone` and `execve` in a copy of a multi-threaded process, where another
//! thread may have held the allocator's lock at the moment of the clone. So they take only borrowed, already
//! built `CStr`s and slices, return the errno as a plain `i32`, and call nothing that allocates or locks.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::ptr;

use libc::{c_char, c_int, c_ulong, gid_t, pid_t, uid_t};

/// An errno value.
pub type Errno = i32;
pub type SysResult<T = ()> = Result<T, Errno>;

fn errno() -> Errno {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO)
}

fn check(ret: c_int) -> SysResult<c_int> {
    if ret == -1 {
        Err(errno())
    } else {
        Ok(ret)
    }
}

fn check_long(ret: libc::c_long) -> SysResult<libc::c_long> {
    if ret == -1 {
        Err(errno())
    } else {
        Ok(ret)
    }
}

fn opt_ptr(value: Option<&CStr>) -> *const c_char {
    value.map_or(ptr::null(), CStr::as_ptr)
}

/// `clone(flags | SIGCHLD)` with fork semantics (no new stack): returns 0 in the child and its pid in the
/// parent. Namespace flags put the child (not the caller) into new namespaces; with `CLONE_NEWPID` the child is
/// PID 1 of its namespace.
pub fn clone_process(namespace_flags: c_int) -> SysResult<pid_t> {
    let flags = (namespace_flags | libc::SIGCHLD) as c_ulong;
    // SAFETY: with a null stack pointer clone behaves like fork: the child continues on a private copy of this
    // thread's stack, so no memory is shared. The child only calls the non-allocating functions of this module
    // until it execs or exits (the module's contract), which is what makes running in the copy of a
    // multi-threaded process sound. The unused tid/tls arguments are null/zero.
    let ret = unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) };
    check_long(ret).map(|pid| pid as pid_t)
}

/// What [`clone_with_pidfd`] returns on each side of the clone.
pub enum Cloned {
    Child,
    Parent { pid: pid_t, pidfd: OwnedFd },
}

/// [`clone_process`] with `CLONE_PIDFD`: the parent also gets a pidfd (close-on-exec) naming the child for good,
/// so that signals and `setns` cannot reach another process once the child is reaped and its pid reused.
pub fn clone_with_pidfd(namespace_flags: c_int) -> SysResult<Cloned> {
    let flags = (namespace_flags | libc::CLONE_PIDFD | libc::SIGCHLD) as c_ulong;
    let mut pidfd: c_int = -1;
    // SAFETY: as in `clone_process` (fork semantics with a null stack, the child keeps to this module). The third
    // argument, `parent_tid` on x86_64 and aarch64 alike, is where CLONE_PIDFD stores the pidfd: it points at
    // `pidfd` on this frame, which the kernel writes before the call returns in the parent.
    let ret = unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, &mut pidfd as *mut c_int, 0usize, 0usize) };
    match check_long(ret)? {
        0 => Ok(Cloned::Child),
        // SAFETY: the kernel has just installed `pidfd` in this process's fd table for us alone; nothing else
        // owns or closes it.
        pid => Ok(Cloned::Parent { pid: pid as pid_t, pidfd: unsafe { OwnedFd::from_raw_fd(pidfd) } }),
    }
}

/// `pidfd_send_signal`: signals the process `pidfd` names; ESRCH once it has exited, never another process.
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, signal: c_int) -> SysResult {
    // SAFETY: a null siginfo is allowed (the kernel fills in a SI_USER one); flags must be 0.
    let ret = unsafe {
        libc::syscall(libc::SYS_pidfd_send_signal, pidfd.as_raw_fd(), signal, ptr::null::<libc::siginfo_t>(), 0)
    };
    check_long(ret).map(drop)
}

pub fn mount(
    source: Option<&CStr>,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: c_ulong,
    data: Option<&CStr>,
) -> SysResult {
    // SAFETY: every pointer is null or a NUL-terminated string that outlives the call.
    let ret = unsafe { libc::mount(opt_ptr(source), target.as_ptr(), opt_ptr(fstype), flags, opt_ptr(data).cast()) };
    check(ret).map(drop)
}

/// `MOUNT_ATTR_RDONLY` of linux/mount.h (libc does not carry the mount_setattr constants).
const MOUNT_ATTR_RDONLY: u64 = 0x1;

/// `struct mount_attr` of linux/mount.h, version 0 (32 bytes).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Makes the mount at `target` and every mount below it read-only (`mount_setattr(AT_RECURSIVE)`, Linux 5.12):
/// a remount with `MS_RDONLY` changes only the top mount of a recursive bind, and `MS_REC` does not change that.
pub fn make_read_only_recursive(target: &CStr) -> SysResult {
    let attr = MountAttr { attr_set: MOUNT_ATTR_RDONLY, attr_clr: 0, propagation: 0, userns_fd: 0 };
    // SAFETY: `target` is NUL-terminated and `attr` is a `struct mount_attr` on this stack frame whose size is
    // passed with it; both outlive the call and the kernel only reads them.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            target.as_ptr(),
            libc::AT_RECURSIVE as c_ulong,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    check_long(ret).map(drop)
}

pub fn umount_detach(target: &CStr) -> SysResult {
    // SAFETY: `target` is NUL-terminated and outlives the call.
    check(unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) }).map(drop)
}

pub fn pivot_root(new_root: &CStr, put_old: &CStr) -> SysResult {
    // SAFETY: both pointers are NUL-terminated strings that outlive the call.
    let ret = unsafe { libc::syscall(libc::SYS_pivot_root, new_root.as_ptr(), put_old.as_ptr()) };
    check_long(ret).map(drop)
}

pub fn chdir(path: &CStr) -> SysResult {
    // SAFETY: `path` is NUL-terminated and outlives the call.
    check(unsafe { libc::chdir(path.as_ptr()) }).map(drop)
}

/// `mkdir`, where an existing entry counts as success (mount targets may already exist).
pub fn mkdir(path: &CStr, mode: u32) -> SysResult {
    // SAFETY: `path` is NUL-terminated and outlives the call.
    match check(unsafe { libc::mkdir(path.as_ptr(), mode) }) {
        Ok(_) | Err(libc::EEXIST) => Ok(()),
        Err(errno) => Err(errno),
    }
}

pub fn rmdir(path: &CStr) -> SysResult {
    // SAFETY: `path` is NUL-terminated and outlives the call.
    check(unsafe { libc::rmdir(path.as_ptr()) }).map(drop)
}

pub fn mknod(path: &CStr, mode: u32, major: u32, minor: u32) -> SysResult {
    let device = libc::makedev(major, minor);
    // SAFETY: `path` is NUL-terminated and outlives the call.
    match check(unsafe { libc::mknod(path.as_ptr(), mode, device) }) {
        Ok(_) | Err(libc::EEXIST) => Ok(()),
        Err(errno) => Err(errno),
    }
}

/// `lchown`: never follows a symlink, so a node's owner is set on the node itself.
pub fn chown(path: &CStr, uid: uid_t, gid: gid_t) -> SysResult {
    // SAFETY: `path` is NUL-terminated and outlives the call.
    check(unsafe { libc::lchown(path.as_ptr(), uid, gid) }).map(drop)
}

pub fn symlink(target: &CStr, link: &CStr) -> SysResult {
    // SAFETY: both pointers are NUL-terminated strings that outlive the call.
    match check(unsafe { libc::symlink(target.as_ptr(), link.as_ptr()) }) {
        Ok(_) | Err(libc::EEXIST) => Ok(()),
        Err(errno) => Err(errno),
    }
}

/// Creates an empty file to bind a file onto, unless something is already there.
pub fn open(path: &CStr, flags: c_int, mode: u32) -> SysResult<RawFd> {
    // SAFETY: `path` is NUL-terminated and outlives the call; `mode` is read only with O_CREAT.
    check(unsafe { libc::open(path.as_ptr(), flags, mode) })
}

pub fn close(fd: RawFd) {
    // SAFETY: closing an fd this process owns; a bad fd only yields EBADF.
    unsafe { libc::close(fd) };
}

pub fn write_all(fd: RawFd, mut bytes: &[u8]) -> SysResult {
    while !bytes.is_empty() {
        // SAFETY: the pointer and length describe the live slice `bytes`.
        match check_long(unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) } as libc::c_long) {
            Ok(written) => bytes = &bytes[written as usize..],
            Err(libc::EINTR) => {}
            Err(errno) => return Err(errno),
        }
    }
    Ok(())
}

/// Writes `text` to the file at `path` (a cgroup or proc file).
pub fn write_file(path: &CStr, text: &[u8]) -> SysResult {
    let fd = open(path, libc::O_WRONLY | libc::O_CLOEXEC, 0)?;
    let result = write_all(fd, text);
    close(fd);
    result
}

/// A close-on-exec copy of `fd` numbered at least `minimum`.
pub fn dup_at_least(fd: RawFd, minimum: RawFd) -> SysResult<RawFd> {
    // SAFETY: F_DUPFD_CLOEXEC only reads its integer argument.
    check(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, minimum) })
}

pub fn dup_to(fd: RawFd, target: RawFd, cloexec: bool) -> SysResult {
    let flags = if cloexec { libc::O_CLOEXEC } else { 0 };
    // SAFETY: dup3 only manipulates the fd table.
    check(unsafe { libc::dup3(fd, target, flags) }).map(drop)
}

/// Closes every fd from `first` up.
pub fn close_from(first: RawFd) -> SysResult {
    // SAFETY: close_range only manipulates the fd table.
    let ret = unsafe { libc::syscall(libc::SYS_close_range, first as libc::c_uint, libc::c_uint::MAX, 0) };
    check_long(ret).map(drop)
}

pub fn sethostname(name: &[u8]) -> SysResult {
    // SAFETY: the pointer and length describe the live slice `name`.
    check(unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) }).map(drop)
}

pub fn setsid() -> SysResult {
    // SAFETY: no arguments.
    check(unsafe { libc::setsid() }).map(drop)
}

pub fn set_umask(mask: u32) {
    // SAFETY: no pointers; umask cannot fail.
    unsafe { libc::umask(mask) };
}

pub fn unshare(flags: c_int) -> SysResult {
    // SAFETY: no pointers.
    check(unsafe { libc::unshare(flags) }).map(drop)
}

pub fn setns(fd: RawFd, namespace_type: c_int) -> SysResult {
    // SAFETY: no pointers; a wrong fd yields EBADF/EINVAL.
    check(unsafe { libc::setns(fd, namespace_type) }).map(drop)
}

fn prctl(option: c_int, arg: c_ulong) -> SysResult {
    // SAFETY: the options used here take integer arguments only.
    check(unsafe { libc::prctl(option, arg, 0 as c_ulong, 0 as c_ulong, 0 as c_ulong) }).map(drop)
}

pub fn set_no_new_privs() -> SysResult {
    prctl(libc::PR_SET_NO_NEW_PRIVS, 1)
}

/// `seccomp(SECCOMP_SET_MODE_FILTER)` with a program built before the clone; adds it to the calling thread's
/// stack of filters. Needs no_new_privs or CAP_SYS_ADMIN.
pub fn install_seccomp_filter(program: &[seccompiler::sock_filter]) -> SysResult {
    /// `struct sock_fprog` (linux/filter.h).
    #[repr(C)]
    struct SockFprog {
        len: libc::c_ushort,
        filter: *const seccompiler::sock_filter,
    }
    // The kernel refuses longer programs itself (EINVAL); this only keeps the length from wrapping.
    let len = libc::c_ushort::try_from(program.len()).map_err(|_| libc::EINVAL)?;
    let fprog = SockFprog { len, filter: program.as_ptr() };
    // SAFETY: `fprog` points at `len` instructions of `program` (seccompiler's `sock_filter` is `#[repr(C)]` with
    // the layout of linux/filter.h's), both live for the call, and the kernel only copies them in.
    let ret = unsafe {
        libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0 as c_ulong, &fprog as *const SockFprog)
    };
    check_long(ret).map(drop)
}

/// Makes this process non-dumpable: no core dumps, and `/proc/<pid>/{mem,environ,maps,…}` and ptrace are closed to
/// everyone without CAP_SYS_PTRACE, even to processes of the same uid and capabilities. The next execve of an
/// ordinary binary makes it dumpable again (the flag belongs to the memory image it replaces).
pub fn set_not_dumpable() -> SysResult {
    prctl(libc::PR_SET_DUMPABLE, 0)
}

pub fn set_parent_death_signal(signal: c_int) -> SysResult {
    prctl(libc::PR_SET_PDEATHSIG, signal as c_ulong)
}

pub fn set_child_subreaper() -> SysResult {
    prctl(libc::PR_SET_CHILD_SUBREAPER, 1)
}

/// Removes `capability` from the bounding set, so no exec can gain it again.
pub fn drop_bounding_capability(capability: u32) -> SysResult {
    match prctl(libc::PR_CAPBSET_DROP, c_ulong::from(capability)) {
        // Capabilities the kernel does not know are not in the bounding set anyway.
        Err(libc::EINVAL) => Ok(()),
        other => other,
    }
}

pub fn clear_ambient_capabilities() -> SysResult {
    // SAFETY: PR_CAP_AMBIENT_CLEAR_ALL takes integer arguments only.
    let ret = unsafe {
        libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL as c_ulong, 0 as c_ulong, 0 as c_ulong, 0)
    };
    match check(ret) {
        Ok(_) | Err(libc::EINVAL) => Ok(()),
        Err(errno) => Err(errno),
    }
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: c_int,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Sets this process's effective and permitted sets to `capabilities` (a bit per capability) and empties the
/// inheritable set, so that exec cannot bring back anything outside the container's set.
pub fn set_capabilities(capabilities: u64) -> SysResult {
    let low = capabilities as u32;
    let high = (capabilities >> 32) as u32;
    let header = CapHeader { version: LINUX_CAPABILITY_VERSION_3, pid: 0 };
    let data = [
        CapData { effective: low, permitted: low, inheritable: 0 },
        CapData { effective: high, permitted: high, inheritable: 0 },
    ];
    // SAFETY: version 3 of capset reads one header and exactly two data structs, which both live on this stack
    // frame for the duration of the call.
    let ret = unsafe { libc::syscall(libc::SYS_capset, &header as *const CapHeader, data.as_ptr()) };
    check_long(ret).map(drop)
}

/// This process's `(soft, hard)` limit of `resource`.
pub fn get_rlimit(resource: c_int) -> SysResult<(u64, u64)> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: a null new-limit pointer only reads; `limit` is a valid rlimit on this stack frame for the kernel to
    // fill.
    check(unsafe { libc::prlimit(0, resource as _, ptr::null(), &mut limit) })?;
    Ok((limit.rlim_cur, limit.rlim_max))
}

pub fn set_rlimit(resource: c_int, soft: u64, hard: u64) -> SysResult {
    let limit = libc::rlimit { rlim_cur: soft, rlim_max: hard };
    // SAFETY: `limit` is a valid rlimit on this stack frame; a null old-limit pointer is allowed.
    check(unsafe { libc::prlimit(0, resource as _, &limit, ptr::null_mut()) }).map(drop)
}

// The id changes go straight to the kernel: libc's wrappers broadcast the change to every thread of the process
// (POSIX wants process-wide credentials) and wait for threads that the clone did not copy, forever.

pub fn set_groups(groups: &[gid_t]) -> SysResult {
    // SAFETY: the pointer and length describe the live slice `groups`.
    let ret = unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) };
    check_long(ret).map(drop)
}

pub fn set_gid(gid: gid_t) -> SysResult {
    // SAFETY: no pointers.
    check_long(unsafe { libc::syscall(libc::SYS_setresgid, gid, gid, gid) }).map(drop)
}

pub fn set_uid(uid: uid_t) -> SysResult {
    // SAFETY: no pointers.
    check_long(unsafe { libc::syscall(libc::SYS_setresuid, uid, uid, uid) }).map(drop)
}

/// Unblocks every signal and puts every disposition back to the default, undoing the supervisor's (and PID 1's)
/// blocked mask and handlers, which a child would otherwise inherit.
pub fn reset_signals() {
    for signal in 1..=64 {
        if signal == libc::SIGKILL || signal == libc::SIGSTOP {
            continue;
        }
        // SAFETY: installing SIG_DFL touches no memory of ours; invalid numbers (32, 33 under glibc) get EINVAL.
        unsafe { libc::signal(signal, libc::SIG_DFL) };
    }
    set_signal_mask(false);
}

/// Blocks (`true`) or unblocks (`false`) every signal.
pub fn set_signal_mask(block_all: bool) {
    // SAFETY: `set` is a local sigset initialised by sigfillset/sigemptyset before use; the old-mask pointer may be
    // null.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        if block_all {
            libc::sigfillset(&mut set);
        } else {
            libc::sigemptyset(&mut set);
        }
        libc::sigprocmask(libc::SIG_SETMASK, &set, ptr::null_mut());
    }
}

/// Waits for any signal (all must be blocked) and returns its number.
pub fn wait_any_signal() -> SysResult<c_int> {
    // SAFETY: `set` is initialised by sigfillset; a null siginfo pointer is allowed.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        check(libc::sigwaitinfo(&set, ptr::null_mut()))
    }
}

/// One `waitpid(pid, WNOHANG)` (`-1` for any child): `Ok(None)` when nothing has ended.
pub fn wait_nohang(pid: pid_t) -> SysResult<Option<(pid_t, c_int)>> {
    let mut status = 0;
    // SAFETY: `status` is a valid int on this stack frame.
    match check(unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) })? {
        0 => Ok(None),
        pid => Ok(Some((pid, status))),
    }
}

/// A blocking `waitpid(pid)`, retried on EINTR.
pub fn wait_blocking(pid: pid_t) -> SysResult<c_int> {
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid int on this stack frame.
        match check(unsafe { libc::waitpid(pid, &mut status, 0) }) {
            Ok(_) => return Ok(status),
            Err(libc::EINTR) => continue,
            Err(errno) => return Err(errno),
        }
    }
}

/// A wait status as a shell reports it: the exit code, or 128 + the signal.
pub fn status_code(status: c_int) -> c_int {
    if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        libc::WEXITSTATUS(status)
    }
}

pub fn kill(pid: pid_t, signal: c_int) -> SysResult {
    // SAFETY: no pointers.
    check(unsafe { libc::kill(pid, signal) }).map(drop)
}

/// Executes `path`; returns only on failure, with the errno.
pub fn execve(path: &CStr, argv: &[*const c_char], envp: &[*const c_char]) -> Errno {
    // SAFETY: the caller built `argv` and `envp` as NUL-terminated arrays of pointers into CStrings that outlive
    // this call (see `NullTerminated`).
    unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    errno()
}

/// Executes the file `fd` was opened on (`execveat` with `AT_EMPTY_PATH`; `fd` may be `O_PATH`); returns only on
/// failure, with the errno.
pub fn execveat_fd(fd: RawFd, argv: &[*const c_char], envp: &[*const c_char]) -> Errno {
    // SAFETY: as for `execve`; the empty path is a static NUL-terminated string.
    unsafe { libc::syscall(libc::SYS_execveat, fd, c"".as_ptr(), argv.as_ptr(), envp.as_ptr(), libc::AT_EMPTY_PATH) };
    errno()
}

/// Sets or clears `FD_CLOEXEC` on `fd`.
pub fn set_cloexec(fd: RawFd, cloexec: bool) -> SysResult {
    let flags = if cloexec { libc::FD_CLOEXEC } else { 0 };
    // SAFETY: no pointers.
    check(unsafe { libc::fcntl(fd, libc::F_SETFD, flags) }).map(drop)
}

/// Ends this process at once, without running Rust or libc exit handlers (they belong to the parent's copy).
pub fn exit_now(code: c_int) -> ! {
    // SAFETY: _exit never returns and touches no memory of ours.
    unsafe { libc::_exit(code) }
}

/// Sets `IFF_UP` on the loopback interface of the current network namespace.
pub fn loopback_up() -> SysResult {
    // SAFETY: a plain socket() call.
    let socket = check(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: `request` is a zeroed ifreq on this stack frame; its name is "lo" plus NUL, within IFNAMSIZ; the
    // flags union member is the one SIOCGIFFLAGS/SIOCSIFFLAGS read and write.
    let result = unsafe {
        let mut request: libc::ifreq = std::mem::zeroed();
        request.ifr_name[0] = b'l' as c_char;
        request.ifr_name[1] = b'o' as c_char;
        check(libc::ioctl(socket, libc::SIOCGIFFLAGS as _, &mut request)).and_then(|_| {
            request.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            check(libc::ioctl(socket, libc::SIOCSIFFLAGS as _, &request))
        })
    };
    close(socket);
    result.map(drop)
}

/// A pointer array ending in null, for execve, pointing into strings it borrows.
pub struct NullTerminated<'a> {
    pointers: Vec<*const c_char>,
    _strings: std::marker::PhantomData<&'a CStr>,
}

impl<'a> NullTerminated<'a> {
    /// Built before forking: it allocates.
    pub fn new(strings: impl IntoIterator<Item = &'a CStr>) -> Self {
        let mut pointers: Vec<*const c_char> = strings.into_iter().map(CStr::as_ptr).collect();
        pointers.push(ptr::null());
        NullTerminated { pointers, _strings: std::marker::PhantomData }
    }

    pub fn as_slice(&self) -> &[*const c_char] {
        &self.pointers
    }
}

/// One `getdents64` into `buffer`: the number of bytes of `linux_dirent64` records written, 0 at the end.
pub fn read_dir_entries(fd: RawFd, buffer: &mut [u8]) -> SysResult<usize> {
    // SAFETY: the pointer and length describe the live, writable slice `buffer`; the kernel writes at most that
    // many bytes and no alignment is required of them since `dir_entry_names` reads the records bytewise.
    let ret = unsafe { libc::syscall(libc::SYS_getdents64, fd, buffer.as_mut_ptr(), buffer.len()) };
    check_long(ret).map(|written| written as usize)
}

/// The names in a buffer filled by [`read_dir_entries`], without allocating: each record is
/// `d_ino: u64, d_off: i64, d_reclen: u16, d_type: u8, d_name: NUL-terminated`.
pub fn dir_entry_names(mut records: &[u8]) -> impl Iterator<Item = &CStr> {
    const NAME_OFFSET: usize = 19;
    std::iter::from_fn(move || {
        let length = usize::from(u16::from_ne_bytes([*records.get(16)?, *records.get(17)?]));
        let record = records.get(..length)?;
        records = &records[length..];
        CStr::from_bytes_until_nul(record.get(NAME_OFFSET..)?).ok()
    })
}

/// Waits up to `timeout_ms` for `fd` to be readable (or hung up); `Ok(false)` on timeout.
pub fn poll_readable(fd: RawFd, timeout_ms: c_int) -> SysResult<bool> {
    let mut entry = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd on this stack frame, and the count says one.
    let ready = check(unsafe { libc::poll(&mut entry, 1, timeout_ms) })?;
    Ok(ready > 0)
}

/// How paths that come from an image are resolved: inside the root fd they start from (`..` and absolute
/// symlinks stay in it), never through `/proc/self/fd/…`-style magic links.
pub const RESOLVE_IMAGE_PATH: u64 = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;

/// The kernel's `struct open_how` (libc's is non-exhaustive).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// `openat2(root, path, flags | O_CLOEXEC, mode, resolve)`; retried on the EAGAIN a concurrent rename can cause.
/// Allocation-free: usable in a cloned child.
pub fn openat2(root: RawFd, path: &CStr, flags: c_int, mode: u32, resolve: u64) -> SysResult<RawFd> {
    let how = OpenHow { flags: (flags | libc::O_CLOEXEC) as u64, mode: mode as u64, resolve };
    let mut last = libc::EAGAIN;
    for _ in 0..16 {
        // SAFETY: `path` is NUL-terminated and `how` a fully initialised `open_how` whose size we pass; both
        // outlive the call and the kernel only reads them.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                root,
                path.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        match check_long(ret) {
            Ok(fd) => return RawFd::try_from(fd).map_err(|_| libc::EBADF),
            Err(libc::EAGAIN) => last = libc::EAGAIN,
            Err(errno) => return Err(errno),
        }
    }
    Err(last)
}

/// `openat(dir, name, flags | O_CLOEXEC, mode)`: `name` is resolved relative to `dir` as the kernel usually does.
pub fn openat(dir: RawFd, name: &CStr, flags: c_int, mode: u32) -> SysResult<RawFd> {
    // SAFETY: `name` is NUL-terminated and outlives the call; `mode` is read only with O_CREAT.
    check(unsafe { libc::openat(dir, name.as_ptr(), flags | libc::O_CLOEXEC, mode) })
}

/// `mkdirat(dir, name, mode)`; an existing entry is not an error (the caller checks what it is).
pub fn mkdirat(dir: RawFd, name: &CStr, mode: u32) -> SysResult {
    // SAFETY: `name` is NUL-terminated and outlives the call.
    match check(unsafe { libc::mkdirat(dir, name.as_ptr(), mode) }) {
        Ok(_) | Err(libc::EEXIST) => Ok(()),
        Err(errno) => Err(errno),
    }
}

/// `(st_dev, st_ino, st_mode)` of an open fd.
pub fn fstat(fd: RawFd) -> SysResult<(u64, u64, u32)> {
    // SAFETY: an all-zero `stat` is a valid value of the plain C struct the kernel fills in.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `stat` is a writable `struct stat` that lives across the call.
    check(unsafe { libc::fstat(fd, &mut stat) })?;
    Ok((stat.st_dev as u64, stat.st_ino as u64, stat.st_mode as u32))
}

/// Whether `path` (symlinks followed) is a regular file this process may execute: what Go's
/// `exec.LookPath`, which runc runs on the command before it execs, accepts.
pub fn is_executable_file(path: &CStr) -> bool {
    // SAFETY: an all-zero `stat` is a valid value of the plain C struct the kernel fills in.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated and `stat` a writable `struct stat`, both living across the call.
    let found = check(unsafe { libc::stat(path.as_ptr(), &mut stat) }).is_ok();
    // Real ids: the user switch before exec set real and effective alike, and AT_EACCESS would send musl through a
    // clone to emulate it.
    // SAFETY: `path` is NUL-terminated and lives across the call; the kernel only reads it.
    let executable = || check(unsafe { libc::faccessat(libc::AT_FDCWD, path.as_ptr(), libc::X_OK, 0) });
    found && stat.st_mode & libc::S_IFMT == libc::S_IFREG && executable().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn dir_entry_names_walk_getdents_records() {
        let dir = tempfile::tempdir().unwrap();
        let mut expected = vec![".".to_string(), "..".to_string()];
        for index in 0..300 {
            // Names of varying length, so records have varying padding, and more than one buffer full.
            let name = format!("cpu{index}{}", "x".repeat(index % 7));
            std::fs::write(dir.path().join(&name), b"").unwrap();
            expected.push(name);
        }
        let handle = std::fs::File::open(dir.path()).unwrap();
        let mut names = Vec::new();
        let mut buffer = [0u8; 1024];
        loop {
            let length = read_dir_entries(handle.as_raw_fd(), &mut buffer).unwrap();
            if length == 0 {
                break;
            }
            names.extend(dir_entry_names(&buffer[..length]).map(|name| name.to_string_lossy().into_owned()));
        }
        names.sort();
        expected.sort();
        assert_eq!(names, expected);
    }
}
