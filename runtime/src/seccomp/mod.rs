//! A container's system call filter: Docker's default profile (or `unconfined`, or a Docker JSON profile file),
//! evaluated against the container's capabilities and compiled into classic BPF with `seccompiler` before the
//! clone, so that the child only hands ready buffers to `seccomp(2)` ([`super::sys::install_seccomp_filter`]).
//!
//! seccompiler builds filters with one action for all its matching rules, while a Docker profile mixes actions
//! (allow most calls, answer `clone3` with `ENOSYS`, deny the rest with `EPERM`). So a profile becomes a stack:
//! one filter that lets through every call some rule names (under that rule's conditions) and gives the default
//! action to the rest, and one filter per other action that gives it to its rules' calls and lets everything else
//! through. The kernel runs every filter of the stack and keeps the most severe answer (seccomp(2): `ALLOW` is the
//! least severe), so a call gets its rule's action, and the default when no rule matches.

mod default_profile;
pub mod profile;
#[cfg(target_arch = "x86_64")]
mod syscalls_x86_64;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use keel_config::bounded_file::{read_file_bounded, BoundedReadError, MAX_OUTSIDE_FILE};
use keel_config::Seccomp;
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule, TargetArch,
};

pub use default_profile::{docker_default, CLONE_NAMESPACE_FLAGS};
use profile::{Context, Op, Profile, ProfileError, Rules};

/// A profile file larger than this is refused before it is read (Docker's default is 13 KiB).
pub const MAX_PROFILE_BYTES: u64 = MAX_OUTSIDE_FILE;

/// Why a container's filter could not be built; the container is not created.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("container {container}: reading seccomp profile {path}")]
    Read {
        container: String,
        path: PathBuf,
        #[source]
        source: BoundedReadError,
    },
    #[error("container {container}: seccomp profile {path} is not a Docker seccomp profile")]
    Parse {
        container: String,
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("container {container}: seccomp profile {profile}")]
    Profile {
        container: String,
        /// The file, or `default`.
        profile: String,
        #[source]
        source: ProfileError,
    },
    #[error("container {container}: compiling seccomp profile {profile}")]
    Compile {
        container: String,
        profile: String,
        #[source]
        source: seccompiler::BackendError,
    },
    #[error("container {container}: keel has no system call table for {arch}; use seccomp = \"unconfined\"")]
    UnsupportedArch { container: String, arch: &'static str },
}

/// The compiled filters of one container, installed in order; shared by its command and exec'd probes.
#[derive(Clone, Default)]
pub struct SeccompFilters(Arc<Vec<BpfProgram>>);

impl SeccompFilters {
    pub fn programs(&self) -> &[BpfProgram] {
        &self.0
    }
}

impl fmt::Debug for SeccompFilters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lengths: Vec<usize> = self.0.iter().map(Vec::len).collect();
        write!(f, "SeccompFilters(instructions {lengths:?})")
    }
}

/// The filters for container `name`, or `None` when it runs unconfined (`unconfined`, or `privileged` as in
/// Docker). `capabilities` is the container's set, against which the profile's `includes.caps` are evaluated.
pub fn container_filters(
    name: &str,
    setting: &Seccomp,
    privileged: bool,
    capabilities: u64,
) -> Result<Option<SeccompFilters>, SeccompError> {
    let (profile, label) = match setting {
        _ if privileged => return Ok(None),
        Seccomp::Unconfined => return Ok(None),
        Seccomp::Default => (docker_default(), "default".to_owned()),
        Seccomp::Profile(path) => (read_profile(name, Path::new(path))?, path.clone()),
    };
    let (arch, go_arch) = native_arch(name)?;
    let context = Context { capabilities, arch: go_arch, kernel: profile::running_kernel() };
    let rules = profile.rules(&context, syscall_number).map_err(|source| SeccompError::Profile {
        container: name.to_owned(),
        profile: label.clone(),
        source,
    })?;
    let programs = compile(&rules, arch).map_err(|source| SeccompError::Compile {
        container: name.to_owned(),
        profile: label,
        source,
    })?;
    Ok(Some(SeccompFilters(Arc::new(programs))))
}

