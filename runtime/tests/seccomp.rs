//! The seccomp filter, attacked from inside a root container: calls Docker's default profile denies fail with
//! Docker's errno, `unconfined` and the capability-conditional rules let them through, and a JSON profile's own
//! answers come back as written. Each test runs one container through `Container::create` + `start`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use keel_config::{ContainerConfig, UserData};
use keel_fixtures::containers::{reaper, Outcome, TestHost};
use keel_runtime::{Container, CreateError};

const CACHE: &str = env!("CARGO_TARGET_TMPDIR");

fn config(name: &str, script: &str, extra: &str) -> ContainerConfig {
    let command = serde_json::to_string(&["sh", "-c", script]).unwrap();
    let text = format!(
        "[containers.{name}]\nimage = \"{}\"\ncommand = {command}\n{extra}",
        keel_fixtures::containers::BUSYBOX
    );
    UserData::parse("test", &text).unwrap().containers.remove(name).unwrap()
}

fn create(host: &TestHost, name: &str, config: &ContainerConfig) -> Result<Container, CreateError> {
    let image = host.store.image(&host.busybox()).unwrap();
    Container::create(name, config, &image.layer_dirs, &host.run_config(&image), &host.runtime_dirs())
}

/// Runs `script` in a busybox container with `extra` TOML keys.
fn shell(host: &TestHost, script: &str, extra: &str) -> Outcome {
    host.shell("s", script, extra)
}

/// `unshare(CLONE_NEWUSER)` needs no capability from the kernel: only the filter stands in its way.
const NEW_USER_NAMESPACE: &str = "unshare -U true && echo allowed";

#[test]
fn default_profile_denies_a_new_user_namespace_with_eperm() {
    let host = TestHost::new(Path::new(CACHE));
    let out = shell(&host, NEW_USER_NAMESPACE, "");
    assert_ne!(out.code, 0, "unshare got through: {}", out.stdout);
    assert!(out.stderr.contains("Operation not permitted"), "not EPERM: {}", out.stderr);
    let status = shell(&host, "grep Seccomp /proc/self/status", "");
    assert!(status.stdout.contains("Seccomp:\t2"), "no filter: {}", status.stdout);
    assert!(status.stdout.contains("Seccomp_filters:\t2"), "{}", status.stdout);
}

#[test]
fn unconfined_and_privileged_let_it_through() {
    let host = TestHost::new(Path::new(CACHE));
    let out = shell(&host, NEW_USER_NAMESPACE, "seccomp = \"unconfined\"");
    assert_eq!((out.code, out.stdout.as_str()), (0, "allowed\n"), "stderr: {}", out.stderr);
    let status = shell(&host, "grep Seccomp: /proc/self/status", "privileged = true");
    assert!(status.stdout.contains("Seccomp:\t0"), "privileged is filtered: {}", status.stdout);
}

#[test]
fn cap_sys_admin_opens_the_conditional_rules_as_in_docker() {
    let host = TestHost::new(Path::new(CACHE));
    let out = shell(&host, "unshare -U true && unshare -m true && echo allowed", "cap_add = [\"SYS_ADMIN\"]");
    assert_eq!((out.code, out.stdout.as_str()), (0, "allowed\n"), "stderr: {}", out.stderr);
}

#[test]
fn exec_probes_run_under_the_containers_filter() {
    let host = TestHost::new(Path::new(CACHE));
    let container = create(&host, "probe", &config("probe", "sleep 30", "")).unwrap();
    let reaper = reaper();
    let running = container.start(&reaper).unwrap();
    let argv = ["unshare".to_owned(), "-U".to_owned(), "true".to_owned()];
    let result = container.exec(&running.process, &argv, &reaper, Duration::from_secs(20)).unwrap();
    keel_runtime::kill_container("probe", &running.process, libc::SIGKILL).unwrap();
    running.exit.recv_timeout(Duration::from_secs(20)).unwrap();
    let dirs = host.runtime_dirs();
    keel_runtime::remove_container(&dirs.containers_dir, "probe", dirs.cgroup_root.as_deref()).unwrap();
    assert_ne!(result.exit_code, 0, "the probe got a user namespace: {}", result.output);
    assert!(result.output.contains("Operation not permitted"), "{}", result.output);
}

#[test]
fn a_json_profile_answers_with_its_own_errno() {
    let host = TestHost::new(Path::new(CACHE));
    let profile = host.temp.path().join("no-mkdir.json");
    // Allow by default; mkdir answers EDQUOT (122), an errno nothing else would produce here.
    std::fs::write(
        &profile,
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 122}]}"#,
    )
    .unwrap();
    let extra = format!("seccomp = \"{}\"", profile.display());
    let out = shell(&host, "mkdir /made; echo status=$?; unshare -U true && echo userns-allowed", &extra);
    assert!(out.stderr.contains("Disk quota exceeded"), "not EDQUOT: {}", out.stderr);
    assert!(out.stdout.contains("status=1"), "{}", out.stdout);
    assert!(out.stdout.contains("userns-allowed"), "the profile's default is allow: {}", out.stdout);
}

#[test]
fn a_malformed_profile_fails_create_naming_the_file_and_the_fault() {
    let host = TestHost::new(Path::new(CACHE));
    let chain = |error: CreateError| keel_logs::error_chain(&error);
    let profile = host.temp.path().join("bad.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_MAYBE"}]}"#,
    )
    .unwrap();
    let config = config("bad", "true", &format!("seccomp = \"{}\"", profile.display()));
    let error = chain(create(&host, "bad", &config).unwrap_err());
    assert!(error.contains(&profile.display().to_string()), "{error}");
    assert!(error.contains("syscalls[0]: unknown action \"SCMP_ACT_MAYBE\""), "{error}");
    std::fs::write(&profile, "{\"defaultAction\": ").unwrap();
    let error = chain(create(&host, "bad", &config).unwrap_err());
    assert!(error.contains("is not a Docker seccomp profile: EOF while parsing"), "{error}");
    let missing = self::config("bad", "true", "seccomp = \"/nonexistent/profile.json\"");
    let error = chain(create(&host, "bad", &missing).unwrap_err());
    assert!(error.contains("reading seccomp profile /nonexistent/profile.json: "), "{error}");
    assert!(error.ends_with("No such file or directory (os error 2)"), "{error}");
}
