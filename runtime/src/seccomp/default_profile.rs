//! Docker's default seccomp profile as keel's own data, in the same [`Profile`] structs a JSON profile is read into,
//! so that the built-in default and a user's file take one path to the filter.
//!
//! The facts (names, conditions, capability and architecture rules, errno values) are those of moby's
//! `profiles/seccomp/default.json` at commit 00f3d189e420d485e42d15fe494f96d272284e0e; the file itself is not
//! copied. Everything not allowed here gets `EPERM` (`defaultErrnoRet` 1).

use super::profile::{Arg, Filter, Profile, SyscallRule};

/// Allowed for every container, whatever its capabilities.
#[rustfmt::skip]
const ALLOWED: [&str; 349] = [
    "accept", "accept4", "access", "adjtimex", "alarm", "bind", "brk", "capget", "capset", "chdir", "chmod", "chown",
    "chown32", "clock_adjtime", "clock_adjtime64", "clock_getres", "clock_getres_time64", "clock_gettime",
    "clock_gettime64", "clock_nanosleep", "clock_nanosleep_time64", "close", "close_range", "connect",
    "copy_file_range", "creat", "dup", "dup2", "dup3", "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old",
    "epoll_pwait", "epoll_pwait2", "epoll_wait", "epoll_wait_old", "eventfd", "eventfd2", "execve", "execveat",
    "exit", "exit_group", "faccessat", "faccessat2", "fadvise64", "fadvise64_64", "fallocate", "fanotify_mark",
    "fchdir", "fchmod", "fchmodat", "fchown", "fchown32", "fchownat", "fcntl", "fcntl64", "fdatasync", "fgetxattr",
    "flistxattr", "flock", "fork", "fremovexattr", "fsetxattr", "fstat", "fstat64", "fstatat64", "fstatfs",
    "fstatfs64", "fsync", "ftruncate", "ftruncate64", "futex", "futex_time64", "futex_waitv", "futimesat", "getcpu",
    "getcwd", "getdents", "getdents64", "getegid", "getegid32", "geteuid", "geteuid32", "getgid", "getgid32",
    "getgroups", "getgroups32", "getitimer", "getpeername", "getpgid", "getpgrp", "getpid", "getppid", "getpriority",
    "getrandom", "getresgid", "getresgid32", "getresuid", "getresuid32", "getrlimit", "get_robust_list", "getrusage",
    "getsid", "getsockname", "getsockopt", "get_thread_area", "gettid", "gettimeofday", "getuid", "getuid32",
    "getxattr", "inotify_add_watch", "inotify_init", "inotify_init1", "inotify_rm_watch", "io_cancel", "ioctl",
    "io_destroy", "io_getevents", "io_pgetevents", "io_pgetevents_time64", "ioprio_get", "ioprio_set", "io_setup",
    "io_submit", "io_uring_enter", "io_uring_register", "io_uring_setup", "ipc", "kill", "landlock_add_rule",
    "landlock_create_ruleset", "landlock_restrict_self", "lchown", "lchown32", "lgetxattr", "link", "linkat",
    "listen", "listxattr", "llistxattr", "_llseek", "lremovexattr", "lseek", "lsetxattr", "lstat", "lstat64",
    "madvise", "membarrier", "memfd_create", "memfd_secret", "mincore", "mkdir", "mkdirat", "mknod", "mknodat",
    "mlock", "mlock2", "mlockall", "mmap", "mmap2", "mprotect", "mq_getsetattr", "mq_notify", "mq_open",
    "mq_timedreceive", "mq_timedreceive_time64", "mq_timedsend", "mq_timedsend_time64", "mq_unlink", "mremap",
    "msgctl", "msgget", "msgrcv", "msgsnd", "msync", "munlock", "munlockall", "munmap", "name_to_handle_at",
    "nanosleep", "newfstatat", "_newselect", "open", "openat", "openat2", "pause", "pidfd_open", "pidfd_send_signal",
    "pipe", "pipe2", "pkey_alloc", "pkey_free", "pkey_mprotect", "poll", "ppoll", "ppoll_time64", "prctl", "pread64",
    "preadv", "preadv2", "prlimit64", "process_mrelease", "pselect6", "pselect6_time64", "pwrite64", "pwritev",
    "pwritev2", "read", "readahead", "readlink", "readlinkat", "readv", "recv", "recvfrom", "recvmmsg",
    "recvmmsg_time64", "recvmsg", "remap_file_pages", "removexattr", "rename", "renameat", "renameat2",
    "restart_syscall", "rmdir", "rseq", "rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo",
    "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait", "rt_sigtimedwait_time64", "rt_tgsigqueueinfo",
    "sched_getaffinity", "sched_getattr", "sched_getparam", "sched_get_priority_max", "sched_get_priority_min",
    "sched_getscheduler", "sched_rr_get_interval", "sched_rr_get_interval_time64", "sched_setaffinity",
    "sched_setattr", "sched_setparam", "sched_setscheduler", "sched_yield", "seccomp", "select", "semctl", "semget",
    "semop", "semtimedop", "semtimedop_time64", "send", "sendfile", "sendfile64", "sendmmsg", "sendmsg", "sendto",
    "setfsgid", "setfsgid32", "setfsuid", "setfsuid32", "setgid", "setgid32", "setgroups", "setgroups32", "setitimer",
    "setpgid", "setpriority", "setregid", "setregid32", "setresgid", "setresgid32", "setresuid", "setresuid32",
    "setreuid", "setreuid32", "setrlimit", "set_robust_list", "setsid", "setsockopt", "set_thread_area",
    "set_tid_address", "setuid", "setuid32", "setxattr", "shmat", "shmctl", "shmdt", "shmget", "shutdown",
    "sigaltstack", "signalfd", "signalfd4", "sigprocmask", "sigreturn", "socketcall", "socketpair", "splice", "stat",
    "stat64", "statfs", "statfs64", "statx", "symlink", "symlinkat", "sync", "sync_file_range", "syncfs", "sysinfo",
    "tee", "tgkill", "time", "timer_create", "timer_delete", "timer_getoverrun", "timer_gettime", "timer_gettime64",
    "timer_settime", "timer_settime64", "timerfd_create", "timerfd_gettime", "timerfd_gettime64", "timerfd_settime",
    "timerfd_settime64", "times", "tkill", "truncate", "truncate64", "ugetrlimit", "umask", "uname", "unlink",
    "unlinkat", "utime", "utimensat", "utimensat_time64", "utimes", "vfork", "vmsplice", "wait4", "waitid", "waitpid",
    "write", "writev",
];

