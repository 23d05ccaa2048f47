//! What the cloned child does before exec, prepared as data in the parent and executed without allocating.
//!
//! The supervisor is multi-threaded; a clone copies only the calling thread, so the child must not touch the
//! allocator or any lock. Everything it needs (paths as `CString`s, argv and envp pointer arrays, ids, masks) is
//! built into a plan first; the child walks it with the syscalls of [`super::sys`]. A failing step writes
//! `(stage, step index, errno)` to the error pipe and exits; the parent turns that into a message naming the step.

use std::ffi::{CStr, CString};
use std::fmt;
use std::os::fd::RawFd;

use libc::{c_int, c_ulong};

use super::container_root::ContainerRoot;
use super::seccomp::SeccompFilters;
use super::sys::{self, Errno, NullTerminated};

/// Where the host's root is while the container's mounts are made (then detached and removed).
pub const HOST_ROOT: &str = "/.keel-host";
/// Exit codes of a child that failed before running the command, as Docker uses them.
pub const EXIT_SETUP_FAILED: c_int = 125;
pub const EXIT_CANNOT_EXECUTE: c_int = 126;
pub const EXIT_NOT_FOUND: c_int = 127;
/// The command was found but its execve failed: runc's init exits 255 then, after the start.
pub const EXIT_EXEC_FAILED_AFTER_FOUND: c_int = 255;
/// Where a process sets its own OOM score adjustment; written while the host's `/proc` is still the one mounted.
const OOM_SCORE_ADJ: &CStr = c"/proc/self/oom_score_adj";
/// Docker's default `--oom-score-adj`, written explicitly as runc does: a container must not inherit the
/// supervisor's own adjustment.
const DEFAULT_OOM_SCORE_ADJ: &[u8] = b"0";

/// The child's stages, reported with a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Stage {
    JoinCgroup = 1,
    LoopbackUp,
    PrivatePropagation,
    MountOverlay,
    PivotRoot,
    Step,
    Hostname,
    Stdio,
    Rlimit,
    Workdir,
    Capabilities,
    User,
    NoNewPrivs,
    Exec,
    JoinNamespace,
    Fork,
    Seccomp,
    NotDumpable,
    Init,
    OomScoreAdj,
}

impl Stage {
    fn from_u32(value: u32) -> Option<Stage> {
        const ALL: [Stage; 20] = [
            Stage::JoinCgroup,
            Stage::LoopbackUp,
            Stage::PrivatePropagation,
            Stage::MountOverlay,
            Stage::PivotRoot,
            Stage::Step,
            Stage::Hostname,
            Stage::Stdio,
            Stage::Rlimit,
            Stage::Workdir,
            Stage::Capabilities,
            Stage::User,
            Stage::NoNewPrivs,
            Stage::Exec,
            Stage::JoinNamespace,
            Stage::Fork,
            Stage::Seccomp,
            Stage::NotDumpable,
            Stage::Init,
            Stage::OomScoreAdj,
        ];
        ALL.into_iter().find(|stage| *stage as u32 == value)
    }
}

