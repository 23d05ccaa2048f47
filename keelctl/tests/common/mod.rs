//! What keelctl's test binaries share: running keelctl against one host and reading its output.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::process::{Command, Output};

pub const KEELCTL: &str = env!("CARGO_BIN_EXE_keelctl");

/// `keelctl --host HOST args` (KEEL_HOST cleared, so only `--host` counts).
pub fn keelctl(host: &str, args: &[&str]) -> Output {
    Command::new(KEELCTL).arg("--host").arg(host).args(args).env_remove("KEEL_HOST").output().unwrap()
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs keelctl, asserts exit 0, returns stdout.
pub fn ok(host: &str, args: &[&str]) -> String {
    let output = keelctl(host, args);
    assert_eq!(output.status.code(), Some(0), "keelctl {args:?}: {}", text(&output.stderr));
    text(&output.stdout)
}
