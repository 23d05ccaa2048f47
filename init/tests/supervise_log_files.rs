//! `docker logs` served from the json-file logs of the real `keel supervise`: lines kept across a restart of the
//! supervisor with the same state dir, and `logs -f` going on across a rotation and a container restart.
//! Runs as root, like the supervisor's runtime tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;

use keel_fixtures::containers::{wait_for, TestHost, BUSYBOX};
use keel_fixtures::supervise::KeelSupervise;

const CACHE: &str = env!("CARGO_TARGET_TMPDIR");
const KEEL: &str = env!("CARGO_BIN_EXE_keel");

fn docker(socket: &Path, config_dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new("docker");
    command.args(args).env("DOCKER_HOST", format!("unix://{}", socket.display())).env("DOCKER_CONFIG", config_dir);
    command
}

/// Runs `docker args`, asserts success, returns stdout and stderr as they came (interleaved streams apart).
fn ok(socket: &Path, config_dir: &Path, args: &[&str]) -> (String, String) {
    let Output { status, stdout, stderr } = docker(socket, config_dir, args).output().expect("the docker CLI runs");
    let (stdout, stderr) =
        (String::from_utf8_lossy(&stdout).into_owned(), String::from_utf8_lossy(&stderr).into_owned());
    assert!(status.success(), "docker {args:?}: {status}\n{stderr}");
    (stdout, stderr)
}

fn docker_config(host: &TestHost) -> PathBuf {
    let dir = host.temp.path().join("docker-config");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn lines_survive_a_supervisor_restart_with_the_same_state_dir() {
    let host = TestHost::new(Path::new(CACHE));
    let config = format!(
        "[containers.once]\nimage = \"{BUSYBOX}\"\n\
         command = [\"sh\", \"-c\", \"for i in 1 2 3; do echo out $i; sleep 0.2; echo err $i >&2; sleep 0.2; done; sleep 100000\"]\n"
    );
    let config_dir = docker_config(&host);
    let expected_out = "out 1\nout 2\nout 3\n";
    {
        let supervise = KeelSupervise::start(Path::new(KEEL), &host, &config);
        wait_for("three lines on each stream", Duration::from_secs(60), || {
            let (out, err) = ok(&supervise.socket, &config_dir, &["logs", "once"]);
            (out == expected_out && err == "err 1\nerr 2\nerr 3\n").then_some(())
        });
    }
    // The same state dir: the container starts again and prints its lines after the first run's.
    let supervise = KeelSupervise::start(Path::new(KEEL), &host, &config);
    let twice = wait_for("the second run's lines after the first's", Duration::from_secs(60), || {
        let (out, err) = ok(&supervise.socket, &config_dir, &["logs", "once"]);
        (out.len() >= 2 * expected_out.len() && err.lines().count() >= 6).then_some((out, err))
    });
    assert_eq!(twice.0, expected_out.repeat(2));
    assert_eq!(twice.1, "err 1\nerr 2\nerr 3\n".repeat(2));
    // The last 4 lines are out 2, err 2, out 3, err 3: tail counts the lines of both streams.
    let tail = ok(&supervise.socket, &config_dir, &["logs", "--tail", "4", "once"]);
    assert_eq!(tail, ("out 2\nout 3\n".to_owned(), "err 2\nerr 3\n".to_owned()));
    let stdout_only = docker(&supervise.socket, &config_dir, &["logs", "once"]).stderr(Stdio::null()).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&stdout_only.stdout), expected_out.repeat(2));
    let file = host.state_dir.join("containers/once/once-json.log");
    let first = std::fs::read_to_string(&file).unwrap().lines().next().unwrap().to_owned();
    assert!(
        first.starts_with("{\"log\":\"out 1\\n\",\"stream\":\"stdout\",\"time\":\"20") && first.ends_with("Z\"}"),
        "{first}"
    );
}

/// The lines a `docker logs -f` prints, as they come.
fn follow(socket: &Path, config_dir: &Path, name: &str) -> (std::process::Child, Receiver<String>) {
    let mut child = docker(socket, config_dir, &["logs", "-f", name]).stdout(Stdio::piped()).spawn().unwrap();
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let (sender, lines) = channel();
    std::thread::spawn(move || {
        for line in stdout.lines() {
            let Ok(line) = line else { return };
            if sender.send(line).is_err() {
                return;
            }
        }
    });
    (child, lines)
}

#[test]
fn a_follower_goes_on_across_rotation_and_a_container_restart() {
    let host = TestHost::new(Path::new(CACHE));
    // About 75 bytes a line: a 4 KiB file rotates every ~54 lines.
    let config = format!(
        "[logs]\nmax_files = 2\n\
         [containers.ticker]\nimage = \"{BUSYBOX}\"\nlog_max_size = \"4k\"\nstop_timeout = 1\n\
         command = [\"sh\", \"-c\", \"i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.02; done\"]\n"
    );
    let config_dir = docker_config(&host);
    let supervise = KeelSupervise::start(Path::new(KEEL), &host, &config);
    let (mut child, lines) = follow(&supervise.socket, &config_dir, "ticker");
    let next = || lines.recv_timeout(Duration::from_secs(60)).expect("a followed line");
    let mut first_run = Vec::new();
    while first_run.len() < 150 {
        first_run.push(next());
    }
    let numbers = |run: &[String]| -> Vec<u64> {
        run.iter().map(|line| line.strip_prefix("tick ").unwrap().parse().unwrap()).collect()
    };
    let first = numbers(&first_run);
    assert_eq!(first, (1..=150).collect::<Vec<u64>>(), "every line once, in order, across rotations");
    let rotated = host.state_dir.join("containers/ticker/ticker-json.log.1");
    assert!(rotated.exists(), "150 lines rotated the 4k file");
    assert!(!host.state_dir.join("containers/ticker/ticker-json.log.2").exists(), "max_files = 2");
    ok(&supervise.socket, &config_dir, &["restart", "-t", "1", "ticker"]);
    // The rest of the first run, then the second run from tick 1 on, to past another rotation.
    let mut line = next();
    let mut last_of_first = 150;
    while line != "tick 1" {
        let number: u64 = line.strip_prefix("tick ").unwrap().parse().unwrap();
        assert_eq!(number, last_of_first + 1, "the first run goes on without a gap until the restart");
        last_of_first = number;
        line = next();
    }
    let mut second_run = vec![line];
    while second_run.len() < 120 {
        second_run.push(next());
    }
    assert_eq!(numbers(&second_run), (1..=120).collect::<Vec<u64>>());
    let _ = child.kill();
    let _ = child.wait();
    // Lines already rotated out of the two files are gone; what `docker logs` shows is what the files hold.
    let (all, _) = ok(&supervise.socket, &config_dir, &["logs", "--tail", "all", "ticker"]);
    let shown: Vec<&str> = all.lines().collect();
    assert!(shown.len() <= 2 * 4096 / 60, "at most two 4k files: {} lines", shown.len());
}
