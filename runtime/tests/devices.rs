//! The device cgroup from the attacker's side: root in a container creating a node for a host disk, a layer
//! shipping a world-writable block node, and a `devices` entry with fewer permissions than `rwm`. The "host
//! disk" is a loop device over a small file that the test creates and detaches again.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use keel_config::UserData;
use keel_fixtures::containers::{busybox_archive, Outcome, TestHost};
use keel_fixtures::devices::{image_with_block_node, LoopDevice};
use keel_images::ImageReference;
use keel_runtime::Container;

const CACHE: &str = env!("CARGO_TARGET_TMPDIR");
const SECRET: &[u8] = b"keel host disk: secret bytes\n";
const EPERM: &str = "Operation not permitted";

/// Runs a shell script in a new container of `image` with `extra` TOML keys.
fn shell(host: &TestHost, image: &ImageReference, script: &str, extra: &str) -> Outcome {
    host.shell_in(image, "dev", script, extra)
}

fn secret_text() -> &'static str {
    std::str::from_utf8(SECRET).unwrap().trim_end()
}

#[test]
fn root_cannot_read_a_host_disk_through_mknod() {
    let host = TestHost::new(Path::new(CACHE));
    let disk = LoopDevice::new(host.temp.path(), "disk.img", SECRET);
    // The node is created (Docker keeps CAP_MKNOD and allows mknod of anything); opening it is what fails.
    let script = format!(
        "mknod /tmp/disk b {} {} && echo mknod-ok; head -c {} /tmp/disk; echo read=$?; echo x > /tmp/disk; echo write=$?",
        disk.major,
        disk.minor,
        SECRET.len()
    );
    let out = shell(&host, &host.busybox(), &script, "");
    assert!(out.stdout.contains("mknod-ok"), "mknod itself should succeed: {} / {}", out.stdout, out.stderr);
    assert!(!out.stdout.contains(secret_text()), "the container read the host disk: {}", out.stdout);
    assert!(out.stdout.contains("read=1") && out.stdout.contains("write=1"), "{}", out.stdout);
    assert_eq!(out.stderr.matches(EPERM).count(), 2, "read and write must both be EPERM: {}", out.stderr);
    assert_eq!(disk.backing_prefix(SECRET.len()), SECRET, "the disk was written");
}

#[test]
fn a_containers_files_are_roots_alone_on_the_host() {
    let host = TestHost::new(Path::new(CACHE));
    let dirs = host.runtime_dirs();
    let config =
        UserData::parse("test", &format!("[containers.c]\nimage = \"{}\"\n", keel_fixtures::containers::BUSYBOX))
            .unwrap()
            .containers
            .remove("c")
            .unwrap();
    let stored = host.store.image(&host.busybox()).unwrap();
    let image_config = host.run_config(&stored);
    let Ok(_container) = Container::create("c", &config, &stored.layer_dirs, &image_config, &dirs) else {
        panic!("create")
    };
    // The upper layer keeps the nodes a container makes; no host user but root may walk into it.
    let dir = std::fs::metadata(dirs.containers_dir.join("c")).unwrap();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&dir.permissions()) & 0o777, 0o700);
    keel_runtime::remove_container(&dirs.containers_dir, "c", dirs.cgroup_root.as_deref()).unwrap();
}

#[test]
fn a_layer_cannot_ship_an_open_block_node() {
    let host = TestHost::new(Path::new(CACHE));
    let disk = LoopDevice::new(host.temp.path(), "disk.img", SECRET);
    let reference = "keel-test/block-node:1";
    let archive =
        image_with_block_node(&busybox_archive(Path::new(CACHE)), host.temp.path(), reference, disk.major, disk.minor);
    host.store.import_archive(&archive).unwrap();
    let image: ImageReference = reference.parse().unwrap();
    // Docker's behaviour: the node is there, 0666, and nobody can open it.
    let out = shell(&host, &image, "ls -l /srv/disk; id -u; head -c 8 /srv/disk; echo read=$?", "user = \"nobody\"");
    assert!(out.stdout.starts_with("brw-rw-rw-"), "the layer's node is missing: {} / {}", out.stdout, out.stderr);
    assert!(out.stdout.contains("65534\n"), "{}", out.stdout);
    assert!(out.stdout.contains("read=1"), "{}", out.stdout);
    assert!(out.stderr.contains(EPERM), "{}", out.stderr);
    // On the host the node sits in the unpacked layer: only root may reach it there.
    let layers = std::fs::metadata(host.state_dir.join("layers")).unwrap();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&layers.permissions()) & 0o777, 0o700);
}

