//! Paths an image names, from the attacker's side: symlinks and a `WorkingDir` that point at the host's root
//! (reachable under `/.keel-host` while the container's mounts are made, and as plain host paths to code that
//! runs on the host, such as named-volume population) must leave the host's files untouched and unread.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use keel_fixtures::containers::{busybox_archive, reaper, Outcome, TestHost};
use keel_fixtures::devices::image_with_layer;
use keel_fixtures::images::{raw_tar, RawEntry};
use keel_images::ImageReference;
use keel_logs::error_chain;

const CACHE: &str = env!("CARGO_TARGET_TMPDIR");
const SENTINEL: &str = "the host's own file\n";

/// A host directory the attacks aim at, holding a sentinel file (and `secret/data/passwords`).
fn victim(host: &TestHost) -> PathBuf {
    let dir = host.temp.path().join("victim");
    std::fs::create_dir_all(dir.join("secret/data")).unwrap();
    std::fs::write(dir.join("sentinel"), SENTINEL).unwrap();
    std::fs::write(dir.join("secret/data/passwords"), "registry: hunter2\n").unwrap();
    dir
}

/// Every path under `dir` with its file contents (empty for directories and others).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut seen = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                pending.push(entry.unwrap().path());
            }
            seen.insert(path, Vec::new());
        } else if meta.is_file() {
            let contents = std::fs::read(&path).unwrap();
            seen.insert(path, contents);
        } else {
            seen.insert(path, b"(other)".to_vec());
        }
    }
    seen
}

