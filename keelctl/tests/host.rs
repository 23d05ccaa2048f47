//! keelctl's host commands against a real `keel supervise`: `apply` (what changed; every error with line and column
//! and exit 4), `events --since --until` replaying a restart, `pull` from the Debian `docker-registry` on loopback
//! (a line per step off a terminal, a progress bar on one, the server's progress lines with `--json`, a failed pull
//! exit 1), and `reboot` and `poweroff` refused with the server's 409 message (keel supervise has no host to take
//! down). Each in both output forms. Runs as root.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use keel_fixtures::containers::{wait_for, TestHost, BUSYBOX};
use keel_fixtures::images::Layout;
use keel_fixtures::registry::Registry;
use keel_fixtures::supervise::{keel_binary, KeelSupervise};
use serde_json::Value;

mod common;

use common::{keelctl, ok, text, KEELCTL};

const CACHE: &str = env!("CARGO_TARGET_TMPDIR");

fn json_lines(stdout: &str) -> Vec<Value> {
    stdout.lines().map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))).collect()
}

fn unix_seconds(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap();
    format!("{}.{:09}", since.as_secs(), since.subsec_nanos())
}

fn config(changing_command: &str) -> String {
    format!(
        "[containers.steady]\nimage = \"{BUSYBOX}\"\ncommand = [\"sleep\", \"100000\"]\n\n\
         [containers.changing]\nimage = \"{BUSYBOX}\"\ncommand = [\"sh\", \"-c\", \"{changing_command}\"]\n"
    )
}

fn pid(host: &str, name: &str) -> i64 {
    let inspect: Value = serde_json::from_str(&ok(host, &["--json", "inspect", name])).unwrap();
    inspect["State"]["Pid"].as_i64().unwrap()
}

