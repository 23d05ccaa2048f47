//! What a container's process inherits, checked against what `docker run` gives: `no_new_privs`, rlimits,
//! `oom_score_adj`, capabilities and groups, read from the container's own `/proc/self`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use keel_fixtures::containers::{Outcome, TestHost};

const CACHE: &str = env!("CARGO_TARGET_TMPDIR");

/// The value of `field` in the `/proc/self/status` lines a container printed.
fn status_field<'a>(out: &'a Outcome, field: &str) -> &'a str {
    let prefix = format!("{field}:");
    let line = out.stdout.lines().find(|line| line.starts_with(&prefix));
    line.unwrap_or_else(|| panic!("no {field} in {:?} (stderr {:?})", out.stdout, out.stderr))[prefix.len()..].trim()
}

/// `Max open files  1024  2048  files` from `/proc/self/limits` as ("1024", "2048").
fn limit<'a>(out: &'a Outcome, name: &str) -> (&'a str, &'a str) {
    let line = out.stdout.lines().find(|line| line.starts_with(name));
    let line = line.unwrap_or_else(|| panic!("no {name} in {:?} (stderr {:?})", out.stdout, out.stderr));
    let mut values = line[name.len()..].split_whitespace();
    (values.next().unwrap(), values.next().unwrap())
}

#[test]
fn no_new_privileges_is_off_by_default_and_seccomp_stays_on() {
    let host = TestHost::new(Path::new(CACHE));
    // `unshare -U` needs no capability from the kernel: only the seccomp filter refuses it.
    let script = "grep -E 'NoNewPrivs|Seccomp' /proc/self/status; unshare -U true 2>/dev/null; echo unshare=$?";
    let default = host.shell("nnp", script, "");
    assert_eq!(status_field(&default, "NoNewPrivs"), "0", "Docker sets no_new_privs only when asked");
    assert_eq!(status_field(&default, "Seccomp"), "2", "filter mode");
    assert!(default.stdout.contains("unshare=1"), "{}", default.stdout);

    // Without no_new_privs the filter must go on while the process still holds CAP_SYS_ADMIN: a non-root user's
    // container starts and is filtered too.
    let user = host.shell("nnp", script, "user = \"1000\"");
    assert_eq!(user.code, 0, "stderr: {}", user.stderr);
    assert_eq!((status_field(&user, "NoNewPrivs"), status_field(&user, "Seccomp")), ("0", "2"));
    assert!(user.stdout.contains("unshare=1"), "{}", user.stdout);

    let asked = host.shell("nnp", script, "no_new_privileges = true\nuser = \"1000\"");
    assert_eq!((status_field(&asked, "NoNewPrivs"), status_field(&asked, "Seccomp")), ("1", "2"));
    assert!(asked.stdout.contains("unshare=1"), "{}", asked.stdout);
}

/// What a container gets for Docker's default `docker` (both limits) of the `/proc/self/limits` row `row`: that,
/// unless this process cannot raise hard limits (no CAP_SYS_RESOURCE: a restricted development container; PID 1
/// always can) and its own hard limit is lower, which then caps it.
fn docker_default(row: &str, docker: &str) -> (String, String) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let effective = status.lines().find_map(|line| line.strip_prefix("CapEff:")).unwrap();
    let can_raise = u64::from_str_radix(effective.trim(), 16).unwrap() & (1 << 24) != 0;
    let as_number = |value: &str| if value == "unlimited" { u64::MAX } else { value.parse().unwrap() };
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits.lines().find(|line| line.starts_with(row)).unwrap();
    let own_hard = line[row.len()..].split_whitespace().nth(1).unwrap().to_owned();
    if !can_raise && as_number(&own_hard) < as_number(docker) {
        (own_hard.clone(), own_hard)
    } else {
        (docker.to_owned(), docker.to_owned())
    }
}