/// One step after `pivot_root`; paths are as the container sees them.
#[derive(Debug)]
pub enum Step {
    Mkdir {
        path: CString,
        mode: u32,
    },
    /// An empty file to bind a file onto.
    Touch {
        path: CString,
    },
    Mount {
        source: Option<CString>,
        target: CString,
        fstype: Option<CString>,
        flags: c_ulong,
        data: Option<CString>,
    },
    /// A mount that some hosts refuse (e.g. cgroup2 where it is not mounted); failure is ignored.
    OptionalMount {
        source: CString,
        target: CString,
        fstype: CString,
        flags: c_ulong,
    },
    /// Make a bind and every mount under it read-only (`:ro` binds; a host mount below the bound directory must
    /// not stay writable).
    ReadOnlyTree {
        target: CString,
    },
    Mknod {
        path: CString,
        /// File type and permission bits.
        mode: u32,
        major: u32,
        minor: u32,
        /// `(uid, gid)` to give the node; `None` leaves it root's.
        owner: Option<(u32, u32)>,
    },
    Symlink {
        target: CString,
        link: CString,
    },
    /// Docker's masked path: /dev/null over a file, an empty read-only tmpfs over a directory.
    Mask {
        path: CString,
    },
    /// Docker's masked glob `{dir}/{prefix}*/{leaf}`, expanded in the container's own view when the step runs
    /// (which CPUs exist is the kernel's business): each match is masked like [`Step::Mask`].
    MaskEach {
        dir: CString,
        prefix: CString,
        leaf: CString,
    },
    /// Docker's read-only path: bound onto itself read-only.
    ReadOnly {
        path: CString,
    },
    /// Unmount and remove [`HOST_ROOT`]: from here on the container sees nothing of the host.
    DetachHost,
    ReadOnlyRoot,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |path: &CString| path.to_string_lossy().into_owned();
        match self {
            Step::Mkdir { path, .. } => write!(f, "creating directory {}", show(path)),
            Step::Touch { path } => write!(f, "creating file {}", show(path)),
            Step::Mount { source, target, fstype, .. } => write!(
                f,
                "mounting {} ({}) on {}",
                source.as_ref().map(show).unwrap_or_default(),
                fstype.as_ref().map(show).unwrap_or_else(|| "bind".to_owned()),
                show(target)
            ),
            Step::OptionalMount { fstype, target, .. } => write!(f, "mounting {} on {}", show(fstype), show(target)),
            Step::ReadOnlyTree { target } => write!(f, "making {} and its submounts read-only", show(target)),
            Step::Mknod { path, .. } => write!(f, "creating device {}", show(path)),
            Step::Symlink { link, .. } => write!(f, "creating symlink {}", show(link)),
            Step::Mask { path } => write!(f, "masking {}", show(path)),
            Step::MaskEach { dir, prefix, leaf } => {
                write!(f, "masking {}/{}*/{}", show(dir), show(prefix), show(leaf))
            }
            Step::ReadOnly { path } => write!(f, "making {} read-only", show(path)),
            Step::DetachHost => write!(f, "detaching the host root"),
            Step::ReadOnlyRoot => write!(f, "making the root read-only"),
        }
    }
}

/// What a process in the container is and may do; shared by the container's command and exec'd probes.
#[derive(Debug)]
pub struct ProcessPlan {
    pub argv: Vec<CString>,
    pub env: Vec<CString>,
    /// Where to look for argv[0]: itself if it has a `/`, else each PATH directory joined with it.
    pub executable_candidates: Vec<CString>,
    /// Exists: the container's mount steps created it.
    pub workdir: CString,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<libc::gid_t>,
    /// Bit N = capability N: the bounding set and, for root, the effective and permitted sets.
    pub capabilities: u64,
    pub last_capability: u32,
    pub no_new_privs: bool,
    /// `(resource, soft, hard)` with RLIM_INFINITY for -1.
    pub rlimits: Vec<(c_int, u64, u64)>,
    /// Installed last, after `no_new_privs`, or before the capabilities are dropped without it; `None` runs
    /// unconfined.
    pub seccomp: Option<SeccompFilters>,
}

/// Everything the container's first process does before exec.
#[derive(Debug)]
pub struct ContainerPlan {
    pub namespaces: c_int,
    pub cgroup_procs: Option<CString>,
    pub loopback_up: bool,
    pub layers_root: CString,
    pub rootfs: CString,
    /// `lowerdir=` relative to `layers_root` (the option page holds 4096 bytes), `upperdir=`, `workdir=`.
    pub overlay_options: CString,
    pub steps: Vec<Step>,
    pub hostname: CString,
    /// `init = true`: the container init program (a host path, opened before the pivot) that becomes PID 1 and
    /// runs the command; the argv passed to [`run_container`] is then the init's.
    pub init: Option<CString>,
    pub process: ProcessPlan,
}

/// Everything a process exec'd into a running container does before exec.
#[derive(Debug)]
pub struct ExecPlan {
    /// Namespaces to join as `(fd, CLONE_NEW* flags)`: the init's pidfd with every type at once.
    pub namespaces: Vec<(RawFd, c_int)>,
    pub cgroup_procs: Option<CString>,
    pub process: ProcessPlan,
}