#[test]
fn apply_events_reboot_and_poweroff() {
    let host = TestHost::new(Path::new(CACHE));
    let supervise = KeelSupervise::start(&keel_binary(), &host, &config("sleep 100001"));
    let api = format!("unix://{}", supervise.socket.display());
    let api = api.as_str();
    wait_for("both running", Duration::from_secs(60), || {
        (pid(api, "steady") > 0 && pid(api, "changing") > 0).then_some(())
    });
    let (steady, changing) = (pid(api, "steady"), pid(api, "changing"));
    let status: Value = serde_json::from_str(&ok(api, &["--json", "status"])).unwrap();
    let generation = status["config"]["generation"].as_u64().unwrap();

    // apply, for people: the new generation and the one container that changed.
    let file = host.temp.path().join("user-data.toml");
    std::fs::write(&file, config("sleep 100002")).unwrap();
    let file_name = file.to_str().unwrap();
    assert_eq!(
        ok(api, &["apply", file_name]),
        format!("{file_name}: applied as generation {}; changed: changing\n", generation + 1)
    );
    wait_for("changing restarted", Duration::from_secs(60), || {
        let now = pid(api, "changing");
        (now > 0 && now != changing).then_some(())
    });
    assert_eq!(pid(api, "steady"), steady, "apply restarted a container that did not change");
    // As JSON: the server's reply; the same file again is the same generation and changes nothing.
    let reply: Value = serde_json::from_str(&ok(api, &["--json", "apply", file_name])).unwrap();
    assert_eq!(reply, serde_json::json!({"generation": generation + 1, "changed": []}));
    assert!(ok(api, &["apply", file_name]).ends_with("; no container changed\n"));

    // An invalid file: every error with its line and column, exit 4, nothing applied.
    let lines = config("sleep 100002").lines().count();
    std::fs::write(&file, format!("{}restart = \"sometimes\"\n[bogus]\n", config("sleep 100003"))).unwrap();
    let refused = keelctl(api, &["apply", file_name]);
    assert_eq!(refused.status.code(), Some(4), "{}", text(&refused.stderr));
    let stderr = text(&refused.stderr);
    let lines_of = |line: usize| format!("{file_name}:{line}:");
    let errors: Vec<&str> = stderr.lines().collect();
    assert_eq!(errors.len(), 3, "two errors and the count: {stderr}");
    assert!(errors[0].starts_with(&format!("{}11: containers.changing.restart: ", lines_of(lines + 1))), "{stderr}");
    assert!(errors[0].contains("sometimes"), "{stderr}");
    assert!(errors[1].starts_with(&format!("{}2: ", lines_of(lines + 2))) && errors[1].contains("bogus"), "{stderr}");
    assert_eq!(errors[2], format!("keelctl: {file_name}: 2 errors"));
    let refused = keelctl(api, &["--json", "apply", file_name]);
    assert_eq!(refused.status.code(), Some(4));
    let reply: Value = serde_json::from_slice(&refused.stdout).unwrap();
    let positions: Vec<(u64, u64)> = reply["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|error| (error["line"].as_u64().unwrap(), error["column"].as_u64().unwrap()))
        .collect();
    assert_eq!(positions, [(lines as u64 + 1, 11), (lines as u64 + 2, 2)], "{reply}");
    let status: Value = serde_json::from_str(&ok(api, &["--json", "status"])).unwrap();
    assert_eq!(status["config"]["generation"].as_u64(), Some(generation + 1), "an invalid apply changed nothing");
    let people = ok(api, &["status"]);
    assert!(people.contains(&format!("generation {}", generation + 1)), "{people}");

    // events --since --until: the restart of steady, replayed in order, for people and as JSON lines.
    let since = SystemTime::now();
    assert_eq!(ok(api, &["restart", "-t", "1", "steady"]), "steady\n");
    let until = SystemTime::now() + Duration::from_millis(500);
    std::thread::sleep(Duration::from_millis(600));
    let (since, until) = (unix_seconds(since), unix_seconds(until));
    let events = ok(api, &["events", "--since", &since, "--until", &until]);
    let actions: Vec<&str> = events
        .lines()
        .filter(|line| line.contains("name=steady"))
        .map(|line| line.split(' ').nth(2).unwrap())
        .collect();
    assert!(actions.ends_with(&["start", "restart"]) && actions.contains(&"die"), "{events}");
    let first = events.lines().next().unwrap();
    assert!(first.starts_with("20") && first.split(' ').next().unwrap().ends_with('Z'), "{first}");
    assert!(first.split(' ').nth(1) == Some("container"), "{first}");
    let records = json_lines(&ok(api, &["--json", "events", "--since", &since, "--until", &until]));
    assert_eq!(records.len(), events.lines().count());
    assert!(records.iter().all(|record| record["Type"] == "container" && record["timeNano"].is_i64()));
    assert_eq!(records.last().unwrap()["Action"], "restart");
    assert_eq!(records.last().unwrap()["Actor"]["Attributes"]["name"], "steady");

    // reboot and poweroff: refused by keel supervise with its message, exit 1, in both forms.
    for command in ["reboot", "poweroff"] {
        let refused = keelctl(api, &[command]);
        assert_eq!(refused.status.code(), Some(1), "{command}");
        let stderr = text(&refused.stderr);
        assert!(stderr.starts_with("keelctl: keel supervise has no host to "), "{command}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{command}: {stderr}");
        let refused = keelctl(api, &["--json", command]);
        assert_eq!(refused.status.code(), Some(1));
        assert!(text(&refused.stderr).contains("keel supervise has no host to "));
        assert!(refused.stdout.is_empty(), "nothing on stdout for a refusal");
    }
}

#[test]
fn pull_prints_each_step_or_the_servers_progress_lines() {
    let host = TestHost::new(Path::new(CACHE));
    let registry = Registry::start(&host.temp.path().join("registry"));
    let layout = Layout::create(&host.temp.path().join("build"));
    layout.new_image("v1");
    layout.add_layer("v1", |rootfs| std::fs::write(rootfs.join("hello.txt"), "hello from the registry\n").unwrap());
    layout.add_layer("v1", |rootfs| std::fs::write(rootfs.join("second.txt"), "a second layer\n").unwrap());
    layout.push("v1", &registry.host(), "keel/app:v1", None);
    let config = format!("[registries.\"{}\"]\ninsecure = true\n", registry.host());
    let supervise = KeelSupervise::start(&keel_binary(), &host, &config);
    let api = format!("unix://{}", supervise.socket.display());
    let api = api.as_str();
    let image = format!("{}/keel/app:v1", registry.host());

    // Off a terminal: one line per step, each layer's completion once.
    let out = ok(api, &["pull", &image]);
    assert!(out.starts_with("v1: Pulling from "), "{out}");
    assert_eq!(out.matches(": Pull complete\n").count(), 2, "a line per layer: {out}");
    assert_eq!(out.matches(": Downloading\n").count(), out.matches(": Pulling fs layer\n").count(), "{out}");
    assert!(out.lines().any(|line| line.starts_with("Digest: sha256:")), "{out}");
    assert!(out.ends_with(&format!("Status: Downloaded newer image for {image}\n")), "{out}");
    let images = ok(api, &["images"]);
    assert!(images.lines().any(|line| line.starts_with(&format!("{}/keel/app ", registry.host()))), "{images}");

    // As JSON: the server's lines as they came; the second pull finds the image up to date.
    let records = json_lines(&ok(api, &["--json", "pull", &image]));
    let last = records.last().unwrap();
    assert_eq!(last["status"], format!("Status: Image is up to date for {image}"), "{records:?}");

    // On a terminal (a pty from util-linux `script`): a progress bar instead of the step lines, then the summary.
    layout.push("v1", &registry.host(), "keel/other:v1", None);
    let other = format!("{}/keel/other:v1", registry.host());
    let shown = Command::new("script")
        .args(["--quiet", "--return", "--command"])
        .arg(format!("{KEELCTL} --host {api} pull {other}"))
        .arg("/dev/null")
        .env_remove("KEEL_HOST")
        .output()
        .unwrap();
    let screen = text(&shown.stdout);
    assert!(shown.status.success(), "{screen}");
    assert!(screen.ends_with(&format!("Status: Downloaded newer image for {other}\r\n")), "{screen:?}");
    assert!(!screen.contains("Pulling fs layer\r\n") && !screen.contains("Pull complete\r\n"), "{screen:?}");

    // A failed pull: the registry's error, exit 1, in both forms.
    let missing = format!("{}/keel/nosuch:v1", registry.host());
    let failed = keelctl(api, &["pull", &missing]);
    assert_eq!(failed.status.code(), Some(1));
    let stderr = text(&failed.stderr);
    assert!(stderr.starts_with(&format!("keelctl: pull {missing}: ")), "{stderr}");
    let failed = keelctl(api, &["--json", "pull", &missing]);
    assert_eq!(failed.status.code(), Some(1));
    let records = json_lines(&text(&failed.stdout));
    assert!(records.last().unwrap()["errorDetail"]["message"].is_string(), "{records:?}");
}
