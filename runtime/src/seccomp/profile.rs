//! Docker's seccomp profile format (the JSON of `--security-opt seccomp=…`) and its evaluation for one container:
//! which rules apply given its capabilities, the host's architecture and kernel, and what each rule does.
//!
//! The semantics are moby's (`profiles/seccomp/seccomp_linux.go`) and runc's (`libcontainer/seccomp`): a rule
//! applies only if the container holds every capability of `includes.caps` and none of `excludes.caps`, the host
//! architecture is in `includes.arches` and not in `excludes.arches`, and the kernel is at least
//! `includes.minKernel`. `SCMP_ACT_ERRNO` without `errnoRet` answers `EPERM`. Several conditions on the same
//! argument index become separate rules (any of them matches), as runc does for libseccomp. Names the
//! architecture does not know are skipped, as runc skips names libseccomp cannot resolve.

use keel_config::values::capability::{parse_capability, Capability};
use seccompiler::SeccompAction;
use serde::de::IgnoredAny;
use serde::Deserialize;

/// A profile as Docker's JSON has it. Fields keel does not act on (`architectures`, `archMap`, `comment`) are
/// accepted; the filter is built for the host's architecture only.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub default_action: String,
    #[serde(default)]
    pub default_errno_ret: Option<u32>,
    #[serde(default)]
    pub architectures: Option<IgnoredAny>,
    #[serde(default)]
    pub arch_map: Option<IgnoredAny>,
    #[serde(default)]
    pub flags: Vec<String>,
    #[serde(default)]
    pub listener_path: String,
    #[serde(default)]
    pub syscalls: Vec<SyscallRule>,
}

/// One entry of `syscalls`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyscallRule {
    #[serde(default)]
    pub names: Vec<String>,
    /// The older single-name form.
    #[serde(default)]
    pub name: String,
    pub action: String,
    #[serde(default)]
    pub errno_ret: Option<u32>,
    #[serde(default)]
    pub args: Vec<Arg>,
    #[serde(default)]
    pub includes: Filter,
    #[serde(default)]
    pub excludes: Filter,
}

/// A condition on one argument of the system call.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Arg {
    pub index: u32,
    pub value: u64,
    #[serde(default)]
    pub value_two: u64,
    pub op: String,
}

/// `includes` / `excludes`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Filter {
    #[serde(default)]
    pub caps: Vec<String>,
    #[serde(default)]
    pub arches: Vec<String>,
    #[serde(default)]
    pub min_kernel: String,
}

/// What a profile's rules are evaluated against.
#[derive(Debug, Clone, Copy)]
pub struct Context {
    /// The container's capabilities, bit N = capability N (Docker uses the bounding set).
    pub capabilities: u64,
    /// The host architecture in Docker's (Go's) words: `amd64`, `arm64`.
    pub arch: &'static str,
    /// The running kernel's `(major, minor)`.
    pub kernel: (u32, u32),
}

/// A comparison of a system call argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Ne,
    Lt,
    Le,
    Eq,
    Ge,
    Gt,
    /// `(arg & mask) == value`.
    MaskedEq {
        mask: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Condition {
    pub index: u8,
    pub op: Op,
    pub value: u64,
}

/// One rule for one system call: `action` when every condition holds (always, without conditions).
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub syscall: i64,
    pub action: SeccompAction,
    pub conditions: Vec<Condition>,
}

/// A profile evaluated for one container: the rules that apply, and what every other call gets.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    pub default: SeccompAction,
    pub rules: Vec<Rule>,
}