/// Reads and parses a profile file, refusing one over [`MAX_PROFILE_BYTES`] before reading it.
fn read_profile(name: &str, path: &Path) -> Result<Profile, SeccompError> {
    let text = read_file_bounded(path, MAX_PROFILE_BYTES).map_err(|source| SeccompError::Read {
        container: name.to_owned(),
        path: path.to_owned(),
        source,
    })?;
    serde_json::from_slice(&text).map_err(|source| SeccompError::Parse {
        container: name.to_owned(),
        path: path.to_owned(),
        source,
    })
}

#[cfg(target_arch = "x86_64")]
fn native_arch(_name: &str) -> Result<(TargetArch, &'static str), SeccompError> {
    Ok((TargetArch::x86_64, "amd64"))
}

#[cfg(not(target_arch = "x86_64"))]
fn native_arch(name: &str) -> Result<(TargetArch, &'static str), SeccompError> {
    Err(SeccompError::UnsupportedArch { container: name.to_owned(), arch: std::env::consts::ARCH })
}

#[cfg(target_arch = "x86_64")]
fn syscall_number(name: &str) -> Option<i64> {
    let table = &syscalls_x86_64::SYSCALLS;
    table.binary_search_by(|(known, _)| (*known).cmp(name)).ok().map(|index| table[index].1)
}

#[cfg(not(target_arch = "x86_64"))]
fn syscall_number(_name: &str) -> Option<i64> {
    None
}

fn seccompiler_condition(condition: &profile::Condition) -> Result<SeccompCondition, seccompiler::BackendError> {
    let op = match condition.op {
        Op::Ne => SeccompCmpOp::Ne,
        Op::Lt => SeccompCmpOp::Lt,
        Op::Le => SeccompCmpOp::Le,
        Op::Eq => SeccompCmpOp::Eq,
        Op::Ge => SeccompCmpOp::Ge,
        Op::Gt => SeccompCmpOp::Gt,
        Op::MaskedEq { mask } => SeccompCmpOp::MaskedEq(mask),
    };
    // Whole 64-bit arguments, as libseccomp compares them on 64-bit architectures.
    SeccompCondition::new(condition.index, SeccompCmpArgLen::Qword, op, condition.value)
}

/// The calls `rules` name with their conditions: an empty chain matches the call whatever its arguments, and an
/// unconditional rule wins over conditional ones for the same call.
fn chains<'a>(
    rules: impl Iterator<Item = &'a profile::Rule>,
) -> Result<BTreeMap<i64, Vec<SeccompRule>>, seccompiler::BackendError> {
    let mut chains: BTreeMap<i64, Option<Vec<SeccompRule>>> = BTreeMap::new();
    for rule in rules {
        let entry = chains.entry(rule.syscall).or_insert_with(|| Some(Vec::new()));
        if rule.conditions.is_empty() {
            *entry = None;
        } else if let Some(chain) = entry {
            let conditions = rule.conditions.iter().map(seccompiler_condition).collect::<Result<Vec<_>, _>>()?;
            chain.push(SeccompRule::new(conditions)?);
        }
    }
    Ok(chains.into_iter().map(|(syscall, chain)| (syscall, chain.unwrap_or_default())).collect())
}