/// The fds a child starts from: the ends of the parent's pipes.
#[derive(Debug, Clone, Copy)]
pub struct ChildFds {
    pub stdout: RawFd,
    pub stderr: RawFd,
    pub error: RawFd,
}

/// A failure the child reported, decoded in the parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChildFailure {
    pub stage: Stage,
    pub index: u32,
    pub errno: Errno,
}

impl ChildFailure {
    pub const SIZE: usize = 12;

    pub fn decode(bytes: &[u8]) -> Option<ChildFailure> {
        let word = |at: usize| -> Option<[u8; 4]> { bytes.get(at..at + 4)?.try_into().ok() };
        Some(ChildFailure {
            stage: Stage::from_u32(u32::from_ne_bytes(word(0)?))?,
            index: u32::from_ne_bytes(word(4)?),
            errno: i32::from_ne_bytes(word(8)?),
        })
    }

    /// "what failed: why", naming the step of `steps` for mount-stage failures.
    pub fn describe(&self, steps: &[Step]) -> String {
        let what = match self.stage {
            Stage::Step => match steps.get(self.index as usize) {
                Some(step) => step.to_string(),
                None => format!("step {}", self.index),
            },
            Stage::Exec => "executing the command".to_owned(),
            Stage::Init => "starting the container init program".to_owned(),
            stage => format!("{stage:?}"),
        };
        format!("{what}: {}", std::io::Error::from_raw_os_error(self.errno))
    }

    /// Whether the command could not be executed (Docker's 126/127) rather than the setup failing.
    pub fn exit_code(&self) -> c_int {
        match (self.stage, self.errno) {
            (Stage::Exec, libc::ENOENT) => EXIT_NOT_FOUND,
            (Stage::Exec, _) => EXIT_CANNOT_EXECUTE,
            _ => EXIT_SETUP_FAILED,
        }
    }
}

/// Reports a failure on `error_fd` and exits.
pub(crate) fn fail(error_fd: RawFd, stage: Stage, index: usize, errno: Errno) -> ! {
    let failure = ChildFailure { stage, index: index as u32, errno };
    let mut bytes = [0u8; ChildFailure::SIZE];
    bytes[0..4].copy_from_slice(&(stage as u32).to_ne_bytes());
    bytes[4..8].copy_from_slice(&failure.index.to_ne_bytes());
    bytes[8..12].copy_from_slice(&errno.to_ne_bytes());
    let _ = sys::write_all(error_fd, &bytes);
    sys::exit_now(failure.exit_code())
}