/// Why a profile cannot be used; `at` names the entry (`syscalls[3]`, `defaultAction`).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProfileError {
    #[error(
        "{at}: unknown action {action:?}; keel knows SCMP_ACT_ALLOW, SCMP_ACT_ERRNO, SCMP_ACT_KILL, \
         SCMP_ACT_KILL_THREAD, SCMP_ACT_KILL_PROCESS, SCMP_ACT_TRAP, SCMP_ACT_TRACE, SCMP_ACT_LOG"
    )]
    UnknownAction { at: String, action: String },
    #[error(
        "{at}: unknown op {op:?}; keel knows SCMP_CMP_NE, SCMP_CMP_LT, SCMP_CMP_LE, SCMP_CMP_EQ, SCMP_CMP_GE, \
         SCMP_CMP_GT, SCMP_CMP_MASKED_EQ"
    )]
    UnknownOp { at: String, op: String },
    #[error("{at}: argument index {index} is out of range; system calls have arguments 0 to 5")]
    ArgIndex { at: String, index: u32 },
    #[error("{at}: minKernel {text:?} is not a kernel version like 4.8")]
    MinKernel { at: String, text: String },
    #[error("{at}: no system call names")]
    NoNames { at: String },
    #[error("{what} is not supported by keel")]
    Unsupported { what: String },
}

/// `SCMP_ACT_*` as seccompiler's action; ERRNO and TRACE carry `errno` (EPERM when the profile gives none).
fn action(at: &str, name: &str, errno: Option<u32>) -> Result<SeccompAction, ProfileError> {
    let errno = errno.unwrap_or(libc::EPERM as u32);
    Ok(match name {
        "SCMP_ACT_ALLOW" => SeccompAction::Allow,
        "SCMP_ACT_ERRNO" => SeccompAction::Errno(errno),
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => SeccompAction::KillThread,
        "SCMP_ACT_KILL_PROCESS" => SeccompAction::KillProcess,
        "SCMP_ACT_TRAP" => SeccompAction::Trap,
        "SCMP_ACT_TRACE" => SeccompAction::Trace(errno),
        "SCMP_ACT_LOG" => SeccompAction::Log,
        _ => return Err(ProfileError::UnknownAction { at: at.to_owned(), action: name.to_owned() }),
    })
}

fn condition(at: &str, arg: &Arg) -> Result<Condition, ProfileError> {
    let index = u8::try_from(arg.index)
        .ok()
        .filter(|index| *index < 6)
        .ok_or_else(|| ProfileError::ArgIndex { at: at.to_owned(), index: arg.index })?;
    let (op, value) = match arg.op.as_str() {
        "SCMP_CMP_NE" => (Op::Ne, arg.value),
        "SCMP_CMP_LT" => (Op::Lt, arg.value),
        "SCMP_CMP_LE" => (Op::Le, arg.value),
        "SCMP_CMP_EQ" => (Op::Eq, arg.value),
        "SCMP_CMP_GE" => (Op::Ge, arg.value),
        "SCMP_CMP_GT" => (Op::Gt, arg.value),
        // libseccomp's masked compare: `value` is the mask, `valueTwo` what the masked argument must equal.
        "SCMP_CMP_MASKED_EQ" => (Op::MaskedEq { mask: arg.value }, arg.value_two),
        _ => return Err(ProfileError::UnknownOp { at: at.to_owned(), op: arg.op.clone() }),
    };
    Ok(Condition { index, op, value })
}

