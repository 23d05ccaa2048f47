//! The runtime from the inside: what a container's process sees of namespaces, mounts, user, capabilities,
//! environment and workdir. Each test runs one container straight through `Container::create` + `start`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use keel_config::UserData;
use keel_fixtures::containers::{reaper, Outcome, TestHost};
use keel_runtime::Container;

const CACHE: &str = env!("CARGO_TARGET_TMPDIR");

/// Runs container `t<n>` (host name `t`) of the busybox image with `keys` and returns how it ended.
fn run(host: &TestHost, keys: &str) -> Outcome {
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let name = format!("t{}", COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    host.run_to_exit(&name, &host.busybox(), &format!("hostname = \"t\"\n{keys}"))
}

fn shell(host: &TestHost, script: &str, keys: &str) -> Outcome {
    let command = serde_json::to_string(&["sh", "-c", script]).unwrap();
    run(host, &format!("command = {command}\n{keys}"))
}

#[test]
fn isolation_pid_hostname_and_overlay_root() {
    let host = TestHost::new(Path::new(CACHE));
    let out = shell(&host, "echo pid=$$; hostname; grep ' / ' /proc/mounts; cat /proc/1/cmdline | tr '\\0' ' '", "");
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "pid=1");
    assert_eq!(lines[1], "t");
    assert!(lines[2].starts_with("overlay / overlay"), "{}", lines[2]);
    assert!(lines[3].starts_with("sh -c echo pid"), "{}", lines[3]);
}

#[test]
fn read_only_root_refuses_writes() {
    let host = TestHost::new(Path::new(CACHE));
    let out =
        shell(&host, "touch /probe 2>&1; echo status=$?; touch /dev/shm/ok && echo shm-writable", "read_only = true");
    assert!(out.stdout.contains("Read-only file system"), "{}", out.stdout);
    assert!(out.stdout.contains("status=1"));
    assert!(out.stdout.contains("shm-writable"));
}

#[test]
fn binds_show_host_files_and_ro_is_not_writable() {
    let host = TestHost::new(Path::new(CACHE));
    let shared = host.temp.path().join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::write(shared.join("hello"), "from the host\n").unwrap();
    let volumes = format!("volumes = [\"{0}:/rw\", \"{0}:/ro:ro\"]", shared.display());
    let out =
        shell(&host, "cat /rw/hello; echo x > /rw/written; echo y > /ro/nope 2>/dev/null || echo ro-refused", &volumes);
    assert_eq!(out.stdout, "from the host\nro-refused\n", "stderr: {}", out.stderr);
    assert_eq!(std::fs::read_to_string(shared.join("written")).unwrap(), "x\n");
    assert!(!shared.join("nope").exists());
}

/// A tmpfs the test mounts on the host; unmounted (lazily, in case a container still holds it) on drop. Made
/// with mount(2) itself, not the `mount` program: this test binary's reaper would take that child's exit status.
struct HostTmpfs(std::path::PathBuf);

