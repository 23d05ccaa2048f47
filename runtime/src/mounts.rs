//! Lays out a container's mounts after `pivot_root` as child steps: Docker's defaults, the user's, masks.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use libc::c_ulong;

use super::child::{Step, HOST_ROOT};

/// Docker's masked paths (moby `oci/defaults.go`), hidden unless privileged.
pub const MASKED_PATHS: [&str; 12] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Docker's masked globs as `(dir, prefix, leaf)` for `{dir}/{prefix}*/{leaf}`, each match masked (moby expands
/// `/sys/devices/system/cpu/cpu*/thermal_throttle` the same way): per-CPU thermal event counters.
pub const MASKED_GLOBS: [(&str, &str, &str); 1] = [("/sys/devices/system/cpu", "cpu", "thermal_throttle")];

/// Docker's read-only paths, read-only unless privileged.
pub const READ_ONLY_PATHS: [&str; 5] = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// The device nodes of Docker's minimal `/dev`: name, major, minor.
pub const DEVICES: [(&str, u32, u32); 6] =
    [("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0)];

/// A mount the container asked for, with host paths as the host sees them.
#[derive(Debug, Clone, PartialEq)]
pub enum UserMount {
    /// A host path or a named volume, bound (recursively) onto `target`.
    Bind {
        host: PathBuf,
        target: String,
        read_only: bool,
        is_file: bool,
    },
    Tmpfs {
        target: String,
        flags: c_ulong,
        data: String,
    },
    /// A host device node, bound onto a file at `target`.
    Device {
        host: PathBuf,
        target: String,
    },
}

/// A path with a NUL byte cannot be handed to the kernel.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("path {path:?} contains a NUL byte")]
pub struct PathNulError {
    pub path: String,
}

/// Collects steps; every mount point and its parents are created first.
#[derive(Debug, Default)]
pub struct MountPlanner {
    pub steps: Vec<Step>,
}

fn cstring(path: &str) -> Result<CString, PathNulError> {
    CString::new(path).map_err(|_| PathNulError { path: path.to_owned() })
}

/// Where a host path is reachable between `pivot_root` and [`Step::DetachHost`].
pub fn via_host_root(host: &Path) -> String {
    format!("{HOST_ROOT}{}", host.display())
}

impl MountPlanner {
    /// mkdir for every proper parent of `path` (`/a/b/c` → `/a`, `/a/b`).
    fn parents(&mut self, path: &str) -> Result<(), PathNulError> {
        let mut prefix = String::new();
        let parts: Vec<&str> = path.split('/').filter(|part| !part.is_empty()).collect();
        for part in parts.iter().take(parts.len().saturating_sub(1)) {
            prefix.push('/');
            prefix.push_str(part);
            self.steps.push(Step::Mkdir { path: cstring(&prefix)?, mode: 0o755 });
        }
        Ok(())
    }

    pub fn dir(&mut self, path: &str, mode: u32) -> Result<(), PathNulError> {
        self.parents(path)?;
        self.steps.push(Step::Mkdir { path: cstring(path)?, mode });
        Ok(())
    }

    pub fn file(&mut self, path: &str) -> Result<(), PathNulError> {
        self.parents(path)?;
        self.steps.push(Step::Touch { path: cstring(path)? });
        Ok(())
    }

    pub fn mount(
        &mut self,
        source: &str,
        target: &str,
        fstype: Option<&str>,
        flags: c_ulong,
        data: Option<&str>,
    ) -> Result<(), PathNulError> {
        self.steps.push(Step::Mount {
            source: Some(cstring(source)?),
            target: cstring(target)?,
            fstype: fstype.map(cstring).transpose()?,
            flags,
            data: data.map(cstring).transpose()?,
        });
        Ok(())
    }

    /// Docker's `/proc`, `/dev` (tmpfs with the standard nodes and links, pts, shm, mqueue) and read-only `/sys`.
    pub fn docker_defaults(&mut self, privileged: bool) -> Result<(), PathNulError> {
        let hardened = libc::MS_NOSUID | libc::MS_NOEXEC | libc::MS_NODEV;
        self.dir("/proc", 0o755)?;
        self.mount("proc", "/proc", Some("proc"), hardened, None)?;
        self.dir("/dev", 0o755)?;
        self.mount(
            "tmpfs",
            "/dev",
            Some("tmpfs"),
            libc::MS_NOSUID | libc::MS_STRICTATIME,
            Some("mode=755,size=65536k"),
        )?;
        self.dir("/dev/pts", 0o755)?;
        self.mount(
            "devpts",
            "/dev/pts",
            Some("devpts"),
            libc::MS_NOSUID | libc::MS_NOEXEC,
            Some("newinstance,ptmxmode=0666,mode=0620,gid=5"),
        )?;
        self.dir("/dev/shm", 0o1777)?;
        self.mount("shm", "/dev/shm", Some("tmpfs"), hardened, Some("mode=1777,size=65536k"))?;
        self.dir("/dev/mqueue", 0o755)?;
        self.mount("mqueue", "/dev/mqueue", Some("mqueue"), hardened, None)?;
        for (name, major, minor) in DEVICES {
            let path = cstring(&format!("/dev/{name}"))?;
            self.steps.push(Step::Mknod { path, mode: libc::S_IFCHR | 0o666, major, minor, owner: None });
        }
        for (link, target) in [
            ("/dev/ptmx", "pts/ptmx"),
            ("/dev/fd", "/proc/self/fd"),
            ("/dev/stdin", "/proc/self/fd/0"),
            ("/dev/stdout", "/proc/self/fd/1"),
            ("/dev/stderr", "/proc/self/fd/2"),
            ("/dev/core", "/proc/kcore"),
        ] {
            self.steps.push(Step::Symlink { target: cstring(target)?, link: cstring(link)? });
        }
        self.dir("/sys", 0o755)?;
        let sys_flags = if privileged { hardened } else { hardened | libc::MS_RDONLY };
        self.mount("sysfs", "/sys", Some("sysfs"), sys_flags, None)?;
        // The container's own cgroup (it is the root of its cgroup namespace); hosts without cgroup2 skip it.
        self.steps.push(Step::OptionalMount {
            source: cstring("cgroup")?,
            target: cstring("/sys/fs/cgroup")?,
            fstype: cstring("cgroup2")?,
            flags: sys_flags,
        });
        Ok(())
    }

    /// The user's volumes, tmpfs mounts and devices, in that order.
    pub fn user_mounts(&mut self, mounts: &[UserMount]) -> Result<(), PathNulError> {
        for mount in mounts {
            match mount {
                UserMount::Bind { host, target, read_only, is_file } => {
                    if *is_file {
                        self.file(target)?;
                    } else {
                        self.dir(target, 0o755)?;
                    }
                    let source = via_host_root(host);
                    self.mount(&source, target, None, libc::MS_BIND | libc::MS_REC, None)?;
                    if *read_only {
                        self.steps.push(Step::ReadOnlyTree { target: cstring(target)? });
                    }
                }
                UserMount::Tmpfs { target, flags, data } => {
                    self.dir(target, 0o755)?;
                    let data = (!data.is_empty()).then_some(data.as_str());
                    self.mount("tmpfs", target, Some("tmpfs"), *flags, data)?;
                }
                UserMount::Device { host, target } => {
                    self.file(target)?;
                    self.mount(&via_host_root(host), target, None, libc::MS_BIND, None)?;
                }
            }
        }
        Ok(())
    }

    /// Detaches the host, then hides and freezes Docker's sensitive paths, then (if asked) the root.
    pub fn finish(&mut self, privileged: bool, read_only_root: bool) -> Result<(), PathNulError> {
        self.steps.push(Step::DetachHost);
        if !privileged {
            for path in MASKED_PATHS {
                self.steps.push(Step::Mask { path: cstring(path)? });
            }
            for (dir, prefix, leaf) in MASKED_GLOBS {
                self.steps.push(Step::MaskEach { dir: cstring(dir)?, prefix: cstring(prefix)?, leaf: cstring(leaf)? });
            }
            for path in READ_ONLY_PATHS {
                self.steps.push(Step::ReadOnly { path: cstring(path)? });
            }
        }
        if read_only_root {
            self.steps.push(Step::ReadOnlyRoot);
        }
        Ok(())
    }
}

/// Docker's `--tmpfs` options: flag words become mount flags, the rest stays data; nosuid, nodev and noexec unless
/// turned off.
pub fn tmpfs_options(options: &str) -> (c_ulong, String) {
    let mut flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    let mut data = Vec::new();
    for option in options.split(',').filter(|option| !option.is_empty()) {
        match option {
            "ro" => flags |= libc::MS_RDONLY,
            "rw" => flags &= !libc::MS_RDONLY,
            "exec" => flags &= !libc::MS_NOEXEC,
            "noexec" => flags |= libc::MS_NOEXEC,
            "suid" => flags &= !libc::MS_NOSUID,
            "nosuid" => flags |= libc::MS_NOSUID,
            "dev" => flags &= !libc::MS_NODEV,
            "nodev" => flags |= libc::MS_NODEV,
            other => data.push(other),
        }
    }
    (flags, data.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn describe(planner: &MountPlanner) -> Vec<String> {
        planner.steps.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn binds_create_parents_and_remount_read_only() {
        let mut planner = MountPlanner::default();
        let bind = UserMount::Bind { host: "/srv/x".into(), target: "/a/b".into(), read_only: true, is_file: false };
        planner.user_mounts(&[bind]).unwrap();
        assert_eq!(
            describe(&planner),
            [
                "creating directory /a",
                "creating directory /a/b",
                "mounting /.keel-host/srv/x (bind) on /a/b",
                "making /a/b and its submounts read-only"
            ]
        );
    }

    #[test]
    fn privileged_containers_see_unmasked_paths() {
        let mut normal = MountPlanner::default();
        normal.finish(false, true).unwrap();
        assert_eq!(normal.steps.len(), 1 + MASKED_PATHS.len() + MASKED_GLOBS.len() + READ_ONLY_PATHS.len() + 1);
        assert!(matches!(normal.steps.last(), Some(Step::ReadOnlyRoot)));
        let mut privileged = MountPlanner::default();
        privileged.finish(true, false).unwrap();
        assert_eq!(describe(&privileged), ["detaching the host root"]);
    }

    #[test]
    fn tmpfs_flag_words_become_flags() {
        let (flags, data) = tmpfs_options("size=64m,exec,mode=1777");
        assert_eq!(data, "size=64m,mode=1777");
        assert_eq!(flags & libc::MS_NOEXEC, 0);
        assert_ne!(flags & libc::MS_NOSUID, 0);
    }
}
