//! keelctl against a real `keel supervise` (its API socket, and TCP where `[api] tcp` asks): `status`, `ps [-a]`,
//! `inspect`, `logs [-f] [--tail] [-t]`, `start`, `stop -t`, `restart -t`, `kill -s` and `images`, each for people
//! and with `--json`, output checked; and the exit codes of an unknown container (1) and an unreachable host (3).
//! Runs as root, like the supervisor's runtime tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use keel_fixtures::containers::{wait_for, TestHost, BUSYBOX};
use keel_fixtures::supervise::{keel_binary, KeelSupervise};
use serde_json::Value;

mod common;

use common::{keelctl, ok, text, KEELCTL};

const CACHE: &str = env!("CARGO_TARGET_TMPDIR");

fn json(host: &str, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&ok(host, &all)).unwrap()
}

/// The rows of a table (header first), each split at runs of 3+ spaces, as the columns are separated.
fn rows(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .map(|line| line.split("   ").map(str::trim).filter(|cell| !cell.is_empty()).map(str::to_owned).collect())
        .collect()
}

/// A loopback port free now (bound and released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn every_container_command_for_people_and_as_json() {
    let host = TestHost::new(Path::new(CACHE));
    let port = free_port();
    let config = format!(
        "[containers.web]\nimage = \"{BUSYBOX}\"\nrestart = \"always\"\nlabels = {{ tier = \"front\" }}\n\
         command = [\"sh\", \"-c\", \"i=0; while true; do i=$((i+1)); echo out $i; echo err $i >&2; sleep 0.2; done\"]\n\
         [containers.deaf]\nimage = \"{BUSYBOX}\"\ncommand = [\"sleep\", \"100000\"]\nstop_timeout = 30\n\
         [containers.done]\nimage = \"{BUSYBOX}\"\ncommand = [\"sh\", \"-c\", \"exit 3\"]\n\
         [api]\ntcp = \"127.0.0.1:{port}\"\n"
    );
    let supervise = KeelSupervise::start(&keel_binary(), &host, &config);
    let unix = format!("unix://{}", supervise.socket.display());
    let tcp = format!("tcp://127.0.0.1:{port}");
    let unix = unix.as_str();

    // ps -a as JSON: the server's array, until web and deaf run and done has exited.
    wait_for("web and deaf running, done exited", Duration::from_secs(60), || {
        let listing = json(unix, &["ps", "-a"]);
        let state = |name: &str| {
            listing.as_array().unwrap().iter().find(|c| c["Names"][0] == format!("/{name}")).map(|c| c["State"].clone())
        };
        (state("web") == Some("running".into())
            && state("deaf") == Some("running".into())
            && state("done") == Some("exited".into()))
        .then_some(())
    });
    // ps for people: docker's columns, aligned; done only with -a, with its exit code.
    let table = ok(unix, &["ps"]);
    let header = table.lines().next().unwrap();
    assert_eq!(rows(header)[0], ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "NAMES"], "{table}");
    // In characters: the cut command ends in a multi-byte `…`.
    let status_column = header[..header.find("STATUS").unwrap()].chars().count();
    let web = rows(&table).into_iter().find(|row| row.last().is_some_and(|name| name == "web")).unwrap();
    assert_eq!(web[0].len(), 12, "12 digits of the id: {web:?}");
    assert!(web[0].bytes().all(|byte| byte.is_ascii_hexdigit()), "{web:?}");
    assert_eq!(web[1], BUSYBOX);
    assert!(web[2].starts_with("\"sh -c i=0"), "{web:?}");
    assert!(web[4].starts_with("Up "), "{web:?}");
    for line in table.lines().skip(1) {
        let status: String = line.chars().skip(status_column).collect();
        assert!(status.starts_with("Up "), "aligned: {table}");
    }
    assert!(!table.contains(" done\n"), "ps without -a lists an exited container:\n{table}");
    let all = ok(unix, &["ps", "-a"]);
    let done = rows(&all).into_iter().find(|row| row.last().is_some_and(|name| name == "done")).unwrap();
    assert!(done[4].starts_with("Exited (3) "), "{done:?}");
    // The same over TCP.
    assert_eq!(rows(&ok(&tcp, &["ps", "-a"])).len(), 4);

    // status: keel's own view.
    let status = json(unix, &["status"]);
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(status["containers"].as_array().unwrap().len(), 3, "{status}");
    let people = ok(unix, &["status"]);
    assert!(people.lines().next().unwrap().starts_with("version") && people.contains(env!("CARGO_PKG_VERSION")));
    let table_start = people.find("NAME").unwrap();
    let status_rows = rows(&people[table_start..]);
    assert_eq!(status_rows[0], ["NAME", "STATE", "RESTARTS"]);
    assert!(status_rows.iter().any(|row| row[0] == "web"), "{people}");

    // inspect: a summary for people, Docker's document as JSON.
    let inspect = ok(unix, &["inspect", "web"]);
    assert!(inspect.lines().any(|line| line.starts_with("name ") && line.ends_with("   web")), "{inspect}");
    assert!(inspect.lines().any(|line| line.starts_with("state ") && line.contains("running (pid ")), "{inspect}");
    assert!(inspect.lines().any(|line| line.starts_with("restart ") && line.contains("always")), "{inspect}");
    assert!(inspect.lines().any(|line| line.starts_with("labels ") && line.ends_with("tier=front")), "{inspect}");
    let document = json(unix, &["inspect", &web[0]]);
    assert_eq!(document["Name"], "/web", "found by its short id");
    assert_eq!(document["Config"]["Labels"]["tier"], "front");
    assert_eq!(document["State"]["Running"], true);

    // logs: stdout and stderr demultiplexed, --tail, -t, JSON lines.
    wait_for("ten lines of web", Duration::from_secs(30), || {
        (text(&keelctl(unix, &["logs", "web"]).stdout).lines().count() >= 10).then_some(())
    });
    let logs = keelctl(unix, &["logs", "--tail", "3", "web"]);
    assert_eq!(logs.status.code(), Some(0));
    let (out, err) = (text(&logs.stdout), text(&logs.stderr));
    assert!(out.lines().all(|line| line.starts_with("out ")), "stdout: {out:?}");
    assert!(err.lines().all(|line| line.starts_with("err ")), "stderr: {err:?}");
    assert_eq!(out.lines().count() + err.lines().count(), 3, "--tail 3 gives three lines: {out:?} {err:?}");
    // The last line may be stdout's or stderr's.
    let stamped = keelctl(unix, &["logs", "-t", "--tail", "1", "web"]);
    let stamped = text(&stamped.stdout) + &text(&stamped.stderr);
    let stamp = stamped.split(' ').next().unwrap_or_default();
    assert!(stamp.len() >= 20 && stamp.starts_with("20") && stamp.ends_with('Z'), "{stamped:?}");
    let records = ok(unix, &["--json", "logs", "-t", "--tail", "4", "web"]);
    let records: Vec<Value> = records.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    assert_eq!(records.len(), 4);
    for record in &records {
        let (stream, line) = (record["stream"].as_str().unwrap(), record["line"].as_str().unwrap());
        assert!(
            (stream == "stdout" && line.starts_with("out ")) || (stream == "stderr" && line.starts_with("err ")),
            "{record}"
        );
        assert!(record["time"].as_str().unwrap().ends_with('Z'), "{record}");
    }
    // logs -f: the follower sees lines written after it started, in order.
    let mut follower = Command::new(KEELCTL)
        .args(["--host", unix, "logs", "-f", "--tail", "1", "web"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(follower.stdout.take().unwrap());
    let mut numbers = Vec::new();
    while numbers.len() < 5 {
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        numbers.push(line.trim().strip_prefix("out ").unwrap().parse::<u64>().unwrap());
    }
    assert!(numbers.windows(2).all(|pair| pair[1] == pair[0] + 1), "followed in order: {numbers:?}");
    follower.kill().unwrap();
    follower.wait().unwrap();

    // stop -t 1: deaf's `sleep` ignores SIGTERM, so it is killed after one second, not its configured 30.
    let asked = Instant::now();
    assert_eq!(ok(unix, &["stop", "-t", "1", "deaf"]), "deaf\n");
    let took = asked.elapsed();
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(15), "stop -t 1 took {took:?}");
    let deaf = json(unix, &["inspect", "deaf"]);
    assert_eq!((deaf["State"]["Status"].as_str(), deaf["State"]["ExitCode"].as_i64()), (Some("exited"), Some(137)));
    // Stopping it again changes nothing (Docker's 304), which is still success.
    assert_eq!(json(unix, &["stop", "deaf"]), serde_json::json!({"name": "deaf", "action": "stop", "changed": false}));
    assert_eq!(json(unix, &["start", "deaf"]), serde_json::json!({"name": "deaf", "action": "start", "changed": true}));
    wait_for("deaf running again", Duration::from_secs(30), || {
        (json(unix, &["inspect", "deaf"])["State"]["Running"] == true).then_some(())
    });
    let pid = |name: &str| json(unix, &["inspect", name])["State"]["Pid"].as_i64().unwrap();
    let before = pid("web");
    assert_eq!(ok(unix, &["restart", "-t", "1", "web"]), "web\n");
    let after = pid("web");
    assert!(before != after && after != 0, "restart kept pid {before} (now {after})");
    assert_eq!(
        json(unix, &["restart", "-t", "1", "deaf"]),
        serde_json::json!({"name": "deaf", "action": "restart", "changed": true})
    );
    // kill -s: SIGKILL of deaf (restart "no") leaves it exited 137; both output forms.
    assert_eq!(ok(unix, &["kill", "-s", "KILL", "deaf"]), "deaf\n");
    wait_for("deaf killed", Duration::from_secs(30), || {
        let state = json(unix, &["inspect", "deaf"])["State"].clone();
        (state["Status"] == "exited" && state["ExitCode"] == 137).then_some(())
    });
    let killed = json(unix, &["kill", "-s", "SIGUSR1", "web"]);
    assert_eq!(killed, serde_json::json!({"name": "web", "action": "kill", "changed": true}));
    let refused = keelctl(unix, &["kill", "-s", "SIGNOPE", "web"]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused.stderr));

    // images: docker's columns; JSON is the server's array.
    let images = ok(unix, &["images"]);
    let image_rows = rows(&images);
    assert_eq!(image_rows[0], ["REPOSITORY", "TAG", "IMAGE ID", "SIZE"]);
    let (repository, tag) = BUSYBOX.rsplit_once(':').unwrap();
    let busybox = image_rows.iter().find(|row| row[0] == repository).unwrap_or_else(|| panic!("{images}"));
    assert_eq!(busybox[1], tag);
    assert_eq!(busybox[2].len(), 12);
    assert!(busybox[3].ends_with("MB") || busybox[3].ends_with("kB"), "{busybox:?}");
    let listed = json(unix, &["images"]);
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|image| image["RepoTags"][0].as_str().is_some_and(|tag| tag.ends_with(BUSYBOX))),
        "{listed}"
    );

    // The server's refusal is the message, exit 1; an unknown name among several still runs the others.
    let missing = keelctl(unix, &["inspect", "nosuch"]);
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(text(&missing.stderr), "keelctl: No such container: nosuch\n");
    let partly = keelctl(unix, &["start", "nosuch", "done"]);
    assert_eq!(partly.status.code(), Some(1));
    assert_eq!(text(&partly.stdout), "done\n");
    assert!(
        text(&partly.stderr).contains("keelctl: start nosuch: No such container: nosuch\n"),
        "{}",
        text(&partly.stderr)
    );
}

#[test]
fn an_unreachable_host_exits_3_naming_the_address_and_what_to_do() {
    let scratch = tempfile::tempdir().unwrap();
    let socket = scratch.path().join("nobody.sock");
    let host = format!("unix://{}", socket.display());
    let output = keelctl(&host, &["ps"]);
    assert_eq!(output.status.code(), Some(3));
    let stderr = text(&output.stderr);
    assert!(stderr.starts_with(&format!("keelctl: cannot connect to keel at {host}: ")), "{stderr}");
    assert!(stderr.contains("--host") && stderr.contains("KEEL_HOST"), "{stderr}");

    // KEEL_HOST is the default for --host; a closed TCP port is unreachable too.
    let port = free_port();
    let output = Command::new(KEELCTL)
        .args(["--json", "status"])
        .env("KEEL_HOST", format!("tcp://127.0.0.1:{port}"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3));
    assert!(text(&output.stderr).contains(&format!("cannot connect to keel at tcp://127.0.0.1:{port}")));
    // A bad address is a usage error.
    let output = keelctl("http://127.0.0.1:2375", &["ps"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("use unix:///PATH or tcp://HOST:PORT"), "{}", text(&output.stderr));
}