impl HostTmpfs {
    fn mount(at: &Path) -> HostTmpfs {
        std::fs::create_dir_all(at).unwrap();
        let path = std::ffi::CString::new(at.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: every pointer is a NUL-terminated string that outlives the call; the kernel only reads them.
        let ret = unsafe {
            libc::mount(c"keel-test".as_ptr(), path.as_ptr(), c"tmpfs".as_ptr(), 0, c"size=1m".as_ptr().cast())
        };
        assert_eq!(ret, 0, "mounting a tmpfs on {}: {}", at.display(), std::io::Error::last_os_error());
        HostTmpfs(at.to_path_buf())
    }
}

impl Drop for HostTmpfs {
    fn drop(&mut self) {
        if let Ok(path) = std::ffi::CString::new(self.0.as_os_str().as_encoded_bytes()) {
            // SAFETY: `path` is a NUL-terminated string that outlives the call.
            unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

#[test]
fn ro_binds_are_read_only_down_to_their_submounts() {
    let host = TestHost::new(Path::new(CACHE));
    let shared = host.temp.path().join("with-submount");
    let _submount = HostTmpfs::mount(&shared.join("sub"));
    let volumes = format!("volumes = [\"{0}:/rw\", \"{0}:/ro:ro\"]", shared.display());
    let out = shell(
        &host,
        "{ echo y > /ro/sub/nope; } 2>&1 || echo ro-sub-refused; touch /ro/top 2>/dev/null || echo ro-top-refused; \
         echo x > /rw/sub/written && echo rw-sub-written",
        &volumes,
    );
    // EROFS, the submount's own error: the tmpfs under a `:ro` bind is read-only too, though writable on the host
    // and through the `rw` bind.
    assert!(out.stdout.contains("Read-only file system\nro-sub-refused\n"), "{}", out.stdout);
    assert!(out.stdout.contains("ro-top-refused\nrw-sub-written"), "{}", out.stdout);
    assert!(!shared.join("sub/nope").exists());
    assert_eq!(std::fs::read_to_string(shared.join("sub/written")).unwrap(), "x\n");
}

#[test]
fn named_volumes_start_with_the_image_content_and_persist() {
    let host = TestHost::new(Path::new(CACHE));
    let out = shell(&host, "cat /data/seed; echo more > /data/added", "volumes = [\"store:/data\"]");
    assert_eq!(out.stdout, "from the image\n", "stderr: {}", out.stderr);
    let out = shell(&host, "cat /data/added", "volumes = [\"store:/data\"]");
    assert_eq!(out.stdout, "more\n");
    assert!(host.state_dir.join("volumes/store/seed").exists());
}

#[test]
fn user_from_the_image_passwd() {
    let host = TestHost::new(Path::new(CACHE));
    let out = shell(&host, "id -u; id -g; id -G", "user = \"nobody\"");
    assert_eq!(out.stdout, "65534\n65534\n65534\n", "stderr: {}", out.stderr);
    let out = shell(&host, "id -u; id -G", "user = \"app\"");
    assert_eq!(out.stdout, "1000\n1000 10\n");
    let out = shell(&host, "id -u; id -g", "user = \"4242:77\"");
    assert_eq!(out.stdout, "4242\n77\n");
}

fn effective_capabilities(out: &Outcome) -> u64 {
    let line = out.stdout.lines().find(|line| line.starts_with("CapEff:")).unwrap_or_else(|| panic!("{}", out.stdout));
    u64::from_str_radix(line.trim_start_matches("CapEff:").trim(), 16).unwrap()
}

#[test]
fn capabilities_are_dockers_unless_privileged() {
    const SYS_ADMIN: u64 = 1 << 21;
    let host = TestHost::new(Path::new(CACHE));
    let status = "grep Cap /proc/self/status; grep NoNewPrivs /proc/self/status";
    let default = shell(&host, status, "");
    assert_eq!(effective_capabilities(&default), 0xa80425fb, "{}", default.stdout);
    assert!(default.stdout.contains("NoNewPrivs:\t0"), "off unless asked, as in Docker");
    let added = shell(&host, status, "cap_add = [\"SYS_ADMIN\"]\ncap_drop = [\"NET_RAW\"]");
    assert_eq!(effective_capabilities(&added), (0xa80425fb | SYS_ADMIN) & !(1 << 13));
    let privileged = shell(&host, status, "privileged = true");
    assert_ne!(effective_capabilities(&privileged) & SYS_ADMIN, 0);
    assert!(privileged.stdout.contains("NoNewPrivs:\t0"));
    let nobody = shell(&host, status, "user = \"nobody\"");
    assert_eq!(effective_capabilities(&nobody), 0);
}

#[test]
fn masked_and_read_only_proc_paths() {
    let host = TestHost::new(Path::new(CACHE));
    let out = shell(
        &host,
        "wc -c < /proc/keys; echo 1 > /proc/sys/kernel/domainname 2>/dev/null || echo sys-ro; ls /dev | tr '\\n' ' '; \
         echo; wc -c < /proc/interrupts; \
         for dir in /sys/devices/system/cpu/cpu*/thermal_throttle; do [ -d $dir ] && echo $dir: $(ls $dir); done",
        "",
    );
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0].trim(), "0", "/proc/keys is /dev/null: {}", out.stdout);
    assert_eq!(lines[1], "sys-ro");
    for node in ["null", "zero", "full", "random", "urandom", "tty", "ptmx", "pts", "shm", "mqueue", "fd", "stdout"] {
        assert!(lines[2].split(' ').any(|name| name == node), "/dev lacks {node}: {}", lines[2]);
    }
    assert_eq!(lines[3].trim(), "0", "/proc/interrupts is /dev/null: {}", out.stdout);
    // Where the host has per-CPU thermal_throttle directories (not every VM does), each is an empty tmpfs.
    let throttle: Vec<&str> = lines[4..].to_vec();
    let host_has = std::fs::read_dir("/sys/devices/system/cpu")
        .unwrap()
        .filter_map(Result::ok)
        .filter(|entry| {
            entry.file_name().to_string_lossy().starts_with("cpu") && entry.path().join("thermal_throttle").is_dir()
        })
        .count();
    assert_eq!(throttle.len(), host_has, "{}", out.stdout);
    assert!(throttle.iter().all(|line| line.ends_with("thermal_throttle:")), "not masked: {throttle:?}");
}

#[test]
fn env_and_workdir_come_from_the_image_and_config() {
    let host = TestHost::new(Path::new(CACHE));
    let out =
        shell(&host, "pwd; echo $FROM_IMAGE $EXTRA $HOSTNAME $HOME; echo $PATH", "env = { EXTRA = \"from-config\" }");
    assert_eq!(out.stdout, "/srv/app\nyes from-config t /root\n/bin\n", "stderr: {}", out.stderr);
    let out = shell(&host, "pwd", "workdir = \"/new/dir\"");
    assert_eq!(out.stdout, "/new/dir\n");
}

#[test]
fn image_cmd_runs_when_the_config_has_none() {
    let host = TestHost::new(Path::new(CACHE));
    // The image's Cmd is `sh` with stdin at /dev/null: it exits 0 at once.
    let out = run(&host, "");
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
}

#[test]
fn init_reaps_forwards_and_passes_the_exit_status() {
    let host = TestHost::new(Path::new(CACHE));
    let out = shell(&host, "echo pid=$$; cat /proc/1/cmdline | tr '\\0' ' '; echo; exit 7", "init = true");
    assert_eq!(out.code, 7, "stderr: {}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_ne!(lines[0], "pid=1", "the command is not PID 1 under init");
    let killed = shell(&host, "kill -TERM $$; sleep 5", "init = true");
    assert_eq!(killed.code, 128 + 15);
}

#[test]
fn init_holds_nothing_of_the_supervisor() {
    let host = TestHost::new(Path::new(CACHE));
    // The supervisor here is this test binary (with cargo's CARGO_PKG_NAME in its environment). The container's
    // PID 1 must be a program of its own: nothing of the supervisor mapped, nothing of its environment.
    let supervisor = std::env::current_exe().unwrap();
    let supervisor_name = supervisor.file_name().unwrap().to_str().unwrap();
    let out = shell(
        &host,
        "tr '\\0' ' ' </proc/1/cmdline; echo; tr '\\0' '\\n' </proc/1/environ | grep -c CARGO_PKG_NAME; \
         grep -c . /proc/1/maps; cat /proc/1/maps",
        "init = true",
    );
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines[0].starts_with("keel-container-init -- sh -c "), "PID 1 is {:?}", lines[0]);
    assert_eq!(lines.get(1).copied(), Some("0"), "the supervisor's environment shows: {}", out.stdout);
    let maps = &lines[3..];
    assert!(maps.len() > 2, "no mappings read: {}", out.stdout);
    assert!(maps.iter().any(|line| line.ends_with("/keel-container-init")), "init not mapped: {}", out.stdout);
    assert!(
        !maps.iter().any(|line| line.contains(supervisor_name)),
        "the supervisor is mapped in PID 1: {}",
        out.stdout
    );
}

#[test]
fn init_reports_a_missing_command_as_docker_does() {
    let host = TestHost::new(Path::new(CACHE));
    for (name, init) in [("missing0", ""), ("missing1", "init = true")] {
        let text =
            format!("[containers.{name}]\nimage = \"{}\"\ncommand = [\"/no/such/program\"]\n{init}", host.busybox());
        let config = UserData::parse("test", &text).unwrap().containers.remove(name).unwrap();
        let stored = host.store.image(&host.busybox()).unwrap();
        let dirs = host.runtime_dirs();
        let container = Container::create(name, &config, &stored.layer_dirs, &host.run_config(&stored), &dirs).unwrap();
        let error = container.start(&reaper()).expect_err("a missing command cannot start");
        keel_runtime::remove_container(&dirs.containers_dir, name, dirs.cgroup_root.as_deref()).unwrap();
        assert_eq!(error.exit_code(), 127, "{init:?}: {error}");
        assert!(error.to_string().contains("executing the command"), "{init:?}: {error}");
    }
}

/// Starts `sleep 60` on the host under `pid` (set through `ns_last_pid`; other processes may take it first, so it
/// retries). None if the pid could not be had.
fn host_process_with_pid(pid: i32) -> Option<std::process::Child> {
    for _ in 0..50 {
        std::fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string()).unwrap();
        let mut child = std::process::Command::new("sleep").arg("60").spawn().unwrap();
        if child.id() as i32 == pid {
            return Some(child);
        }
        // The fixture's reaper may collect it first (ECHILD here): either way it is gone.
        let _ = child.kill();
        let _ = child.wait();
    }
    None
}

#[test]
fn a_reaped_containers_pid_reused_by_a_host_process_is_neither_signalled_nor_joined() {
    let host = TestHost::new(Path::new(CACHE));
    let text = format!(
        "[containers.p]\nimage = \"{}\"\ncommand = [\"sleep\", \"60\"]\nhostname = \"inside\"\n",
        keel_fixtures::containers::BUSYBOX
    );
    let config = UserData::parse("test", &text).unwrap().containers.remove("p").unwrap();
    let image = host.store.image(&host.busybox()).unwrap();
    let image_config = host.run_config(&image);
    let container = Container::create("p", &config, &image.layer_dirs, &image_config, &host.runtime_dirs()).unwrap();
    let reaper = reaper();
    let running = container.start(&reaper).unwrap();
    let hostname = ["hostname".to_owned()];
    let timeout = std::time::Duration::from_secs(20);
    let inside = container.exec(&running.process, &hostname, &reaper, timeout).unwrap();
    assert_eq!(inside.output, "inside\n");
    keel_runtime::kill_container("p", &running.process, libc::SIGKILL).unwrap();
    running.exit.recv_timeout(timeout).unwrap();

    // The reaper has freed the pid: give it to a host process, as the kernel may at any time.
    let pid = running.process.pid().as_raw();
    let mut stranger = host_process_with_pid(pid).expect("could not get the freed pid back");
    keel_runtime::kill_container("p", &running.process, libc::SIGKILL).unwrap();
    let joined = container.exec(&running.process, &hostname, &reaper, timeout).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let alive = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default().starts_with(b"sleep");
    let _ = stranger.kill();
    let _ = stranger.wait();
    let dirs = host.runtime_dirs();
    keel_runtime::remove_container(&dirs.containers_dir, "p", dirs.cgroup_root.as_deref()).unwrap();
    assert!(alive, "SIGKILL for the reaped container reached the host process that now has pid {pid}");
    assert_ne!(joined.exit_code, 0, "joined the namespaces of pid {pid}'s new owner: {}", joined.output);
    assert!(joined.output.contains("No such process"), "{}", joined.output);
}

#[test]
fn network_none_has_only_loopback_up() {
    let host = TestHost::new(Path::new(CACHE));
    let out = shell(
        &host,
        "echo interfaces: $(ls /sys/class/net); echo lo flags: $(cat /sys/class/net/lo/flags)",
        "network = \"none\"",
    );
    assert!(out.stdout.lines().any(|line| line == "interfaces: lo"), "not exactly one interface, lo: {}", out.stdout);
    let flags = out.stdout.lines().find_map(|line| line.strip_prefix("lo flags: 0x")).expect("lo's flags");
    // IFF_UP is bit 0.
    assert_ne!(u32::from_str_radix(flags, 16).unwrap() & 1, 0, "lo is down: {}", out.stdout);
}

#[test]
fn a_missing_command_fails_to_start_with_127() {
    let host = TestHost::new(Path::new(CACHE));
    let text = format!("[containers.t]\nimage = \"{}\"\ncommand = [\"/nope\"]\n", keel_fixtures::containers::BUSYBOX);
    let config = UserData::parse("test", &text).unwrap().containers.remove("t").unwrap();
    let image = host.store.image(&host.busybox()).unwrap();
    let image_config = host.run_config(&image);
    let container = Container::create("t", &config, &image.layer_dirs, &image_config, &host.runtime_dirs()).unwrap();
    let error = container.start(&reaper()).unwrap_err();
    assert_eq!(error.exit_code(), 127);
    assert!(error.to_string().contains("No such file"), "{error}");
    let dirs = host.runtime_dirs();
    keel_runtime::remove_container(&dirs.containers_dir, "t", dirs.cgroup_root.as_deref()).unwrap();
}
