//! `keel-build config-drive`: every format × layout builds with the right label and files, reproducibly, and
//! invalid user-data is refused with exit 100 and every error on stderr.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

const USER_DATA: &str =
    "[host]\nhostname = \"web-1\"\n\n[containers.web]\nimage = \"nginx:1.27\"\nrestart = \"always\"\n";

fn keel_build(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keel-build"))
        .arg("config-drive")
        .args(args)
        .env("SOURCE_DATE_EPOCH", "1764374400")
        .output()
        .unwrap()
}

fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program).args(args).output().unwrap();
    assert!(output.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

/// Builds a drive and returns its path.
fn build(dir: &Path, format: &str, layout: &str, meta_data: Option<&str>) -> String {
    let user_data = dir.join("user-data.toml");
    std::fs::write(&user_data, USER_DATA).unwrap();
    let out = dir.join(format!("drive-{format}-{layout}.img"));
    let mut args = vec!["--user-data", user_data.to_str().unwrap(), "--format", format, "--layout", layout];
    let meta_path = dir.join("meta");
    if let Some(meta_data) = meta_data {
        std::fs::write(&meta_path, meta_data).unwrap();
        args.extend(["--meta-data", meta_path.to_str().unwrap()]);
    }
    args.extend(["--out", out.to_str().unwrap()]);
    let output = keel_build(&args);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    out.to_str().unwrap().to_owned()
}

fn blkid_label(image: &str) -> String {
    run("blkid", &["-o", "value", "-s", "LABEL", image]).trim().to_owned()
}

fn vfat_file(image: &str, path: &str) -> String {
    run("mtype", &["-i", image, &format!("::{path}")])
}

fn iso_file(image: &str, path: &str, dir: &Path) -> String {
    let target = dir.join("extracted");
    let _ = std::fs::remove_dir_all(&target);
    run("xorriso", &["-osirrox", "on", "-indev", image, "-extract", "/", target.to_str().unwrap()]);
    std::fs::read_to_string(target.join(path)).unwrap()
}

#[test]
fn vfat_nocloud() {
    let dir = tempfile::tempdir().unwrap();
    let image = build(dir.path(), "vfat", "nocloud", None);
    assert_eq!(blkid_label(&image), "CIDATA");
    assert_eq!(vfat_file(&image, "user-data"), USER_DATA);
    let meta_data = vfat_file(&image, "meta-data");
    assert!(meta_data.starts_with("instance-id: ") && meta_data.len() == "instance-id: ".len() + 13, "{meta_data}");
}

#[test]
fn vfat_config_2() {
    let dir = tempfile::tempdir().unwrap();
    let image = build(dir.path(), "vfat", "config-2", Some("instance-id: iid-7\nlocal-hostname: web-1\n"));
    assert_eq!(blkid_label(&image), "CONFIG-2");
    assert_eq!(vfat_file(&image, "openstack/latest/user_data"), USER_DATA);
    assert_eq!(vfat_file(&image, "openstack/latest/meta_data.json"), "{\"hostname\":\"web-1\",\"uuid\":\"iid-7\"}\n");
}

#[test]
fn iso_nocloud() {
    let dir = tempfile::tempdir().unwrap();
    let image = build(dir.path(), "iso9660", "nocloud", Some("instance-id: iid-8\n"));
    assert_eq!(blkid_label(&image), "cidata");
    assert_eq!(iso_file(&image, "user-data", dir.path()), USER_DATA);
    assert_eq!(iso_file(&image, "meta-data", dir.path()), "instance-id: iid-8\n");
}

#[test]
fn iso_config_2() {
    let dir = tempfile::tempdir().unwrap();
    let image = build(dir.path(), "iso9660", "config-2", None);
    assert_eq!(blkid_label(&image), "config-2");
    assert_eq!(iso_file(&image, "openstack/latest/user_data", dir.path()), USER_DATA);
    assert!(iso_file(&image, "openstack/latest/meta_data.json", dir.path()).starts_with("{\"uuid\":\""));
}

#[test]
fn drives_are_reproducible() {
    for format in ["vfat", "iso9660"] {
        let first = tempfile::tempdir().unwrap();
        let second = tempfile::tempdir().unwrap();
        let a = std::fs::read(build(first.path(), format, "nocloud", None)).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let b = std::fs::read(build(second.path(), format, "nocloud", None)).unwrap();
        assert!(a == b, "{format} drives differ");
    }
}

#[test]
fn invalid_user_data_is_refused_with_every_error() {
    let dir = tempfile::tempdir().unwrap();
    let user_data = dir.path().join("user-data");
    std::fs::write(
        &user_data,
        "[host]\nhostnme = \"x\"\n[containers.web]\nimage = \"nginx\"\nrestart = \"sometimes\"\n",
    )
    .unwrap();
    let out = dir.path().join("drive.img");
    let output = keel_build(&["--user-data", user_data.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(100));
    let stderr = String::from_utf8(output.stderr).unwrap();
    let name = user_data.display();
    assert!(
        stderr.contains(&format!(
            "{name}:2:1: host.hostnme: unknown key; expected one of hostname, shutdown_timeout, default_ulimits\n"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{name}:5:11: containers.web.restart: \"sometimes\" is not one of no, on-failure[:N], always, unless-stopped"
        )),
        "{stderr}"
    );
    assert!(!out.exists());

    let missing = keel_build(&["--user-data", "/nonexistent/user-data", "--out", out.to_str().unwrap()]);
    assert_eq!(missing.status.code(), Some(111));
}
