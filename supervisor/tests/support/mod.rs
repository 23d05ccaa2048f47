//! Test fixtures for the image tests: a real `docker-registry` on loopback (plain, htpasswd, or behind a Bearer
//! token proxy), and images built with umoci and pushed with skopeo. Std only, so the bench binary can include it.

// Fixture code panics on purpose: a broken fixture should stop the test or bench loudly.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod containers;
pub mod devices;
pub mod images;
pub mod registry;
pub mod rsyslog;
pub mod token_proxy;

use std::path::Path;
use std::process::Command;

/// Runs a command and panics with its output if it fails.
pub fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program).args(args).output().unwrap_or_else(|error| panic!("running {program}: {error}"));
    if !output.status.success() {
        panic!(
            "{program} {args:?} failed ({}):\n{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Every path under `dir`, relative and sorted; for "nothing changed" assertions.
pub fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            out.push(path.strip_prefix(base).unwrap_or(&path).display().to_string());
            if entry.file_type().map(|kind| kind.is_dir()).unwrap_or(false) {
                walk(base, &path, out);
            }
        }
    }
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// The share of the last minute in which some runnable task waited for a CPU (`/proc/pressure/cpu`, `some
/// avg60`), for benches to print next to wall times on a shared machine.
pub fn cpu_pressure_percent() -> Option<f64> {
    let pressure = std::fs::read_to_string("/proc/pressure/cpu").ok()?;
    let some = pressure.lines().find(|line| line.starts_with("some "))?;
    some.split_whitespace().find_map(|field| field.strip_prefix("avg60="))?.parse().ok()
}
