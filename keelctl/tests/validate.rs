//! `keelctl validate`: the summary and exit 0 for a valid file (with warnings for what is not acted on yet), every
//! error and exit 4 for a bad one (also as JSON with line and column), 1 for an unreadable one and 2 for a bad
//! command line.

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
fn a_key_that_would_not_act_is_valid_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("user-data");
    let text = "[update]\nreboot = \"immediate\"\nwindow = { days = [\"sat\"], start = \"02:00\", length = \"3h\" }\n";
    std::fs::write(&path, text).unwrap();
    let output = keelctl(&["validate", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.starts_with(&format!(
            "warning: {}:3:10: update.window: not acted on: the window applies only with",
            path.display()
        )),
        "{stderr}"
    );
    assert!(String::from_utf8(output.stdout).unwrap().contains(": ok"));
}

#[test]
fn invalid_file_prints_every_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("user-data");
    std::fs::write(&path, "[host]\nhostnme = \"x\"\n[containers.web]\nnetwork = \"bridge\"\n").unwrap();
    let output = keelctl(&["validate", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(4));
    let name = path.display();
    let expected = format!(
        "{name}:2:1: host.hostnme: unknown key; expected one of hostname, shutdown_timeout, default_ulimits\n\
         {name}:3:1: containers.web.image: required key is missing\n\
         {name}:4:11: containers.web.network: bridge networking is not supported yet; use host or none\n\
         keelctl: {name}: 3 errors\n"
    );
    assert_eq!(String::from_utf8(output.stderr).unwrap(), expected);
}

#[test]
fn unreadable_file_and_usage_errors() {
    let unreadable = keelctl(&["validate", "/nonexistent/user-data"]);
    assert_eq!(unreadable.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(unreadable.stderr).unwrap(),
        "keelctl: cannot read /nonexistent/user-data: No such file or directory (os error 2)\n"
    );
    assert_eq!(keelctl(&["validate"]).status.code(), Some(2));
    assert_eq!(keelctl(&["frobnicate"]).status.code(), Some(2));
}

#[test]
fn json_reports_validity_and_every_error_with_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("user-data");
    std::fs::write(&path, "[containers.web]\nimage = \"nginx\"\nrestart = \"sometimes\"\n").unwrap();
    let output = keelctl(&["--json", "validate", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(4));
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(value["valid"], false);
    let errors = value["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{value}");
    assert_eq!((errors[0]["line"].as_u64(), errors[0]["column"].as_u64()), (Some(3), Some(11)), "{value}");
    assert!(errors[0]["message"].as_str().unwrap().starts_with("containers.web.restart: "), "{value}");

    std::fs::write(&path, "[containers.web]\nimage = \"nginx\"\n").unwrap();
    let output = keelctl(&["validate", "--json", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0));
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(value["valid"], true);
    assert_eq!(value["containers"], serde_json::json!(["web"]));
}
