//! The kernel lock file beside the recipe: a lock whose package has left the mirror (here one that never existed)
//! moves to Debian's current kernel, says so in one line and is rewritten, and a second build with the rewritten
//! lock is byte-identical; a cached `.deb` whose hash differs from the lock is refused, naming both hashes.
//!
//! These run the real apt index and mirror on a scratch copy of the recipe (the committed lock is only read), and
//! share the build's kernel cache so the current kernel is downloaded once per machine, not once per test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{build_env, run_ok, same_bytes, BuildEnv};
use keel_image_builder::kernel_lock::{self, LockedKernel};

/// A scratch copy of the recipe, with the recipe's extra files linked in, and its lock path.
fn scratch_recipe(env: &BuildEnv, dir: &Path) -> (PathBuf, PathBuf) {
    let recipe = dir.join("keel.toml");
    std::fs::copy(&env.recipe, &recipe).unwrap();
    std::os::unix::fs::symlink(env.workspace.join("os-image/files"), dir.join("files")).unwrap();
    let lock = kernel_lock::lock_path(&recipe);
    (recipe, lock)
}

fn build(env: &BuildEnv, recipe: &Path, out: &Path) -> Command {
    env.command_with_recipe(recipe, out, &[])
}

fn text(output: &Output) -> (String, String) {
    (String::from_utf8_lossy(&output.stdout).into_owned(), String::from_utf8_lossy(&output.stderr).into_owned())
}

/// What apt's index says `linux-image-amd64` depends on now.
fn current_kernel_package() -> String {
    let output = run_ok(Command::new("apt-cache").args(["show", "--no-all-versions", "linux-image-amd64"]));
    let show = String::from_utf8(output.stdout).unwrap();
    let depends = show.lines().find_map(|line| line.strip_prefix("Depends: ")).expect("Depends in apt-cache show");
    depends.split_whitespace().next().unwrap().to_owned()
}

#[test]
fn a_vanished_kernel_moves_to_the_current_one_and_the_next_build_is_identical() {
    let env = build_env();
    let dir = tempfile::tempdir().unwrap();
    let (recipe, lock) = scratch_recipe(&env, dir.path());
    let committed = kernel_lock::read(&kernel_lock::lock_path(&env.recipe)).unwrap().expect("a committed lock");
    // The committed version keeps the move forwards (builds refuse to move a lock to an older version).
    let vanished = LockedKernel {
        resolved_from: committed.resolved_from.clone(),
        package: "linux-image-0.0.0-0-keel-vanished-amd64".into(),
        version: committed.version.clone(),
        sha256: "0".repeat(64),
    };
    kernel_lock::write(&lock, &vanished).unwrap();

    let first = dir.path().join("first/keel.img");
    let started = std::time::Instant::now();
    let output = run_ok(&mut build(&env, &recipe, &first));
    eprintln!("first build (with the move): {:.1} s", started.elapsed().as_secs_f64());
    let (stdout, stderr) = text(&output);
    let moved = kernel_lock::read(&lock).unwrap().expect("the rewritten lock");
    assert_eq!(moved.resolved_from, "linux-image-amd64");
    assert_eq!(moved.package, current_kernel_package(), "the lock moves to what linux-image-amd64 depends on");
    let line = format!(
        "keel-build: kernel {} {} is no longer available; moving to {} {} (lock rewritten: {})\n",
        vanished.package,
        vanished.version,
        moved.package,
        moved.version,
        lock.display()
    );
    assert!(stderr.contains(&line), "expected the line\n{line}in\n{stderr}");
    eprint!("{line}");
    let summary = stdout.lines().find(|line| line.starts_with("kernel:")).expect("a kernel line in the summary");
    let release = moved.package.strip_prefix("linux-image-").unwrap();
    assert_eq!(summary, format!("kernel:        {} {} ({release})", moved.package, moved.version));
    let cached = env.cache.join(format!("{}_{}_amd64.deb", moved.package, moved.version));
    assert_eq!(keel_image_builder::kernel_package::sha256_file(&cached).unwrap(), moved.sha256);
    let lock_text = std::fs::read(&lock).unwrap();

    let second = dir.path().join("second/keel.img");
    let started = std::time::Instant::now();
    let output = run_ok(&mut build(&env, &recipe, &second));
    eprintln!("second build (locked): {:.1} s", started.elapsed().as_secs_f64());
    let (_, stderr) = text(&output);
    assert!(!stderr.contains("(lock "), "the second build leaves the lock alone:\n{stderr}");
    assert_eq!(std::fs::read(&lock).unwrap(), lock_text);
    assert!(same_bytes(&first, &second), "the build with the rewritten lock differs from the first");
}

#[test]
fn a_cached_deb_that_differs_from_the_lock_is_refused() {
    let env = build_env();
    let dir = tempfile::tempdir().unwrap();
    let (recipe, lock) = scratch_recipe(&env, dir.path());
    let mut committed = kernel_lock::read(&kernel_lock::lock_path(&env.recipe)).unwrap().expect("a committed lock");
    let cached = env.cache.join(format!("{}_{}_amd64.deb", committed.package, committed.version));
    assert!(cached.is_file(), "the committed lock's package is in the cache after `make image`");
    let actual = std::mem::replace(&mut committed.sha256, "ab".repeat(32));
    kernel_lock::write(&lock, &committed).unwrap();

    let output = build(&env, &recipe, &dir.path().join("keel.img")).output().unwrap();
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(111), "{stderr}");
    let message =
        format!("{} has sha256 {actual}, but the lock {} says {}", cached.display(), lock.display(), "ab".repeat(32));
    assert!(stderr.contains(&message), "expected\n{message}\nin\n{stderr}");
    assert!(!dir.path().join("keel.img").exists());
}

/// A fresh machine: apt's index is empty (a scratch `Dir::State::Lists` through `APT_CONFIG`, so the machine's own
/// index is left alone). As root, `keel kernel` runs `apt-get update` once and resolves the kernel.
#[test]
fn an_empty_apt_index_is_updated_once_as_root() {
    let env = build_env();
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: only root may run apt-get update");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (recipe, lock) = scratch_recipe(&env, dir.path());
    let lists = dir.path().join("lists");
    std::fs::create_dir_all(lists.join("partial")).unwrap();
    let apt_config = dir.path().join("apt.conf");
    std::fs::write(&apt_config, format!("Dir::State::Lists \"{}\";\n", lists.display())).unwrap();

    let output = run_ok(
        Command::new(env!("CARGO_BIN_EXE_keel-build"))
            .args(["kernel", "--recipe"])
            .arg(&recipe)
            .arg("--cache")
            .arg(&env.cache)
            .env("APT_CONFIG", &apt_config),
    );
    let (stdout, stderr) = text(&output);
    assert_eq!(stderr.matches("keel-build: apt-get update (").count(), 1, "{stderr}");
    let written = kernel_lock::read(&lock).unwrap().expect("a lock written");
    assert_eq!(written.package, current_kernel_package());
    assert!(
        stderr.contains(&format!("keel-build: kernel linux-image-amd64 is {} {}", written.package, written.version))
    );
    assert!(stdout.contains(&format!("lock:          {} (written)", lock.display())), "{stdout}");
}