/// The capability-conditional allows: with the capability, these calls are allowed outright.
const WITH_CAPABILITY: [(&str, &[&str]); 13] = [
    ("CAP_DAC_READ_SEARCH", &["open_by_handle_at"]),
    (
        "CAP_SYS_ADMIN",
        &[
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "mount",
            "mount_setattr",
            "move_mount",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount",
            "umount2",
            "unshare",
        ],
    ),
    ("CAP_SYS_BOOT", &["reboot"]),
    ("CAP_SYS_CHROOT", &["chroot"]),
    ("CAP_SYS_MODULE", &["delete_module", "init_module", "finit_module"]),
    ("CAP_SYS_PACCT", &["acct"]),
    ("CAP_SYS_PTRACE", &["kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev", "ptrace"]),
    ("CAP_SYS_RAWIO", &["iopl", "ioperm"]),
    ("CAP_SYS_TIME", &["settimeofday", "stime", "clock_settime", "clock_settime64"]),
    ("CAP_SYS_TTY_CONFIG", &["vhangup"]),
    ("CAP_SYS_NICE", &["get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"]),
    ("CAP_SYSLOG", &["syslog"]),
    ("CAP_BPF", &["bpf"]),
];

/// Allowed only on these architectures (Go's names).
const ARCH_ONLY: [(&[&str], &[&str]); 6] = [
    (&["ppc64le"], &["sync_file_range2", "swapcontext"]),
    (
        &["arm", "arm64"],
        &["arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint", "cacheflush", "set_tls"],
    ),
    (&["amd64", "x32"], &["arch_prctl"]),
    (&["amd64", "x32", "x86"], &["modify_ldt"]),
    (&["s390", "s390x"], &["s390_pci_mmio_read", "s390_pci_mmio_write", "s390_runtime_instr"]),
    (&["riscv64"], &["riscv_flush_icache"]),
];

