//! Shared setup of the image-building integration tests: finds the populated build directory and runs keel-build.
//!
//! These tests need the kernel cache that `make image` fills and the musl PID 1 binary: they read them from
//! `KEEL_BUILD_DIR` (the Makefile sets it), by default `<workspace>/build`, and fail saying so when they are missing.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::FileExt;
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
        let mut command = self.slot_command("image", recipe, out);
        command.args(extra);
        command
    }

    /// The `keel-build bundle` command for `out`, signed with `key`, with the fixed epoch.
    pub fn bundle_command(&self, out: &Path, key: &Path, extra: &[&str]) -> Command {
        let mut command = self.slot_command("bundle", &self.recipe, out);
        command.arg("--key").arg(key).args(extra);
        command
    }

    /// `keel-build <subcommand>` with what `image` and `bundle` both take (the test binary stands in for both
    /// inits), with the fixed epoch.
    fn slot_command(&self, subcommand: &str, recipe: &Path, out: &Path) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_keel-build"));
        command
            .arg(subcommand)
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
            .env("SOURCE_DATE_EPOCH", EPOCH);
        command
    }
}

/// Runs `keel-build keygen --out dir`; returns the secret and public key paths.
pub fn keygen(dir: &Path) -> (PathBuf, PathBuf) {
    run_ok(Command::new(env!("CARGO_BIN_EXE_keel-build")).arg("keygen").arg("--out").arg(dir));
    (dir.join("update.key"), dir.join("update.pub"))
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

/// A partition of a disk image, as `sfdisk -J` lists it.
pub struct Partition {
    pub name: String,
    pub type_guid: String,
    pub start: u64,
    pub size: u64,
}

/// The partitions of `image`, in table order.
pub fn partitions(image: &Path) -> Vec<Partition> {
    let output = run_ok(Command::new("sfdisk").arg("-J").arg(image));
    let table: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let sector = table["partitiontable"]["sectorsize"].as_u64().unwrap_or(512);
    table["partitiontable"]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|partition| Partition {
            name: partition["name"].as_str().unwrap().to_owned(),
            type_guid: partition["type"].as_str().unwrap().to_owned(),
            start: partition["start"].as_u64().unwrap() * sector,
            size: partition["size"].as_u64().unwrap() * sector,
        })
        .collect()
}

/// Copies a partition out of the image into its own file.
pub fn extract(image: &Path, partition: &Partition, to: PathBuf) -> PathBuf {
    let mut bytes = vec![0u8; partition.size as usize];
    std::fs::File::open(image).unwrap().read_exact_at(&mut bytes, partition.start).unwrap();
    std::fs::write(&to, bytes).unwrap();
    to
}

/// Runs an mtools command on the FAT filesystem at `offset` of `image`; its stdout.
pub fn mtools(tool: &str, image: &Path, offset: u64, args: &[&str]) -> String {
    let output = run_ok(Command::new(tool).arg("-i").arg(format!("{}@@{offset}", image.display())).args(args));
    String::from_utf8(output.stdout).unwrap()
}
