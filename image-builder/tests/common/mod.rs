//! Shared setup of the image-building integration tests: finds the populated build directory and runs keel-build.
//!
//! These tests need the kernel cache that `make image` fills and the musl PID 1 binary: they read them from
//! `KEEL_BUILD_DIR` (the Makefile sets it), by default `<workspace>/build`, and fail saying so when they are missing.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The epoch every test build uses.
pub const EPOCH: &str = "1764374400";

pub struct BuildEnv {
    pub workspace: PathBuf,
    pub cache: PathBuf,
    pub init: PathBuf,
    pub recipe: PathBuf,
}

/// The build environment of a populated build directory.
pub fn build_env() -> BuildEnv {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_owned();
    let build_dir = std::env::var_os("KEEL_BUILD_DIR").map(PathBuf::from).unwrap_or_else(|| workspace.join("build"));
    let env = BuildEnv {
        cache: build_dir.join("cache"),
        init: workspace.join("target/x86_64-unknown-linux-musl/release/keel"),
        recipe: workspace.join("os-image/keel.toml"),
        workspace,
    };
    assert!(env.cache.is_dir(), "KEEL_BUILD_DIR has no cache: run `make image` first ({})", env.cache.display());
    assert!(env.init.is_file(), "no PID 1 binary at {}: run `make init` first", env.init.display());
    env
}

impl BuildEnv {
    /// The keel-build command for `out`, with the fixed epoch.
    pub fn command(&self, out: &Path, extra: &[&str]) -> Command {
        self.command_with_recipe(&self.recipe, out, extra)
    }

    /// The keel-build command for `out` from another recipe (a scratch copy), with the fixed epoch.
    pub fn command_with_recipe(&self, recipe: &Path, out: &Path, extra: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_keel-build"));
        command
            .arg("image")
            .arg("--recipe")
            .arg(recipe)
            .arg("--out")
            .arg(out)
            .arg("--init")
            .arg(&self.init)
            .arg("--container-init")
            .arg(&self.init)
            .arg("--cache")
            .arg(&self.cache)
            .args(extra)
            .env("SOURCE_DATE_EPOCH", EPOCH);
        command
    }
}

/// Runs `command` and fails the test with its output unless it succeeds.
pub fn run_ok(command: &mut Command) -> Output {
    let output = command.output().expect("command starts");
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Whether two files have the same bytes (`cmp` is much faster than comparing in a debug build).
pub fn same_bytes(a: &Path, b: &Path) -> bool {
    Command::new("cmp").arg("--quiet").arg(a).arg(b).status().expect("cmp starts").success()
}