/// `personality` values allowed: PER_LINUX, PER_LINUX32, UNAME26, UNAME26|PER_LINUX32, and 0xffffffff (query).
const PERSONALITIES: [u64; 5] = [0, 8, 0x20000, 0x20008, 0xffff_ffff];

/// CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET: without
/// CAP_SYS_ADMIN, `clone` is allowed only with none of these flags.
pub const CLONE_NAMESPACE_FLAGS: u64 = 0x7e02_0000;

/// AF_VSOCK: the one socket family Docker's profile refuses.
const AF_VSOCK: u64 = 40;

fn allow(names: &[&str]) -> SyscallRule {
    SyscallRule {
        names: names.iter().map(|name| (*name).to_owned()).collect(),
        action: "SCMP_ACT_ALLOW".to_owned(),
        ..SyscallRule::default()
    }
}

fn arg(index: u32, op: &str, value: u64) -> Arg {
    Arg { index, value, value_two: 0, op: op.to_owned() }
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|item| (*item).to_owned()).collect()
}

/// Docker's default profile.
pub fn docker_default() -> Profile {
    let mut syscalls = vec![allow(&ALLOWED)];
    syscalls.push(SyscallRule {
        includes: Filter { min_kernel: "4.8".to_owned(), ..Filter::default() },
        ..allow(&["process_vm_readv", "process_vm_writev", "ptrace"])
    });
    syscalls.push(SyscallRule { args: vec![arg(0, "SCMP_CMP_NE", AF_VSOCK)], ..allow(&["socket"]) });
    for value in PERSONALITIES {
        syscalls.push(SyscallRule { args: vec![arg(0, "SCMP_CMP_EQ", value)], ..allow(&["personality"]) });
    }
    for (arches, names) in ARCH_ONLY {
        syscalls
            .push(SyscallRule { includes: Filter { arches: strings(arches), ..Filter::default() }, ..allow(names) });
    }
    let without_sys_admin =
        |arches: &[&str]| Filter { caps: strings(&["CAP_SYS_ADMIN"]), arches: strings(arches), ..Filter::default() };
    syscalls.push(SyscallRule {
        args: vec![arg(0, "SCMP_CMP_MASKED_EQ", CLONE_NAMESPACE_FLAGS)],
        excludes: without_sys_admin(&["s390", "s390x"]),
        ..allow(&["clone"])
    });
    // s390 passes clone's flags as the second argument.
    syscalls.push(SyscallRule {
        args: vec![arg(1, "SCMP_CMP_MASKED_EQ", CLONE_NAMESPACE_FLAGS)],
        includes: Filter { arches: strings(&["s390", "s390x"]), ..Filter::default() },
        excludes: without_sys_admin(&[]),
        ..allow(&["clone"])
    });
    // ENOSYS, not EPERM: glibc then falls back to clone, whose flags the rule above can check (clone3 passes them
    // in memory, out of a filter's reach).
    syscalls.push(SyscallRule {
        names: strings(&["clone3"]),
        action: "SCMP_ACT_ERRNO".to_owned(),
        errno_ret: Some(libc::ENOSYS as u32),
        excludes: without_sys_admin(&[]),
        ..SyscallRule::default()
    });
    for (capability, names) in WITH_CAPABILITY {
        syscalls.push(SyscallRule {
            includes: Filter { caps: strings(&[capability]), ..Filter::default() },
            ..allow(names)
        });
    }
    Profile {
        default_action: "SCMP_ACT_ERRNO".to_owned(),
        default_errno_ret: Some(libc::EPERM as u32),
        syscalls,
        ..Profile::default()
    }
}