/// The container's first process: namespaces are already new (clone flags); builds the root, then becomes the
/// command (or its init). Runs in the cloned child only.
pub fn run_container(plan: &ContainerPlan, argv: &NullTerminated, envp: &NullTerminated, fds: ChildFds) -> ! {
    let error_fd = fds.error;
    let or_fail = |result: sys::SysResult, stage: Stage| {
        if let Err(errno) = result {
            fail(error_fd, stage, 0, errno)
        }
    };
    // First of all: this process is a copy of the supervisor's memory (registry passwords, other containers'
    // environments) and enters the container's PID namespace as its PID 1; until it execs, root in the container
    // with the same uid and capabilities could otherwise read /proc/1/mem and environ.
    or_fail(sys::set_not_dumpable(), Stage::NotDumpable);
    // Modes are exactly as the plan says while building the root; the command gets Docker's 022 below.
    sys::set_umask(0);
    // Into the cgroup before anything else, so that every process and allocation of the container counts.
    if let Some(procs) = &plan.cgroup_procs {
        or_fail(sys::write_file(procs, b"0"), Stage::JoinCgroup);
        // After joining: the container's cgroup becomes the root of its cgroup namespace.
        or_fail(sys::unshare(libc::CLONE_NEWCGROUP), Stage::JoinCgroup);
    }
    or_fail(sys::write_file(OOM_SCORE_ADJ, DEFAULT_OOM_SCORE_ADJ), Stage::OomScoreAdj);
    if plan.loopback_up {
        or_fail(sys::loopback_up(), Stage::LoopbackUp);
    }
    // Before anything the image can steer: only stdio and the error pipe stay open (at 0..=3).
    let fds = take_stdio(fds);
    let error_fd = fds.error;
    // Opened while the host's paths still resolve; the exec of the command closes it (O_CLOEXEC).
    let init_fd = plan.init.as_ref().map(|program| match sys::open(program, libc::O_PATH | libc::O_CLOEXEC, 0) {
        Ok(fd) => fd,
        Err(errno) => fail(error_fd, Stage::Init, 0, errno),
    });
    let or_fail = |result: sys::SysResult, stage: Stage| {
        if let Err(errno) = result {
            fail(error_fd, stage, 0, errno)
        }
    };
    // Nothing mounted from here on may propagate back to the host (or pivot_root refuses a shared root).
    or_fail(sys::mount(None, c"/", None, libc::MS_REC | libc::MS_PRIVATE, None), Stage::PrivatePropagation);
    // lowerdir names are relative to the layers root: that keeps the option string short.
    or_fail(sys::chdir(&plan.layers_root), Stage::MountOverlay);
    let overlay = c"overlay";
    or_fail(
        sys::mount(Some(overlay), &plan.rootfs, Some(overlay), 0, Some(&plan.overlay_options)),
        Stage::MountOverlay,
    );
    or_fail(sys::chdir(&plan.rootfs), Stage::PivotRoot);
    let host_root_name = c".keel-host";
    or_fail(sys::mkdir(host_root_name, 0o700), Stage::PivotRoot);
    // The image (or a writable layer kept from a crashed run) may already have it: it must be a directory, not a
    // symlink that would put the host's root where the image chooses.
    match sys::open(host_root_name, libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC, 0) {
        Ok(fd) => sys::close(fd),
        Err(errno) => fail(error_fd, Stage::PivotRoot, 2, errno),
    }
    or_fail(sys::pivot_root(c".", host_root_name), Stage::PivotRoot);
    or_fail(sys::chdir(c"/"), Stage::PivotRoot);
    // Paths now resolve in the container's root, but the host's is still reachable under HOST_ROOT (bind
    // sources) until `Step::DetachHost`: directories and files the steps create are checked not to be there.
    let root = match ContainerRoot::open() {
        Ok(root) => root,
        Err(errno) => fail(error_fd, Stage::PivotRoot, 1, errno),
    };
    for (index, step) in plan.steps.iter().enumerate() {
        if let Err(errno) = run_step(step, &root) {
            fail(error_fd, Stage::Step, index, errno);
        }
    }
    sys::close(root.fd);
    or_fail(sys::sethostname(plan.hostname.to_bytes()), Stage::Hostname);
    prepare_process(&plan.process, fds.error);
    match init_fd {
        Some(init_fd) => exec_init(init_fd, argv, envp, fds.error),
        None => exec_command(&plan.process.executable_candidates, argv, envp, fds.error),
    }
}

/// A process joining a running container (health probes): enters its namespaces, then forks once more so the
/// command lands in the container's PID namespace; this process waits for it and exits with its status.
pub fn run_exec(plan: &ExecPlan, argv: &NullTerminated, envp: &NullTerminated, fds: ChildFds) -> ! {
    let error_fd = fds.error;
    // A copy of the supervisor's memory too, about to join the container's namespaces (see run_container).
    if let Err(errno) = sys::set_not_dumpable() {
        fail(error_fd, Stage::NotDumpable, 0, errno);
    }
    if let Some(procs) = &plan.cgroup_procs {
        // Mandatory: the cgroup carries the device filter, and a running container's cgroup cannot be gone.
        if let Err(errno) = sys::write_file(procs, b"0") {
            fail(error_fd, Stage::JoinCgroup, 0, errno);
        }
    }
    // Before joining the container's mount namespace: its /proc does not show this process yet.
    if let Err(errno) = sys::write_file(OOM_SCORE_ADJ, DEFAULT_OOM_SCORE_ADJ) {
        fail(error_fd, Stage::OomScoreAdj, 0, errno);
    }
    for (index, (fd, kind)) in plan.namespaces.iter().enumerate() {
        if let Err(errno) = sys::setns(*fd, *kind) {
            fail(error_fd, Stage::JoinNamespace, index, errno);
        }
    }
    let fds = take_stdio(fds);
    match sys::clone_process(0) {
        Err(errno) => fail(fds.error, Stage::Fork, 0, errno),
        Ok(0) => {
            // The probe must not outlive this process, which the supervisor kills on timeout.
            let _ = sys::set_parent_death_signal(libc::SIGKILL);
            prepare_process(&plan.process, fds.error);
            exec_command(&plan.process.executable_candidates, argv, envp, fds.error)
        }
        Ok(pid) => {
            sys::close(fds.error);
            match sys::wait_blocking(pid) {
                Ok(status) => sys::exit_now(sys::status_code(status)),
                Err(_) => sys::exit_now(EXIT_SETUP_FAILED),
            }
        }
    }
}