/// The stack of filters for `rules` (module docs), in installation order.
pub fn compile(rules: &Rules, arch: TargetArch) -> Result<Vec<BpfProgram>, seccompiler::BackendError> {
    let mut programs = Vec::new();
    if rules.default != SeccompAction::Allow {
        let filter =
            SeccompFilter::new(chains(rules.rules.iter())?, rules.default.clone(), SeccompAction::Allow, arch)?;
        programs.push(filter.try_into()?);
    }
    let mut actions: Vec<&SeccompAction> = Vec::new();
    for rule in &rules.rules {
        if rule.action != SeccompAction::Allow && !actions.contains(&&rule.action) {
            actions.push(&rule.action);
        }
    }
    for action in actions {
        let chains = chains(rules.rules.iter().filter(|rule| rule.action == *action))?;
        let filter = SeccompFilter::new(chains, SeccompAction::Allow, action.clone(), arch)?;
        programs.push(filter.try_into()?);
    }
    Ok(programs)
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    fn default_rules(capabilities: u64) -> Rules {
        let context = Context { capabilities, arch: "amd64", kernel: (6, 1) };
        match docker_default().rules(&context, syscall_number) {
            Ok(rules) => rules,
            Err(error) => panic!("{error}"),
        }
    }

    fn actions_for(rules: &Rules, name: &str) -> Vec<(SeccompAction, usize)> {
        let number = syscall_number(name).unwrap_or(-1);
        rules
            .rules
            .iter()
            .filter(|rule| rule.syscall == number)
            .map(|r| (r.action.clone(), r.conditions.len()))
            .collect()
    }

    #[test]
    fn the_table_is_sorted_and_resolves_names() {
        let table = &syscalls_x86_64::SYSCALLS;
        assert!(table.windows(2).all(|pair| pair[0].0 < pair[1].0));
        assert_eq!(syscall_number("read"), Some(0));
        assert_eq!(syscall_number("keyctl"), Some(250));
        assert_eq!(syscall_number("chown32"), None);
    }

    #[test]
    fn default_profile_denies_with_eperm_and_clone3_with_enosys() {
        let rules = default_rules(crate::capabilities::capability_mask(false, &[], &[], 40));
        assert_eq!(rules.default, SeccompAction::Errno(libc::EPERM as u32));
        assert!(actions_for(&rules, "keyctl").is_empty());
        assert!(actions_for(&rules, "unshare").is_empty());
        assert!(actions_for(&rules, "mount").is_empty());
        assert_eq!(actions_for(&rules, "clone3"), [(SeccompAction::Errno(libc::ENOSYS as u32), 0)]);
        assert_eq!(actions_for(&rules, "clone"), [(SeccompAction::Allow, 1)]);
        assert_eq!(actions_for(&rules, "socket"), [(SeccompAction::Allow, 1)]);
        assert_eq!(actions_for(&rules, "personality").len(), 5);
        assert_eq!(actions_for(&rules, "arch_prctl"), [(SeccompAction::Allow, 0)]);
        // CAP_SYS_CHROOT is in Docker's default set.
        assert_eq!(actions_for(&rules, "chroot"), [(SeccompAction::Allow, 0)]);
        assert!(actions_for(&rules, "ptrace").iter().all(|(action, _)| *action == SeccompAction::Allow));
    }

    #[test]
    fn sys_admin_allows_namespaces_and_clone3() {
        let rules = default_rules(1 << crate::capabilities::CAP_SYS_ADMIN);
        assert_eq!(actions_for(&rules, "unshare"), [(SeccompAction::Allow, 0)]);
        assert_eq!(actions_for(&rules, "clone"), [(SeccompAction::Allow, 0)]);
        assert_eq!(actions_for(&rules, "clone3"), [(SeccompAction::Allow, 0)]);
        assert!(actions_for(&rules, "reboot").is_empty());
    }

    #[test]
    fn the_default_compiles_to_an_allow_filter_and_an_enosys_filter() {
        let rules = default_rules(crate::capabilities::capability_mask(false, &[], &[], 40));
        let programs = compile(&rules, TargetArch::x86_64).unwrap();
        assert_eq!(programs.len(), 2);
        assert!(programs.iter().all(|program| program.len() < 4096));
        let admin = compile(&default_rules(u64::MAX), TargetArch::x86_64).unwrap();
        assert_eq!(admin.len(), 1, "with CAP_SYS_ADMIN nothing answers ENOSYS");
    }

    #[test]
    fn privileged_and_unconfined_get_no_filter() {
        assert!(container_filters("c", &Seccomp::Unconfined, false, 0).unwrap().is_none());
        assert!(container_filters("c", &Seccomp::Default, true, 0).unwrap().is_none());
        assert!(container_filters("c", &Seccomp::Default, false, 0).unwrap().is_some());
    }

    #[test]
    fn profile_files_are_bounded_and_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.json");
        std::fs::write(&path, "{\"defaultAction\": 3}").unwrap();
        let setting = Seccomp::Profile(path.display().to_string());
        let error = container_filters("web", &setting, false, 0).unwrap_err();
        assert!(error.to_string().contains(&format!("container web: seccomp profile {}", path.display())), "{error}");
        std::fs::write(&path, vec![b' '; MAX_PROFILE_BYTES as usize + 1]).unwrap();
        let error = container_filters("web", &setting, false, 0).unwrap_err();
        assert!(matches!(&error, SeccompError::Read { source: BoundedReadError::TooLarge { .. }, .. }), "{error:?}");
    }
}