/// `"4.8"` as `(4, 8)`.
fn kernel_version(text: &str) -> Option<(u32, u32)> {
    let mut parts = text.trim().splitn(3, '.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().map(|minor| minor.parse().ok()).unwrap_or(Some(0))?;
    Some((major, minor))
}

/// The running kernel's version from `/proc/sys/kernel/osrelease` (`6.1.0-13-amd64` → (6, 1)).
pub fn running_kernel() -> (u32, u32) {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .and_then(|release| {
            let numeric: String = release.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
            kernel_version(&numeric)
        })
        .unwrap_or((0, 0))
}

fn holds(capabilities: u64, name: &str) -> bool {
    match parse_capability(name) {
        Ok(Capability::Number(number)) => number < 64 && capabilities & (1u64 << number) != 0,
        // A name keel does not know is a capability the container does not hold.
        _ => false,
    }
}

/// Whether `rule` applies in `context` (moby's includes/excludes).
fn applies(at: &str, rule: &SyscallRule, context: &Context) -> Result<bool, ProfileError> {
    let includes = &rule.includes;
    if !includes.caps.iter().all(|cap| holds(context.capabilities, cap)) {
        return Ok(false);
    }
    if !includes.arches.is_empty() && !includes.arches.iter().any(|arch| arch == context.arch) {
        return Ok(false);
    }
    if !includes.min_kernel.is_empty() {
        let min = kernel_version(&includes.min_kernel)
            .ok_or_else(|| ProfileError::MinKernel { at: at.to_owned(), text: includes.min_kernel.clone() })?;
        if context.kernel < min {
            return Ok(false);
        }
    }
    let excludes = &rule.excludes;
    if excludes.caps.iter().any(|cap| holds(context.capabilities, cap)) {
        return Ok(false);
    }
    if excludes.arches.iter().any(|arch| arch == context.arch) {
        return Ok(false);
    }
    if !excludes.min_kernel.is_empty() {
        let min = kernel_version(&excludes.min_kernel)
            .ok_or_else(|| ProfileError::MinKernel { at: at.to_owned(), text: excludes.min_kernel.clone() })?;
        if context.kernel >= min {
            return Ok(false);
        }
    }
    Ok(true)
}

impl SyscallRule {
    /// `names` and the older `name`.
    pub fn all_names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(String::as_str).chain(Some(self.name.as_str()).filter(|name| !name.is_empty()))
    }
}

impl Profile {
    /// Checks every entry and returns the ones that apply in `context` (for a runtime that takes the OCI form,
    /// which has no `includes`/`excludes`, such as runc in the start bench).
    pub fn applicable(&self, context: &Context) -> Result<Vec<&SyscallRule>, ProfileError> {
        self.check()?;
        let mut applicable = Vec::new();
        for (position, rule) in self.syscalls.iter().enumerate() {
            let at = format!("syscalls[{position}]");
            action(&at, &rule.action, rule.errno_ret)?;
            for arg in &rule.args {
                condition(&at, arg)?;
            }
            if rule.all_names().next().is_none() {
                return Err(ProfileError::NoNames { at });
            }
            if applies(&at, rule, context)? {
                applicable.push(rule);
            }
        }
        Ok(applicable)
    }

    fn check(&self) -> Result<(), ProfileError> {
        if !self.flags.is_empty() {
            return Err(ProfileError::Unsupported { what: format!("flags {:?}", self.flags) });
        }
        if !self.listener_path.is_empty() {
            return Err(ProfileError::Unsupported { what: "listenerPath (SCMP_ACT_NOTIFY)".to_owned() });
        }
        action("defaultAction", &self.default_action, self.default_errno_ret).map(drop)
    }