fn run_step(step: &Step, root: &ContainerRoot) -> sys::SysResult {
    match step {
        Step::Mkdir { path, mode } => root.mkdir(path, *mode),
        Step::Touch { path } => root.touch(path),
        Step::Mount { source, target, fstype, flags, data } => {
            root.at_target(target, |at| sys::mount(source.as_deref(), at, fstype.as_deref(), *flags, data.as_deref()))?;
            if fstype.as_deref() == Some(c"proc") && target.as_c_str() == c"/proc" {
                root.proc_ready.set(true);
            }
            Ok(())
        }
        Step::OptionalMount { source, target, fstype, flags } => {
            let _ = root.at_target(target, |at| sys::mount(Some(source), at, Some(fstype), *flags, None));
            Ok(())
        }
        Step::ReadOnlyTree { target } => root.at_target(target, sys::make_read_only_recursive),
        Step::Mknod { path, mode, major, minor, owner } => {
            sys::mknod(path, *mode, *major, *minor)?;
            match owner {
                Some((uid, gid)) => sys::chown(path, *uid, *gid),
                None => Ok(()),
            }
        }
        Step::Symlink { target, link } => sys::symlink(target, link),
        Step::Mask { path } => mask(path),
        Step::MaskEach { dir, prefix, leaf } => mask_each(dir, prefix, leaf),
        Step::ReadOnly { path } => match sys::mount(Some(path), path, None, libc::MS_BIND | libc::MS_REC, None) {
            Err(libc::ENOENT) => Ok(()),
            Err(errno) => Err(errno),
            Ok(()) => {
                let flags = libc::MS_REMOUNT
                    | libc::MS_BIND
                    | libc::MS_RDONLY
                    | libc::MS_NOSUID
                    | libc::MS_NODEV
                    | libc::MS_NOEXEC;
                sys::mount(None, path, None, flags, None)
            }
        },
        Step::DetachHost => {
            let host = c"/.keel-host";
            sys::umount_detach(host)?;
            sys::rmdir(host)
        }
        Step::ReadOnlyRoot => sys::mount(None, c"/", None, libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY, None),
    }
}

/// /dev/null over a file, an empty read-only tmpfs over a directory; a path this kernel lacks is fine.
fn mask(path: &CStr) -> sys::SysResult {
    match sys::mount(Some(c"/dev/null"), path, None, libc::MS_BIND, None) {
        Ok(()) | Err(libc::ENOENT) => Ok(()),
        Err(libc::ENOTDIR) => {
            let tmpfs = c"tmpfs";
            sys::mount(Some(tmpfs), path, Some(tmpfs), libc::MS_RDONLY, None)
        }
        Err(errno) => Err(errno),
    }
}

