//! The `Container` type the operations (`create`, `start`, `exec`, `kill`, `remove`) are implemented on.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::path::{Path, PathBuf};

use keel_config::containers::resources::{Ulimit, DOCKER_DEFAULT_ULIMITS};

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
    /// The host's `/etc`, whose `hosts` and `resolv.conf` containers get copies of (Docker's rules).
    pub host_etc: PathBuf,
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

/// `ulimits` names to `RLIMIT_*`, -1 as infinity, over Docker's defaults ([`DOCKER_DEFAULT_ULIMITS`]) for the names
/// `ulimits` leaves out. Every container gets them explicitly: otherwise it would inherit the supervisor's own
/// (PID 1's are the kernel's, `nofile` 1024:4096).
///
/// `own_hard_limit` is `Some` when the supervisor cannot raise a hard limit (no `CAP_SYS_RESOURCE`: `keel
/// supervise` in a restricted development container, never PID 1): Docker's defaults are then capped at the
/// supervisor's own hard limits rather than failing every container; what the config asks for is never capped.
pub(crate) fn rlimits(
    name: &str,
    ulimits: &BTreeMap<String, Ulimit>,
    own_hard_limit: Option<&dyn Fn(libc::c_int) -> Option<u64>>,
) -> Vec<(libc::c_int, u64, u64)> {
    let value = |limit: i64| u64::try_from(limit).unwrap_or(libc::RLIM_INFINITY);
    let mut effective: BTreeMap<&str, (Ulimit, bool)> =
        DOCKER_DEFAULT_ULIMITS.into_iter().map(|(name, limit)| (name, (limit, true))).collect();
    effective.extend(ulimits.iter().map(|(name, limit)| (name.as_str(), (*limit, false))));
    effective
        .into_iter()
        .filter_map(|(limit_name, (limit, is_default))| {
            let resource = resource_of(limit_name)?;
            let (mut soft, mut hard) = (value(limit.soft), value(limit.hard));
            if let (true, Some(own_hard)) = (is_default, own_hard_limit.and_then(|own| own(resource))) {
                if hard > own_hard {
                    // Debug only: it happens on every start on such a host, and `keel run`'s stderr is the container's.
                    log::debug!(
                        "container {name}: {limit_name} limited to {own_hard}, below Docker's default: the supervisor \
                         cannot raise its hard limit (no CAP_SYS_RESOURCE)"
                    );
                    (soft, hard) = (soft.min(own_hard), own_hard);
                }
            }
            Some((resource, soft, hard))
        })
        .collect()
}

/// The `RLIMIT_*` of a `ulimits` name.
fn resource_of(name: &str) -> Option<libc::c_int> {
    let resource = match name {
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
    Some(resource as libc::c_int)
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
    fn ulimits_override_dockers_defaults_by_name_and_unlimited_becomes_infinity() {
        let (core, nofile, nproc) =
            (libc::RLIMIT_CORE as libc::c_int, libc::RLIMIT_NOFILE as libc::c_int, libc::RLIMIT_NPROC as libc::c_int);
        let infinity = libc::RLIM_INFINITY;
        let core_and_nproc = [(core, infinity, infinity), (nproc, infinity, infinity)];
        let docker = rlimits("t", &BTreeMap::new(), None);
        assert_eq!(docker, [core_and_nproc[0], (nofile, 1 << 20, 1 << 20), core_and_nproc[1]]);
        let ulimits = BTreeMap::from([("nofile".to_owned(), Ulimit { soft: 1024, hard: -1 })]);
        assert_eq!(rlimits("t", &ulimits, None), [core_and_nproc[0], (nofile, 1024, infinity), core_and_nproc[1]]);
        // A supervisor that cannot raise hard limits caps Docker's defaults, never what the config asks for.
        let own_hard: &dyn Fn(libc::c_int) -> Option<u64> = &|_| Some(4096);
        let capped = [(core, 4096, 4096), (nofile, 1024, infinity), (nproc, 4096, 4096)];
        assert_eq!(rlimits("t", &ulimits, Some(own_hard)), capped);
    }
}
