//! `keelctl validate`: the summary and exit 0 for a valid file (with warnings for what is not acted on yet), every error and exit 1 for a bad one, 111 for an
//! unreadable one and 100 for a bad command line.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

fn keelctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keelctl")).args(args).output().unwrap()
}

#[test]
fn valid_file_prints_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("user-data");
    std::fs::write(&path, "[host]\nhostname = \"web-1\"\n[containers.web]\nimage = \"nginx\"\n").unwrap();
    let output = keelctl(&["validate", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0));
    let expected =
        format!("{}: ok (hostname web-1; network: DHCP on every ethernet link; containers: web)\n", path.display());
    assert_eq!(String::from_utf8(output.stdout).unwrap(), expected);
}

#[test]
fn sections_not_acted_on_yet_are_valid_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("user-data");
    std::fs::write(&path, "[update]\nurl = \"https://updates.example/keel/\"\n").unwrap();
    let output = keelctl(&["validate", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0));
    let expected = format!(
        "warning: {}:2:7: update.url: accepted but not acted on yet: keel cannot install updates yet\n",
        path.display()
    );
    assert_eq!(String::from_utf8(output.stderr).unwrap(), expected);
    assert!(String::from_utf8(output.stdout).unwrap().contains(": ok"));
}

#[test]
fn invalid_file_prints_every_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("user-data");
    std::fs::write(&path, "[host]\nhostnme = \"x\"\n[containers.web]\nnetwork = \"bridge\"\n").unwrap();
    let output = keelctl(&["validate", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let name = path.display();
    let expected = format!(
        "{name}:2:1: host.hostnme: unknown key; expected one of hostname, shutdown_timeout, default_ulimits\n\
         {name}:3:1: containers.web.image: required key is missing\n\
         {name}:4:11: containers.web.network: bridge networking is not supported yet; use host or none\n\
         {name}: 3 errors\n"
    );
    assert_eq!(String::from_utf8(output.stderr).unwrap(), expected);
}

#[test]
fn unreadable_file_and_usage_errors() {
    assert_eq!(keelctl(&["validate", "/nonexistent/user-data"]).status.code(), Some(111));
    assert_eq!(keelctl(&["validate"]).status.code(), Some(100));
    assert_eq!(keelctl(&["frobnicate"]).status.code(), Some(100));
}