#[test]
fn a_configured_device_gets_exactly_its_permissions() {
    let host = TestHost::new(Path::new(CACHE));
    let disk = LoopDevice::new(host.temp.path(), "disk.img", SECRET);
    let devices = format!("devices = [\"{}:/dev/x:r\"]", disk.path.display());
    let script = format!("head -c {} /dev/x; echo read=$?; echo overwritten > /dev/x; echo write=$?", SECRET.len());
    let out = shell(&host, &host.busybox(), &script, &devices);
    assert!(out.stdout.contains(secret_text()), "the r device cannot be read: {} / {}", out.stdout, out.stderr);
    assert!(out.stdout.contains("read=0"), "{}", out.stdout);
    assert!(out.stdout.contains("write=1"), "{}", out.stdout);
    assert!(out.stderr.contains(EPERM), "{}", out.stderr);
    assert_eq!(disk.backing_prefix(SECRET.len()), SECRET, "the r device was written");

    // rw: the same device is writable.
    let devices = format!("devices = [\"{}:/dev/x:rw\"]", disk.path.display());
    let out = shell(&host, &host.busybox(), "printf overwritten > /dev/x; echo write=$?", &devices);
    assert_eq!(out.code, 0);
    assert!(out.stdout.contains("write=0"), "{} / {}", out.stdout, out.stderr);
}

#[test]
fn privileged_containers_get_every_host_device() {
    let host = TestHost::new(Path::new(CACHE));
    let disk = LoopDevice::new(host.temp.path(), "disk.img", SECRET);
    // As `docker run --privileged`: the host's nodes are in /dev with the host's mode, and all of them open.
    let script = format!("ls -l {0}; head -c {1} {0}; echo read=$?", disk.path.display(), SECRET.len());
    let out = shell(&host, &host.busybox(), &script, "privileged = true");
    assert!(out.stdout.starts_with("brw-------"), "{} / {}", out.stdout, out.stderr);
    assert!(out.stdout.contains(secret_text()), "{} / {}", out.stdout, out.stderr);
    assert!(out.stdout.contains("read=0"), "{}", out.stdout);
}

#[test]
fn without_a_cgroup_a_container_is_refused_rather_than_run_open() {
    let host = TestHost::new(Path::new(CACHE));
    let mut dirs = host.runtime_dirs();
    dirs.cgroup_root = None;
    let stored = host.store.image(&host.busybox()).unwrap();
    let image_config = host.run_config(&stored);
    let text = format!(
        "[containers.open]\nimage = \"{0}\"\ncommand = [\"true\"]\n\n[containers.root]\nimage = \"{0}\"\n\
         command = [\"true\"]\nprivileged = true\n",
        keel_fixtures::containers::BUSYBOX
    );
    let mut containers = UserData::parse("test", &text).unwrap().containers;
    let open = containers.remove("open").unwrap();
    let Err(error) = Container::create("open", &open, &stored.layer_dirs, &image_config, &dirs) else {
        panic!("a container without a device filter was created");
    };
    let message = error.to_string();
    assert!(message.contains("container open") && message.contains("device filter"), "{message}");
    // A privileged container may open every device anyway: it needs no filter.
    let root = containers.remove("root").unwrap();
    assert!(Container::create("root", &root, &stored.layer_dirs, &image_config, &dirs).is_ok());
}