/// Masks `{dir}/{name}/{leaf}` for every entry `name` of `dir` starting with `prefix`. The child may not
/// allocate, so the directory is read with getdents64 into a stack buffer and each path is put together in another.
fn mask_each(dir: &CStr, prefix: &CStr, leaf: &CStr) -> sys::SysResult {
    let fd = match sys::open(dir, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC, 0) {
        Ok(fd) => fd,
        Err(libc::ENOENT) => return Ok(()),
        Err(errno) => return Err(errno),
    };
    let result = (|| {
        let mut records = [0u8; 4096];
        loop {
            let length = sys::read_dir_entries(fd, &mut records)?;
            if length == 0 {
                return Ok(());
            }
            for name in sys::dir_entry_names(&records[..length]) {
                if !name.to_bytes().starts_with(prefix.to_bytes()) {
                    continue;
                }
                let mut path = [0u8; libc::PATH_MAX as usize];
                let parts = [dir.to_bytes(), b"/", name.to_bytes(), b"/", leaf.to_bytes(), b"\0"];
                let mut end = 0;
                for part in parts {
                    let slot = path.get_mut(end..end + part.len()).ok_or(libc::ENAMETOOLONG)?;
                    slot.copy_from_slice(part);
                    end += part.len();
                }
                let path = CStr::from_bytes_with_nul(&path[..end]).map_err(|_| libc::EINVAL)?;
                mask(path)?;
            }
        }
    })();
    sys::close(fd);
    result
}

/// Puts `/dev/null`, the stdout pipe and the stderr pipe at 0, 1, 2 and the error pipe at 3 (close-on-exec), and
/// closes every other fd: nothing of the supervisor (sockets, the signalfd, other containers' pipes) leaks in.
fn take_stdio(fds: ChildFds) -> ChildFds {
    let error_fd = fds.error;
    let null = match sys::open(c"/dev/null", libc::O_RDWR | libc::O_CLOEXEC, 0) {
        Ok(fd) => fd,
        Err(errno) => fail(error_fd, Stage::Stdio, 0, errno),
    };
    // Copies above the targets first: a source may itself sit on 0..=3.
    let high = |fd: RawFd| match sys::dup_at_least(fd, 10) {
        Ok(fd) => fd,
        Err(errno) => fail(error_fd, Stage::Stdio, 1, errno),
    };
    let (null, stdout, stderr, error) = (high(null), high(fds.stdout), high(fds.stderr), high(fds.error));
    for (index, (fd, target, cloexec)) in
        [(null, 0, false), (stdout, 1, false), (stderr, 2, false), (error, 3, true)].into_iter().enumerate()
    {
        if let Err(errno) = sys::dup_to(fd, target, cloexec) {
            fail(error, Stage::Stdio, 2 + index, errno);
        }
    }
    if let Err(errno) = sys::close_from(4) {
        fail(3, Stage::Stdio, 6, errno);
    }
    ChildFds { stdout: 1, stderr: 2, error: 3 }
}

/// Limits, workdir, capabilities, user, no_new_privs and the seccomp filter, in the order that keeps each step
/// permitted: rlimits and the bounding set need privileges the user switch gives up; setuid needs CAP_SETUID, which
/// `cap_drop` may remove, so the effective set is narrowed only after it; a filter without no_new_privs needs
/// CAP_SYS_ADMIN, so it goes before all of them.
fn prepare_process(process: &ProcessPlan, error_fd: RawFd) {
    for (index, (resource, soft, hard)) in process.rlimits.iter().enumerate() {
        if let Err(errno) = sys::set_rlimit(*resource, *soft, *hard) {
            fail(error_fd, Stage::Rlimit, index, errno);
        }
    }
    if let Err(errno) = sys::chdir(&process.workdir) {
        fail(error_fd, Stage::Workdir, 0, errno);
    }
    // Without no_new_privs a filter needs CAP_SYS_ADMIN, which only this process still holds: so it goes on
    // before the capabilities and the user are dropped, as runc does. What follows until execve (prctl, capset,
    // setgroups/setgid/setuid, umask, setsid, signal dispositions) is allowed by Docker's profile.
    if !process.no_new_privs {
        install_seccomp(process, error_fd);
    }
    for capability in 0..=process.last_capability {
        if process.capabilities & (1u64 << capability) == 0 {
            if let Err(errno) = sys::drop_bounding_capability(capability) {
                fail(error_fd, Stage::Capabilities, capability as usize, errno);
            }
        }
    }
    if let Err(errno) = sys::set_groups(&process.groups) {
        fail(error_fd, Stage::User, 0, errno);
    }
    if let Err(errno) = sys::set_gid(process.gid) {
        fail(error_fd, Stage::User, 1, errno);
    }
    if let Err(errno) = sys::set_uid(process.uid) {
        fail(error_fd, Stage::User, 2, errno);
    }
    // A non-root uid has just lost every capability (no keep-caps); root keeps exactly the container's set.
    if process.uid == 0 {
        if let Err(errno) = sys::set_capabilities(process.capabilities) {
            fail(error_fd, Stage::Capabilities, 100, errno);
        }
    }
    if let Err(errno) = sys::clear_ambient_capabilities() {
        fail(error_fd, Stage::Capabilities, 101, errno);
    }
    if process.no_new_privs {
        if let Err(errno) = sys::set_no_new_privs() {
            fail(error_fd, Stage::NoNewPrivs, 0, errno);
        }
    }
    sys::set_umask(0o022);
    // With no_new_privs, last, so that the setup above is not subject to the filter; what follows until execve
    // (setsid, signal dispositions, execve itself, and init's fork and waits) is allowed by Docker's profile.
    if process.no_new_privs {
        install_seccomp(process, error_fd);
    }
}