/// Imports busybox plus `layer` (and `change_config`) as `reference`.
fn hostile_image(
    host: &TestHost,
    reference: &str,
    layer: &[RawEntry<'_>],
    change_config: impl FnOnce(&mut serde_json::Value),
) -> ImageReference {
    let archive = image_with_layer(
        &busybox_archive(Path::new(CACHE)),
        host.temp.path(),
        reference,
        &raw_tar(layer),
        change_config,
    );
    host.store.import_archive(&archive).unwrap();
    reference.parse().unwrap()
}

/// Creates and starts container `name`: `Err` with the message when create or start refuses, else how it ended.
fn run(host: &TestHost, image: &ImageReference, name: &str, keys: &str) -> Result<Outcome, String> {
    let text =
        format!("[containers.{name}]\nimage = \"{image}\"\ncommand = [\"sh\", \"-c\", \"pwd; ls /srv/data\"]\n{keys}");
    let config = keel_config::UserData::parse("test", &text).unwrap().containers.remove(name).unwrap();
    let stored = host.store.image(image).unwrap();
    let dirs = host.runtime_dirs();
    let started = keel_runtime::Container::create(name, &config, &stored.layer_dirs, &host.run_config(&stored), &dirs)
        .map_err(|error| error_chain(&error))
        .and_then(|container| container.start(&reaper()).map_err(|error| error_chain(&error)));
    let result = started.map(|mut running| {
        let mut stdout = String::new();
        let mut stderr = String::new();
        running.stdout.read_to_string(&mut stdout).unwrap();
        running.stderr.read_to_string(&mut stderr).unwrap();
        let status = running.exit.recv_timeout(Duration::from_secs(60)).unwrap();
        Outcome { code: status.code(), stdout, stderr }
    });
    keel_runtime::remove_container(&dirs.containers_dir, name, dirs.cgroup_root.as_deref()).unwrap();
    result
}

#[test]
fn an_etc_symlink_to_the_host_leaves_the_host_directory_untouched() {
    let host = TestHost::new(Path::new(CACHE));
    let victim = victim(&host);
    let before = snapshot(&victim);
    // Through the host's root as the child sees it before detaching it, and as a plain host path.
    let via_host_root = format!("/.keel-host{}", victim.display());
    let plain = victim.display().to_string();
    for (index, target) in [via_host_root.as_str(), plain.as_str()].into_iter().enumerate() {
        let image =
            hostile_image(&host, &format!("keel-test/etc-link:{index}"), &[RawEntry::Symlink("etc", target)], |_| {});
        let result = run(&host, &image, &format!("etc{index}"), "");
        assert_eq!(snapshot(&victim), before, "etc -> {target} changed the host directory ({result:?})");
        for file in ["hosts", "hostname", "resolv.conf"] {
            assert!(!victim.join(file).exists(), "etc -> {target}: {file} was created on the host");
        }
    }
}

#[test]
fn a_workdir_under_the_host_root_leaves_the_host_directory_untouched() {
    let host = TestHost::new(Path::new(CACHE));
    let victim = victim(&host);
    let before = snapshot(&victim);
    let workdir = format!("/.keel-host{}/made-by-the-image", victim.display());
    let direct = hostile_image(&host, "keel-test/workdir:1", &[], |config| {
        config["config"]["WorkingDir"] = workdir.clone().into()
    });
    let result = run(&host, &direct, "wd1", "");
    assert_eq!(snapshot(&victim), before, "WorkingDir {workdir} changed the host directory ({result:?})");
    assert!(result.is_err(), "WorkingDir {workdir} should be refused: {result:?}");
    // The same through an image symlink: /app -> /.keel-host/<victim>.
    let link_target = format!("/.keel-host{}", victim.display());
    let linked = hostile_image(&host, "keel-test/workdir:2", &[RawEntry::Symlink("app", &link_target)], |config| {
        config["config"]["WorkingDir"] = "/app/made-by-the-image".into()
    });
    let result = run(&host, &linked, "wd2", "");
    assert_eq!(snapshot(&victim), before, "WorkingDir /app/… via app -> {link_target} changed the host ({result:?})");
    assert!(result.is_err(), "{result:?}");
}

#[test]
fn a_volume_under_an_image_symlink_to_the_host_gets_no_host_file() {
    let host = TestHost::new(Path::new(CACHE));
    let victim = victim(&host);
    let before = snapshot(&victim);
    let target = victim.join("secret").display().to_string();
    let image = hostile_image(&host, "keel-test/srv-link:1", &[RawEntry::Symlink("srv", &target)], |_| {});
    let result = run(&host, &image, "vol1", "volumes = [\"store:/srv/data\"]");
    let volume = host.state_dir.join("volumes/store");
    let copied: Vec<_> =
        std::fs::read_dir(&volume).map(|entries| entries.map(|e| e.unwrap().path()).collect()).unwrap_or_default();
    assert!(copied.is_empty(), "the volume got host files: {copied:?} ({result:?})");
    assert_eq!(snapshot(&victim), before, "{result:?}");
    if let Ok(out) = &result {
        assert!(!out.stdout.contains("passwords"), "{}", out.stdout);
    }
}

#[test]
fn symlinks_inside_the_image_still_lead_volumes_and_workdirs_within_it() {
    let host = TestHost::new(Path::new(CACHE));
    let image = hostile_image(
        &host,
        "keel-test/inner-links:1",
        &[
            RawEntry::Dir("opt/"),
            RawEntry::Dir("opt/srv/"),
            RawEntry::Dir("opt/srv/data/"),
            RawEntry::File("opt/srv/data/seed", b"from the image\n"),
            RawEntry::Symlink("srv", "/opt/srv"),
            RawEntry::Symlink("app", "../opt"),
        ],
        |config| config["config"]["WorkingDir"] = "/app/work".into(),
    );
    let out = run(&host, &image, "inner1", "volumes = [\"seeded:/srv/data\"]").unwrap();
    assert_eq!(out.code, 0, "{} / {}", out.stdout, out.stderr);
    // busybox pwd prints the physical directory: /app/work is /opt/work.
    assert_eq!(out.stdout, "/opt/work\nseed\n", "{}", out.stderr);
    assert_eq!(std::fs::read_to_string(host.state_dir.join("volumes/seeded/seed")).unwrap(), "from the image\n");
}

#[test]
fn passwd_is_read_inside_the_image_and_bounded() {
    let host = TestHost::new(Path::new(CACHE));
    let victim = victim(&host);
    std::fs::write(victim.join("passwd"), "intruder:x:4242:4242::/:/bin/sh\n").unwrap();
    let target = victim.display().to_string();
    let linked = hostile_image(&host, "keel-test/passwd-link:1", &[RawEntry::Symlink("etc", &target)], |_| {});
    let result = run(&host, &linked, "pw1", "user = \"intruder\"");
    match result {
        Err(message) => assert!(message.contains("unable to find user intruder"), "{message}"),
        Ok(out) => panic!("the host's passwd named the user: {out:?}"),
    }
    let huge = "x".repeat(1 << 20) + "\n";
    let large =
        hostile_image(&host, "keel-test/passwd-large:1", &[RawEntry::File("etc/passwd", huge.as_bytes())], |_| {});
    match run(&host, &large, "pw2", "") {
        Err(message) => assert!(message.contains("/etc/passwd is larger than 1048576 bytes"), "{message}"),
        Ok(out) => panic!("a 1 MiB passwd was read: {out:?}"),
    }
}

#[test]
fn an_image_cannot_choose_where_the_host_root_goes() {
    let host = TestHost::new(Path::new(CACHE));
    let victim = victim(&host);
    let before = snapshot(&victim);
    // pivot_root puts the host's root at `.keel-host`; a symlink there would put it at the image's `/srv`.
    let image = hostile_image(
        &host,
        "keel-test/host-root-link:1",
        &[RawEntry::Dir("srv/"), RawEntry::Symlink(".keel-host", "srv")],
        |config| config["config"]["WorkingDir"] = format!("/srv{}/made-by-the-image", victim.display()).into(),
    );
    let result = run(&host, &image, "hr1", "");
    assert_eq!(snapshot(&victim), before, "{result:?}");
    assert!(result.as_ref().is_err_and(|message| message.contains("PivotRoot: Not a directory")), "{result:?}");
}
