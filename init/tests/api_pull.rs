//! `docker pull` and `docker image inspect` against `keel supervise`, pulling from the Debian `docker-registry` on
//! loopback (a `[registries]` entry makes it plain HTTP): Docker's progress stream as the CLI prints it, "Image
//! is up to date" the second time, the pull in `docker events`, a failed pull as an error, and the pulled image's
//! ImageInspect.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

use keel_fixtures::containers::TestHost;
use keel_fixtures::images::Layout;
use keel_fixtures::registry::Registry;
use keel_fixtures::supervise::KeelSupervise;

const CACHE: &str = env!("CARGO_TARGET_TMPDIR");
const KEEL: &str = env!("CARGO_BIN_EXE_keel");

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn stamp(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap();
    format!("{}.{:09}", since.as_secs(), since.subsec_nanos())
}

#[test]
fn docker_pull_streams_progress_and_image_inspect_shows_the_image() {
    let host = TestHost::new(Path::new(CACHE));
    let registry = Registry::start(&host.temp.path().join("registry"));
    let layout = Layout::create(&host.temp.path().join("build"));
    layout.new_image("v1");
    layout.add_layer("v1", |rootfs| std::fs::write(rootfs.join("hello.txt"), "hello from the registry\n").unwrap());
    layout.add_layer("v1", |rootfs| std::fs::write(rootfs.join("second.txt"), "a second layer\n").unwrap());
    layout.push("v1", &registry.host(), "keel/app:v1", None);

    let config = format!("[registries.\"{}\"]\ninsecure = true\n", registry.host());
    let supervise = KeelSupervise::start(Path::new(KEEL), &host, &config);
    let config_dir = host.temp.path().join("docker-config");
    std::fs::create_dir_all(&config_dir).unwrap();
    let docker = |args: &[&str]| -> Output {
        Command::new("docker")
            .args(args)
            .env("DOCKER_HOST", format!("unix://{}", supervise.socket.display()))
            .env("DOCKER_CONFIG", &config_dir)
            .output()
            .unwrap()
    };
    let image = format!("{}/keel/app:v1", registry.host());
    let began = SystemTime::now();

    let pulled = docker(&["pull", &image]);
    let out = text(&pulled.stdout);
    assert!(pulled.status.success(), "{out}{}", text(&pulled.stderr));
    assert!(out.contains(&format!("Status: Downloaded newer image for {image}")), "{out}");
    assert!(out.contains("v1: Pulling from"), "{out}");
    assert_eq!(out.matches(": Pull complete").count(), 2, "a line per layer: {out}");
    assert!(out.lines().any(|line| line.starts_with("Digest: sha256:")), "{out}");

    let again = docker(&["pull", &image]);
    let out = text(&again.stdout);
    assert!(again.status.success(), "{out}{}", text(&again.stderr));
    assert!(out.contains(&format!("Status: Image is up to date for {image}")), "{out}");
    assert_eq!(out.matches(": Already exists").count(), 2, "{out}");

    let listed = docker(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(text(&listed.stdout).lines().any(|line| line == image), "{}", text(&listed.stdout));

    let inspect = docker(&[
        "image",
        "inspect",
        &image,
        "--format",
        "{{.Id}}|{{index .RepoTags 0}}|{{index .RepoDigests 0}}|{{.Os}}/{{.Architecture}}|{{len .RootFS.Layers}}|{{.RootFS.Type}}|{{.Size}}",
    ]);
    let out = text(&inspect.stdout);
    assert!(inspect.status.success(), "{}", text(&inspect.stderr));
    let fields: Vec<&str> = out.trim().split('|').collect();
    assert!(fields[0].starts_with("sha256:") && fields[0].len() == 71, "{out}");
    assert_eq!(fields[1], image);
    assert!(fields[2].starts_with(&format!("{}/keel/app@sha256:", registry.host())), "{out}");
    assert_eq!(&fields[3..6], ["linux/amd64", "2", "layers"], "{out}");
    assert!(fields[6].parse::<u64>().unwrap() > 0, "{out}");
    // By id prefix too, and the layers are the config's diff_ids.
    let by_id = docker(&["image", "inspect", &fields[0][7..19], "--format", "{{index .RepoTags 0}}"]);
    assert_eq!(text(&by_id.stdout).trim(), image, "{}", text(&by_id.stderr));
    let missing = docker(&["image", "inspect", "nosuch:1"]);
    assert!(!missing.status.success() && text(&missing.stderr).contains("No such image: nosuch:1"));

    // The pull is an image event.
    let events = docker(&[
        "events",
        "--since",
        &stamp(began),
        "--until",
        &stamp(SystemTime::now()),
        "--filter",
        "type=image",
        "--format",
        "{{.Type}} {{.Action}} {{.Actor.ID}}",
    ]);
    let expected = format!("image pull {image}");
    assert_eq!(text(&events.stdout).lines().collect::<Vec<_>>(), [expected.as_str(), expected.as_str()]);

    // A pull that fails says why, and the CLI fails.
    let failed = docker(&["pull", &format!("{}/keel/nosuch:v1", registry.host())]);
    assert!(!failed.status.success());
    let said = text(&failed.stderr) + &text(&failed.stdout);
    assert!(said.contains("keel/nosuch:v1"), "{said}");
}