    /// Evaluates the profile for a container; `syscall_number` resolves names for the host architecture. Every
    /// entry is checked, applying or not: a wrong profile is wrong on every host.
    pub fn rules(
        &self,
        context: &Context,
        syscall_number: impl Fn(&str) -> Option<i64>,
    ) -> Result<Rules, ProfileError> {
        let default = action("defaultAction", &self.default_action, self.default_errno_ret)?;
        let mut rules = Vec::new();
        for (position, rule) in self.applicable(context)?.into_iter().enumerate() {
            let at = format!("applicable rule {position}");
            let rule_action = action(&at, &rule.action, rule.errno_ret)?;
            let conditions = rule.args.iter().map(|arg| condition(&at, arg)).collect::<Result<Vec<_>, _>>()?;
            let same_index_twice =
                conditions.iter().enumerate().any(|(i, a)| conditions[..i].iter().any(|b| b.index == a.index));
            let groups: Vec<Vec<Condition>> = if same_index_twice {
                conditions.iter().map(|condition| vec![*condition]).collect()
            } else {
                vec![conditions]
            };
            for syscall in rule.all_names().filter_map(&syscall_number) {
                for group in &groups {
                    rules.push(Rule { syscall, action: rule_action.clone(), conditions: group.clone() });
                }
            }
        }
        Ok(Rules { default, rules })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTEXT: Context = Context { capabilities: 0, arch: "amd64", kernel: (6, 1) };

    fn number(name: &str) -> Option<i64> {
        ["read", "clone", "mkdir", "ptrace"].iter().position(|known| *known == name).map(|n| n as i64)
    }

    fn parse(json: &str) -> Profile {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn errno_defaults_to_eperm_and_unknown_names_are_skipped() {
        let profile = parse(
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
                {"names": ["read", "no_such_call"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}"#,
        );
        let rules = profile.rules(&CONTEXT, number).unwrap();
        assert_eq!(rules.default, SeccompAction::Errno(1));
        assert_eq!(
            rules.rules,
            [
                Rule { syscall: 0, action: SeccompAction::Allow, conditions: vec![] },
                Rule { syscall: 2, action: SeccompAction::Errno(13), conditions: vec![] }
            ]
        );
    }

    #[test]
    fn capabilities_arches_and_kernel_select_rules() {
        let profile = parse(
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1, "syscalls": [
                {"names": ["clone"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
                {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 2114060288, "op": "SCMP_CMP_MASKED_EQ"}],
                 "excludes": {"caps": ["CAP_SYS_ADMIN"], "arches": ["s390x"]}},
                {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4.8"}},
                {"names": ["read"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["arm64"]}}]}"#,
        );
        let masked = Condition { index: 0, op: Op::MaskedEq { mask: 0x7e02_0000 }, value: 0 };
        let rules = profile.rules(&CONTEXT, number).unwrap().rules;
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].conditions, [masked]);
        assert_eq!(rules[1].syscall, 3);
        let admin = Context { capabilities: 1 << 21, ..CONTEXT };
        let rules = profile.rules(&admin, number).unwrap().rules;
        assert_eq!(rules[0], Rule { syscall: 1, action: SeccompAction::Allow, conditions: vec![] });
        let old = Context { kernel: (4, 4), ..CONTEXT };
        assert!(profile.rules(&old, number).unwrap().rules.iter().all(|rule| rule.syscall != 3));
    }

    #[test]
    fn conditions_on_the_same_argument_become_separate_rules() {
        let profile = parse(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_KILL",
                "args": [{"index": 1, "value": 1, "op": "SCMP_CMP_EQ"}, {"index": 1, "value": 2, "op": "SCMP_CMP_EQ"}]}]}"#,
        );
        let rules = profile.rules(&CONTEXT, number).unwrap().rules;
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[1].conditions, [Condition { index: 1, op: Op::Eq, value: 2 }]);
    }

    #[test]
    fn unknown_actions_and_ops_are_refused() {
        let bad_action = parse(
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_NOTIFY"}]}"#,
        );
        let error = bad_action.rules(&CONTEXT, number).unwrap_err();
        assert!(error.to_string().starts_with("syscalls[0]: unknown action \"SCMP_ACT_NOTIFY\""), "{error}");
        let bad_op = parse(
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW",
                "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_SOMETIMES"}]}]}"#,
        );
        assert!(matches!(bad_op.rules(&CONTEXT, number), Err(ProfileError::UnknownOp { .. })));
        assert!(matches!(
            parse(r#"{"defaultAction": "ALLOW"}"#).rules(&CONTEXT, number),
            Err(ProfileError::UnknownAction { .. })
        ));
    }

    #[test]
    fn kernel_versions() {
        assert_eq!(kernel_version("4.8"), Some((4, 8)));
        assert_eq!(kernel_version("6.1.0"), Some((6, 1)));
        assert_eq!(kernel_version("six"), None);
    }
}
