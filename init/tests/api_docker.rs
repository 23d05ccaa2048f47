//! The stock `docker` CLI against `keel supervise`'s API socket, as a user runs it: `version`, `ps`, `inspect`,
//! `logs`, `stop -t`, `restart`, `start`, and `rm` refused for a declared container. Each command's output is
//! checked, not just its exit code. Runs as root, like the supervisor's runtime tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use keel_fixtures::containers::{wait_for, TestHost, BUSYBOX};
use keel_fixtures::supervise::KeelSupervise;

const CACHE: &str = env!("CARGO_TARGET_TMPDIR");
const KEEL: &str = env!("CARGO_BIN_EXE_keel");

fn docker(socket: &Path, config_dir: &Path, args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .env("DOCKER_HOST", format!("unix://{}", socket.display()))
        .env("DOCKER_CONFIG", config_dir)
        .output()
        .expect("the docker CLI runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `docker args`, asserts success, returns stdout.
fn ok(socket: &Path, config_dir: &Path, args: &[&str]) -> String {
    let output = docker(socket, config_dir, args);
    assert!(output.status.success(), "docker {args:?}: {}\n{}", output.status, text(&output.stderr));
    text(&output.stdout)
}

/// A loopback port for `host`'s TCP API: free now (bound and released), different for each test.
fn tcp_port(host: &TestHost) -> u16 {
    let file = host.temp.path().join("tcp-port");
    if let Ok(text) = std::fs::read_to_string(&file) {
        return text.parse().unwrap();
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    std::fs::write(&file, port.to_string()).unwrap();
    port
}

/// `keel supervise` of `config` on `host`, its API socket, and a config dir for the docker CLI.
fn supervise(host: &TestHost, config: &str) -> (KeelSupervise, PathBuf, PathBuf) {
    let docker_config = host.temp.path().join("docker-config");
    std::fs::create_dir_all(&docker_config).unwrap();
    let supervise = KeelSupervise::start(Path::new(KEEL), host, config);
    let socket = supervise.socket.clone();
    (supervise, socket, docker_config)
}

#[test]
fn the_docker_cli_lists_inspects_logs_and_controls_declared_containers() {
    let host = TestHost::new(Path::new(CACHE));
    let config = format!(
        "[containers.web]\nimage = \"{BUSYBOX}\"\nrestart = \"always\"\nlabels = {{ tier = \"front\" }}\n\
         command = [\"sh\", \"-c\", \"i=0; while true; do i=$((i+1)); echo out $i; echo err $i >&2; sleep 0.2; done\"]\n\
         [containers.deaf]\nimage = \"{BUSYBOX}\"\ncommand = [\"sleep\", \"100000\"]\nstop_timeout = 30\n\
         [containers.done]\nimage = \"{BUSYBOX}\"\ncommand = [\"sh\", \"-c\", \"exit 3\"]\n"
    );
    let (_supervise, socket, docker_config) = supervise(&host, &config);

    let version = ok(&socket, &docker_config, &["version", "--format", "{{.Server.Version}} {{.Server.APIVersion}}"]);
    assert_eq!(version.trim(), format!("{} 1.44", env!("CARGO_PKG_VERSION")));

    let ps = |all: bool| {
        let mut args = vec!["ps", "--format", "{{.Names}}|{{.State}}|{{.Status}}|{{.Image}}|{{.ID}}"];
        if all {
            args.push("-a");
        }
        ok(&socket, &docker_config, &args)
    };
    wait_for("web and deaf running, done exited", Duration::from_secs(60), || {
        let listing = ps(true);
        (listing.contains("web|running|Up ")
            && listing.contains("deaf|running|Up ")
            && listing.contains("done|exited|Exited (3) "))
        .then_some(())
    });
    let running = ps(false);
    assert!(!running.contains("done|"), "ps without -a lists an exited container:\n{running}");
    let web_line = running.lines().find(|line| line.starts_with("web|")).unwrap().to_owned();
    assert!(web_line.contains(&format!("|{BUSYBOX}|")), "{web_line}");
    let short_id = web_line.rsplit('|').next().unwrap().to_owned();
    assert_eq!(short_id.len(), 12, "docker ps shows 12 digits of the id: {web_line}");

    let inspect = ok(
        &socket,
        &docker_config,
        &["inspect", &short_id, "--format", "{{.Name}} {{.State.Running}} {{.HostConfig.RestartPolicy.Name}} {{index .Config.Labels \"tier\"}} {{.Config.Tty}}"],
    );
    assert_eq!(inspect.trim(), "/web true always front false");

    wait_for("ten lines of web", Duration::from_secs(30), || {
        let logs = docker(&socket, &docker_config, &["logs", "web"]);
        (text(&logs.stdout).lines().count() >= 10).then_some(())
    });
    let logs = docker(&socket, &docker_config, &["logs", "--tail", "3", "web"]);
    assert!(logs.status.success(), "{}", text(&logs.stderr));
    let (out, err) = (text(&logs.stdout), text(&logs.stderr));
    assert!(out.lines().count() <= 3 && out.lines().all(|line| line.starts_with("out ")), "stdout: {out:?}");
    assert!(err.lines().count() <= 3 && err.lines().all(|line| line.starts_with("err ")), "stderr: {err:?}");
    assert_eq!(out.lines().count() + err.lines().count(), 3, "--tail 3 gives three lines in all");
    // The last line is stdout's or stderr's, on the CLI's stream of the same name.
    let logs = docker(&socket, &docker_config, &["logs", "--timestamps", "--tail", "1", "web"]);
    assert!(logs.status.success(), "{}", text(&logs.stderr));
    let stamped = format!("{}{}", text(&logs.stdout), text(&logs.stderr));
    // `2026-11-29T23:48:52.123456789Z out …`: nanoseconds, as Docker's json-file keeps them.
    let (stamp, line) = stamped.split_once(' ').unwrap_or_default();
    let shape = stamp.len() == 30 && &stamp[10..11] == "T" && &stamp[19..20] == "." && stamp.ends_with('Z');
    let fraction_digits = stamp.get(20..29).is_some_and(|digits| digits.bytes().all(|b| b.is_ascii_digit()));
    assert!(shape && fraction_digits && (line.starts_with("out ") || line.starts_with("err ")), "{stamped:?}");

    // deaf's PID 1 is `sleep`, which ignores SIGTERM: `-t 1` must kill it after one second, not its configured 30.
    let asked = Instant::now();
    ok(&socket, &docker_config, &["stop", "-t", "1", "deaf"]);
    let took = asked.elapsed();
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(15), "docker stop -t 1 took {took:?}");
    assert!(ps(true).contains("deaf|exited|Exited (137) "), "{}", ps(true));
    ok(&socket, &docker_config, &["start", "deaf"]);
    wait_for("deaf running again", Duration::from_secs(30), || ps(false).contains("deaf|running|").then_some(()));

    let pid =
        |name: &str| ok(&socket, &docker_config, &["inspect", name, "--format", "{{.State.Pid}}"]).trim().to_owned();
    let before = pid("web");
    ok(&socket, &docker_config, &["restart", "-t", "1", "web"]);
    let after = pid("web");
    assert!(before != after && after != "0", "restart kept pid {before} (now {after})");

    // system df: the image and the three containers, with web's writable layer counted.
    let df = ok(&socket, &docker_config, &["system", "df", "--format", "{{.Type}} {{.TotalCount}} {{.Active}}"]);
    assert!(df.lines().any(|line| line == "Images 1 1"), "{df}");
    assert!(df.lines().any(|line| line == "Containers 3 2"), "{df}");

    // top lists the container's processes: its shell and the shell's sleep, by the PID namespace.
    let top = ok(&socket, &docker_config, &["top", "web"]);
    let mut lines = top.lines();
    let titles: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(titles, ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]);
    let rows: Vec<&str> = lines.collect();
    assert!(rows.iter().any(|row| row.contains("sh -c i=0; while true")), "{top}");
    assert!(rows.iter().all(|row| row.starts_with('0')), "every process runs as uid 0: {top}");
    let stopped_top = docker(&socket, &docker_config, &["top", "done"]);
    assert!(!stopped_top.status.success() && text(&stopped_top.stderr).contains("is not running"));

    let removed = docker(&socket, &docker_config, &["rm", "-f", "web"]);
    assert!(!removed.status.success());
    assert!(text(&removed.stderr).contains("declared in the host's config"), "{}", text(&removed.stderr));
    let missing = docker(&socket, &docker_config, &["logs", "nosuch"]);
    assert!(!missing.status.success());
    assert!(text(&missing.stderr).contains("No such container: nosuch"), "{}", text(&missing.stderr));
}

#[test]
fn the_docker_cli_filters_follows_kills_waits_and_lists_images() {
    let host = TestHost::new(Path::new(CACHE));
    let config = format!(
        "[containers.ticker]\nimage = \"{BUSYBOX}\"\nlabels = {{ role = \"clock\" }}\n\
         command = [\"sh\", \"-c\", \"trap 'echo got USR1' USR1; i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done\"]\n\
         [containers.quiet]\nimage = \"{BUSYBOX}\"\ncommand = [\"sleep\", \"100000\"]\n\
         [api]\ntcp = \"127.0.0.1:{}\"\n",
        tcp_port(&host)
    );
    let (_supervise, socket, docker_config) = supervise(&host, &config);
    let names = |args: &[&str]| {
        let mut all = vec!["ps", "-a", "--format", "{{.Names}}"];
        all.extend_from_slice(args);
        let mut listed: Vec<String> = ok(&socket, &docker_config, &all).lines().map(str::to_owned).collect();
        listed.sort();
        listed
    };
    wait_for("both running", Duration::from_secs(60), || {
        (names(&["--filter", "status=running"]).len() == 2).then_some(())
    });
    assert_eq!(names(&["--filter", "label=role=clock"]), ["ticker"]);
    assert_eq!(names(&["--filter", "name=qui"]), ["quiet"]);
    assert_eq!(names(&["--filter", "health=none", "--filter", "status=running"]), ["quiet", "ticker"]);
    assert!(names(&["--filter", "status=exited"]).is_empty());
    let bad = docker(&socket, &docker_config, &["ps", "--filter", "colour=red"]);
    assert!(!bad.status.success() && text(&bad.stderr).contains("invalid filter 'colour'"), "{}", text(&bad.stderr));

    // `logs -f` streams: the follower sees ticks that were written after it started.
    let mut follower = Command::new("docker")
        .args(["logs", "-f", "--tail", "1", "ticker"])
        .env("DOCKER_HOST", format!("unix://{}", socket.display()))
        .env("DOCKER_CONFIG", &docker_config)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(follower.stdout.take().unwrap());
    let mut seen = Vec::new();
    for _ in 0..6 {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
        seen.push(line.trim().to_owned());
    }
    let numbers: Vec<u64> = seen.iter().filter_map(|line| line.strip_prefix("tick ")?.parse().ok()).collect();
    assert_eq!(numbers.len(), 6, "{seen:?}");
    assert!(numbers.windows(2).all(|pair| pair[1] == pair[0] + 1), "followed lines in order: {numbers:?}");

    // kill -s USR1 reaches the command (its trap prints), and the follower sees it; then kill (SIGKILL) stops it
    // for good, which ends the follow, and wait reports 137.
    ok(&socket, &docker_config, &["kill", "-s", "USR1", "ticker"]);
    let mut got_usr1 = false;
    for _ in 0..50 {
        let mut line = String::new();
        if std::io::BufRead::read_line(&mut stdout, &mut line).unwrap() == 0 {
            break;
        }
        if line.trim() == "got USR1" {
            got_usr1 = true;
            break;
        }
    }
    assert!(got_usr1, "the USR1 trap's line did not reach logs -f");
    let waiter = Command::new("docker")
        .args(["wait", "ticker"])
        .env("DOCKER_HOST", format!("unix://{}", socket.display()))
        .env("DOCKER_CONFIG", &docker_config)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let killed = ok(&socket, &docker_config, &["kill", "ticker"]);
    assert_eq!(killed.trim(), "ticker");
    let waited = waiter.wait_with_output().unwrap();
    assert_eq!(text(&waited.stdout).trim(), "137");
    let follow_ended =
        wait_for("logs -f to end with the container", Duration::from_secs(30), || follower.try_wait().unwrap());
    assert!(follow_ended.success());
    // A killed container stays down (the kill cancels its restart), and a second kill is refused.
    assert_eq!(names(&["--filter", "status=exited"]), ["ticker"]);
    let again = docker(&socket, &docker_config, &["kill", "ticker"]);
    assert!(!again.status.success() && text(&again.stderr).contains("is not running"), "{}", text(&again.stderr));

    let images = ok(&socket, &docker_config, &["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"]);
    // The same over TCP, where `[api] tcp` asks for it.
    let over_tcp = Command::new("docker")
        .args(["-H", &format!("tcp://127.0.0.1:{}", tcp_port(&host)), "ps", "--format", "{{.Names}}"])
        .env("DOCKER_CONFIG", &docker_config)
        .output()
        .unwrap();
    assert!(over_tcp.status.success(), "{}", text(&over_tcp.stderr));
    assert_eq!(text(&over_tcp.stdout).trim(), "quiet");
    assert!(
        images.lines().any(|line| line.starts_with(&format!("{BUSYBOX} sha256:")) || line.starts_with(BUSYBOX)),
        "{images}"
    );
}
