//! The `Container` type the operations (`create`, `start`, `exec`, `kill`, `remove`) are implemented on.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::path::{Path, PathBuf};

use keel_config::containers::resources::Ulimit;

use super::cgroup::ContainerCgroup;
use super::child::{ContainerPlan, ProcessPlan};
use super::mounts::PathNulError;
use super::process_spec::{env_value, executable_candidates, ProcessSpec};
use super::seccomp::SeccompFilters;
use super::users::ResolvedUser;

/// Where the runtime keeps things on the host.
#[derive(Debug, Clone)]
pub struct RuntimeDirs {
    /// Unpacked image layers (the image store's layers root); overlay lowerdirs are relative to it.
    pub layers_root: PathBuf,
    /// `<state>/containers`: one directory per container.
    pub containers_dir: PathBuf,
    /// `<state>/volumes`: named volumes.
    pub volumes_dir: PathBuf,
    /// The cgroup2 mount containers go under (`<root>/keel/<name>`); `None` allows only privileged containers (the device filter needs a cgroup).
    pub cgroup_root: Option<PathBuf>,
    /// The program `init = true` runs as the container's PID 1 (see [`crate::container_init`]).
    pub container_init: PathBuf,
}

/// A container's files on the host, under `<containers>/<name>/`.
#[derive(Debug, Clone)]
pub struct ContainerPaths {
    pub dir: PathBuf,
    /// The overlay's upper and work directories: the container's own writable layer.
    pub upper: PathBuf,
    pub work: PathBuf,
    /// Mount point of the overlay root (mounted inside the container's mount namespace only).
    pub rootfs: PathBuf,
    /// Generated `hostname`, `hosts`, `resolv.conf`, bound into the container's /etc.
    pub etc: PathBuf,
    /// The supervisor's record of the container (state, restart count, manual stop).
    pub state_file: PathBuf,
}

impl ContainerPaths {
    pub fn new(containers_dir: &Path, name: &str) -> ContainerPaths {
        let dir = containers_dir.join(name);
        ContainerPaths {
            upper: dir.join("upper"),
            work: dir.join("work"),
            rootfs: dir.join("rootfs"),
            etc: dir.join("etc"),
            state_file: dir.join("state.json"),
            dir,
        }
    }
}

/// A container ready to start: its resolved process, user, cgroup and the plan its first process follows.
#[derive(Debug)]
pub struct Container {
    pub name: String,
    pub paths: ContainerPaths,
    pub hostname: String,
    pub spec: ProcessSpec,
    pub user: ResolvedUser,
    pub cgroup: Option<ContainerCgroup>,
    /// The image's labels overlaid with the config's, as `docker inspect` shows them.
    pub labels: BTreeMap<String, String>,
    /// The image's STOPSIGNAL, if it has one.
    pub stop_signal: Option<String>,
    pub(crate) plan: ContainerPlan,
    pub(crate) limits: ProcessLimits,
}

/// The process-wide settings of a container that exec'd probes share with its command.
#[derive(Debug, Clone)]
pub(crate) struct ProcessLimits {
    pub capabilities: u64,
    pub last_capability: u32,
    pub no_new_privs: bool,
    pub rlimits: Vec<(libc::c_int, u64, u64)>,
    /// `None`: unconfined.
    pub seccomp: Option<SeccompFilters>,
}

/// Builds a [`ProcessPlan`].
pub(crate) fn process_plan(
    argv: &[String],
    env: &[String],
    workdir: &str,
    user: &ResolvedUser,
    limits: &ProcessLimits,
) -> Result<ProcessPlan, PathNulError> {
    let cstring = |text: &str| CString::new(text).map_err(|_| PathNulError { path: text.to_owned() });
    let program = argv.first().map(String::as_str).unwrap_or_default();
    let candidates = executable_candidates(program, env_value(env, "PATH"));
    Ok(ProcessPlan {
        argv: argv.iter().map(|arg| cstring(arg)).collect::<Result<_, _>>()?,
        env: env.iter().map(|entry| cstring(entry)).collect::<Result<_, _>>()?,
        executable_candidates: candidates.iter().map(|path| cstring(path)).collect::<Result<_, _>>()?,
        workdir: cstring(workdir)?,
        uid: user.uid,
        gid: user.gid,
        groups: user.groups.clone(),
        capabilities: limits.capabilities,
        last_capability: limits.last_capability,
        no_new_privs: limits.no_new_privs,
        rlimits: limits.rlimits.clone(),
        seccomp: limits.seccomp.clone(),
    })
}

/// `ulimits` names to `RLIMIT_*`, -1 as infinity.
pub(crate) fn rlimits(ulimits: &BTreeMap<String, Ulimit>) -> Vec<(libc::c_int, u64, u64)> {
    let value = |limit: i64| u64::try_from(limit).unwrap_or(libc::RLIM_INFINITY);
    ulimits
        .iter()
        .filter_map(|(name, limit)| {
            let resource = match name.as_str() {
                "as" => libc::RLIMIT_AS,
                "core" => libc::RLIMIT_CORE,
                "cpu" => libc::RLIMIT_CPU,
                "data" => libc::RLIMIT_DATA,
                "fsize" => libc::RLIMIT_FSIZE,
                "locks" => libc::RLIMIT_LOCKS,
                "memlock" => libc::RLIMIT_MEMLOCK,
                "msgqueue" => libc::RLIMIT_MSGQUEUE,
                "nice" => libc::RLIMIT_NICE,
                "nofile" => libc::RLIMIT_NOFILE,
                "nproc" => libc::RLIMIT_NPROC,
                "rss" => libc::RLIMIT_RSS,
                "rtprio" => libc::RLIMIT_RTPRIO,
                "rttime" => libc::RLIMIT_RTTIME,
                "sigpending" => libc::RLIMIT_SIGPENDING,
                "stack" => libc::RLIMIT_STACK,
                _ => return None,
            };
            Some((resource as libc::c_int, value(limit.soft), value(limit.hard)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ProcessLimits {
        ProcessLimits { capabilities: 0, last_capability: 40, no_new_privs: true, rlimits: vec![], seccomp: None }
    }

    #[test]
    fn bare_program_names_are_searched_in_path() {
        let user = ResolvedUser { uid: 0, gid: 0, groups: vec![0], home: "/".into() };
        let plan = process_plan(&["sh".into()], &["PATH=/usr/bin:/bin/".into()], "/a/b", &user, &limits()).unwrap();
        assert_eq!(plan.executable_candidates, [c"/usr/bin/sh".to_owned(), c"/bin/sh".to_owned()]);
        let plan = process_plan(&["./run".into()], &[], "/", &user, &limits()).unwrap();
        assert_eq!(plan.executable_candidates, [c"./run".to_owned()]);
    }

    #[test]
    fn unlimited_ulimits_become_infinity() {
        let ulimits = BTreeMap::from([("nofile".to_owned(), Ulimit { soft: 1024, hard: -1 })]);
        assert_eq!(rlimits(&ulimits), [(libc::RLIMIT_NOFILE as libc::c_int, 1024, libc::RLIM_INFINITY)]);
    }
}