#[test]
fn ulimits_default_to_containerds_and_the_config_overrides_them() {
    // Soft limits below the hard ones, so that a container that merely inherited this process's limits shows.
    for (resource, soft) in [(libc::RLIMIT_NOFILE, 1000), (libc::RLIMIT_NPROC, 5000)] {
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: `limit` is a valid rlimit on this stack frame, filled and then read by the kernel.
        assert_eq!(unsafe { libc::getrlimit(resource, &mut limit) }, 0);
        limit.rlim_cur = limit.rlim_cur.min(soft);
        // SAFETY: as above; lowering a soft limit needs no privilege.
        assert_eq!(unsafe { libc::setrlimit(resource, &limit) }, 0);
    }
    let host = TestHost::new(Path::new(CACHE));
    let limits = "cat /proc/self/limits";
    let default = host.shell("ulim", limits, "");
    let pair = |(soft, hard): (&str, &str)| (soft.to_owned(), hard.to_owned());
    for (row, docker) in
        [("Max open files", "1048576"), ("Max processes", "unlimited"), ("Max core file size", "unlimited")]
    {
        assert_eq!(pair(limit(&default, row)), docker_default(row, docker), "{row}: not the supervisor's own");
    }

    // `--ulimit nofile=1024:2048`: that name only; the other defaults stay.
    let own = host.shell("ulim", limits, "ulimits = { nofile = \"1024:2048\", stack = \"-1:-1\" }");
    assert_eq!(limit(&own, "Max open files"), ("1024", "2048"));
    assert_eq!(limit(&own, "Max stack size"), ("unlimited", "unlimited"));
    assert_eq!(pair(limit(&own, "Max processes")), docker_default("Max processes", "unlimited"));

    // `--default-ulimit` on the daemon: over Docker's defaults, under the container's own.
    let keys = "ulimits = { nproc = 300 }\n[host]\ndefault_ulimits = { nofile = \"4096:8192\", nproc = \"100:200\" }";
    let host_wide = host.shell("ulim", limits, keys);
    assert_eq!(limit(&host_wide, "Max open files"), ("4096", "8192"));
    assert_eq!(limit(&host_wide, "Max processes"), ("300", "300"));
    assert_eq!(pair(limit(&host_wide, "Max core file size")), docker_default("Max core file size", "unlimited"));
}

#[test]
fn oom_score_adj_is_set_to_zero_not_inherited() {
    // What the supervisor's own adjustment might be (keel may protect itself); a container must not inherit it.
    std::fs::write("/proc/self/oom_score_adj", "500").unwrap();
    let host = TestHost::new(Path::new(CACHE));
    let out = host.shell("oom", "cat /proc/self/oom_score_adj", "");
    assert_eq!(out.stdout, "0\n", "stderr: {}", out.stderr);
}

/// moby's `TweakCapabilities` drops, then adds: `--cap-add NET_ADMIN --cap-drop NET_ADMIN` keeps NET_ADMIN, and a
/// default capability in both lists stays too.
#[test]
fn a_capability_both_added_and_dropped_is_kept() {
    const NET_ADMIN: u64 = 1 << 12;
    const MKNOD: u64 = 1 << 27;
    let host = TestHost::new(Path::new(CACHE));
    let keys = "cap_add = [\"NET_ADMIN\", \"MKNOD\"]\ncap_drop = [\"NET_ADMIN\", \"MKNOD\", \"CHOWN\"]";
    let out = host.shell("caps", "grep CapEff /proc/self/status", keys);
    let effective = u64::from_str_radix(status_field(&out, "CapEff"), 16).unwrap();
    assert_eq!(effective, (0xa80425fb | NET_ADMIN | MKNOD) & !1, "CHOWN (0) dropped, the others kept");
}

/// runc takes supplementary groups from `/etc/group` only for `-u user`; `-u user:group` gets that group alone.
#[test]
fn user_with_a_group_gets_no_supplementary_groups() {
    let host = TestHost::new(Path::new(CACHE));
    // The image's /etc/group lists `app` in `wheel` (10).
    let implicit = host.shell("grp", "grep Groups /proc/self/status", "user = \"app\"");
    assert_eq!(status_field(&implicit, "Groups"), "10 1000", "the kernel lists them sorted");
    let explicit = host.shell("grp", "grep Groups /proc/self/status", "user = \"app:app\"");
    assert_eq!(status_field(&explicit, "Groups"), "1000");
}