/// Installs the container's seccomp filters, if it has any.
fn install_seccomp(process: &ProcessPlan, error_fd: RawFd) {
    if let Some(filters) = &process.seccomp {
        for (index, program) in filters.programs().iter().enumerate() {
            if let Err(errno) = sys::install_seccomp_filter(program) {
                fail(error_fd, Stage::Seccomp, index, errno);
            }
        }
    }
}

/// Starts a new session (the command leads its own process group, as under `docker run`), resets signals and
/// executes the first candidate that exists.
///
/// As with runc, a command that is found (a regular file with an execute bit) counts as started even if its
/// execve then fails (a bad format, a missing interpreter): the process exits 255 with the reason on its stderr,
/// an exit the restart policy sees. Only a command that is not there (127) or not executable (126) fails the start.
pub(crate) fn exec_command(candidates: &[CString], argv: &NullTerminated, envp: &NullTerminated, error_fd: RawFd) -> ! {
    let _ = sys::setsid();
    sys::reset_signals();
    if let Some(found) = candidates.iter().find(|candidate| sys::is_executable_file(candidate)) {
        let errno = sys::execve(found, argv.as_slice(), envp.as_slice());
        report_failed_exec(found, errno);
        // The error pipe closes unwritten with this exit: the parent takes it as started.
        sys::exit_now(EXIT_EXEC_FAILED_AFTER_FOUND);
    }
    let mut last_errno = libc::ENOENT;
    for candidate in candidates {
        let errno = sys::execve(candidate, argv.as_slice(), envp.as_slice());
        // Like execvp: a missing file means try the next directory; remember a more telling error.
        if errno != libc::ENOENT && errno != libc::ENOTDIR {
            last_errno = errno;
        }
    }
    fail(error_fd, Stage::Exec, 0, last_errno)
}

/// `exec <path>: errno <n>` on stderr (fd 2, the container's), written without allocating.
fn report_failed_exec(path: &CStr, errno: Errno) {
    let mut digits = [0u8; 12];
    let mut at = digits.len();
    let mut value = errno.unsigned_abs();
    loop {
        at -= 1;
        digits[at] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 || at == 0 {
            break;
        }
    }
    for part in [b"exec ".as_slice(), path.to_bytes(), b": errno ", &digits[at..], b"\n"] {
        let _ = sys::write_all(2, part);
    }
}

/// `init = true`: executes the container init (see [`crate::container_init`]) with the error pipe left open at
/// fd 3, where the init's child reports a failed exec of the command as this process would.
fn exec_init(init_fd: RawFd, argv: &NullTerminated, envp: &NullTerminated, error_fd: RawFd) -> ! {
    if let Err(errno) = sys::set_cloexec(error_fd, false) {
        fail(error_fd, Stage::Stdio, 7, errno);
    }
    sys::reset_signals();
    let errno = sys::execveat_fd(init_fd, argv.as_slice(), envp.as_slice());
    fail(error_fd, Stage::Init, 1, errno)
}
