//! The seccomp filter's answers to calls busybox has no applet for (`keyctl`, `clone3`), checked in a forked
//! child of this test process. A file of its own: a test binary's reaper (the container tests have one) would
//! take the child's exit status with its `waitpid(-1)` before this test could read it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use keel_config::Seccomp;

/// The errno `call` fails with in a forked child of this test under `filters` (0 if it succeeds), for calls
/// busybox has no applet for. The child only makes system calls: the programs are built before the fork.
fn errno_under(filters: Option<&keel_runtime::seccomp::SeccompFilters>, call: fn() -> libc::c_long) -> i32 {
    // SAFETY: the child below calls only prctl, seccomp, the probed call and _exit, none of which allocates or
    // takes a lock another thread of this test process may have held at the fork.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // SAFETY: plain prctl; no pointers.
        unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
        for program in filters.map(|filters| filters.programs()).unwrap_or_default() {
            #[repr(C)]
            struct SockFprog {
                len: libc::c_ushort,
                filter: *const seccompiler::sock_filter,
            }
            let fprog = SockFprog { len: program.len() as libc::c_ushort, filter: program.as_ptr() };
            // SAFETY: `fprog` points at the whole program, alive for the call; the kernel copies it.
            unsafe { libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0, &fprog as *const SockFprog) };
        }
        let errno = if call() == -1 { std::io::Error::last_os_error().raw_os_error().unwrap_or(255) } else { 0 };
        // SAFETY: _exit ends the child without running the parent's atexit handlers or destructors.
        unsafe { libc::_exit(errno) };
    }
    let mut status = 0;
    // SAFETY: `status` is a valid out-pointer for the call.
    let reaped = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(reaped, pid, "the child's status was taken by someone else");
    assert!(libc::WIFEXITED(status), "the child died: {status:#x}");
    libc::WEXITSTATUS(status)
}

fn keyctl() -> libc::c_long {
    // keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, create = 0)
    // SAFETY: integer arguments only.
    unsafe { libc::syscall(libc::SYS_keyctl, 0, -3, 0) }
}

fn clone3() -> libc::c_long {
    // SAFETY: a null argument with size 0: the kernel refuses it (EINVAL) before touching memory.
    unsafe { libc::syscall(libc::SYS_clone3, std::ptr::null::<u8>(), 0usize) }
}

#[test]
fn keyctl_answers_eperm_and_clone3_enosys_as_under_docker() {
    let default_capabilities = keel_runtime::capabilities::capability_mask(false, &[], &[], 40);
    let filters =
        keel_runtime::seccomp::container_filters("t", &Seccomp::Default, false, default_capabilities).unwrap().unwrap();
    assert_eq!(errno_under(Some(&filters), keyctl), libc::EPERM);
    assert_eq!(errno_under(Some(&filters), clone3), libc::ENOSYS);
    // Unfiltered, the kernel itself answers differently: the answers above are the filter's.
    assert_ne!(errno_under(None, keyctl), libc::EPERM);
    assert_eq!(errno_under(None, clone3), libc::EINVAL);
    // With CAP_SYS_ADMIN, Docker's profile lets clone3 through to the kernel.
    let admin = keel_runtime::seccomp::container_filters("t", &Seccomp::Default, false, default_capabilities | 1 << 21)
        .unwrap()
        .unwrap();
    assert_eq!(errno_under(Some(&admin), clone3), libc::EINVAL);
}
