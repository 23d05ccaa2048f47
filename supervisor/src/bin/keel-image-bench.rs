//! `make bench` for images: pull + unpack of a ~200 MB, 5-layer image from a loopback registry, keel against
//! `skopeo copy` + `umoci unpack`, side by side; prints a table.
//!
//! The image is built once with umoci under `build/bench/` (files from /usr plus pseudo-random bytes) and reused.
//! Exit codes: 0 done, 111 a step failed (the message says which).

// The test fixtures (registry on loopback, umoci/skopeo helpers) are shared with the bench, not duplicated.
#[path = "../../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::error::Error;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use keel_supervisor::image::{
    pull_image, ImageReference, ImageStore, NoProgress, PullOptions, RegistryClient, RegistrySettings,
};

const LAYERS: usize = 5;
/// Per layer: this much copied from /usr and this much pseudo-random data, ~40 MB together.
const USR_BYTES_PER_LAYER: u64 = 28 << 20;
const RANDOM_BYTES_PER_LAYER: usize = 12 << 20;
const ROUNDS: usize = 2;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("keel-image-bench: {error}");
            ExitCode::from(111)
        }
    }
}

fn run() -> Result<(), Box<dyn Error>> {
    let build = std::env::var_os("KEEL_BUILD_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../build"))
        .join("bench");
    let layout = build_image_once(&build)?;
    let work = build.join(format!("run-{}", std::process::id()));
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work)?;
    let result = compare(&layout, &work);
    let _ = fs::remove_dir_all(&work);
    result
}

fn compare(layout: &support::images::Layout, work: &Path) -> Result<(), Box<dyn Error>> {
    let registry = support::registry::Registry::start(&work.join("registry"));
    layout.push("bench", &registry.host(), "keel/bench:latest", None);
    let reference: ImageReference = format!("{}/keel/bench:latest", registry.host()).parse()?;
    let settings = RegistrySettings { insecure: true, username: None, password: None };
    let compressed: u64 =
        layout.layer_digests("bench").iter().map(|digest| layout.read_blob(digest).len() as u64).sum();

    let mut keel_times = Vec::new();
    let mut theirs_times = Vec::new();
    for round in 0..ROUNDS {
        let keel_dir = work.join(format!("keel-{round}"));
        let started = Instant::now();
        let store = ImageStore::open(&keel_dir.join("images"), &keel_dir.join("layers"))?;
        let client = RegistryClient::new(HashMap::from([(registry.host(), settings.clone())]));
        pull_image(&client, &store, &reference, &PullOptions::default(), &NoProgress)?;
        keel_times.push(started.elapsed());
        fs::remove_dir_all(&keel_dir)?;

        let their_dir = work.join(format!("theirs-{round}"));
        fs::create_dir_all(&their_dir)?;
        let started = Instant::now();
        let source = format!("docker://{}/keel/bench:latest", registry.host());
        let oci = format!("oci:{}:bench", their_dir.join("layout").display());
        command("skopeo", &["copy", "--quiet", "--src-tls-verify=false", &source, &oci])?;
        let image = format!("{}:bench", their_dir.join("layout").display());
        command("umoci", &["unpack", "--image", &image, their_dir.join("bundle").to_str().unwrap_or_default()])?;
        theirs_times.push(started.elapsed());
        fs::remove_dir_all(&their_dir)?;
    }
    let keel = best(&keel_times);
    let theirs = best(&theirs_times);
    println!(
        "image pull + unpack, {LAYERS} layers, {:.0} MB compressed, loopback registry, best of {ROUNDS}",
        compressed as f64 / 1e6
    );
    println!("{:<32} {:>10}", "tool", "wall (s)");
    println!("{:<32} {:>10.2}", "keel (pull_image)", keel.as_secs_f64());
    println!("{:<32} {:>10.2}", "skopeo copy + umoci unpack", theirs.as_secs_f64());
    println!("{:<32} {:>10.2}x  (target <= 0.60x)", "ratio keel / theirs", keel.as_secs_f64() / theirs.as_secs_f64());
    Ok(())
}

fn best(times: &[Duration]) -> Duration {
    times.iter().copied().min().unwrap_or_default()
}

fn command(program: &str, args: &[&str]) -> Result<(), Box<dyn Error>> {
    let output = Command::new(program).args(args).output()?;
    if !output.status.success() {
        return Err(format!("{program} {args:?}: {}", String::from_utf8_lossy(&output.stderr)).into());
    }
    Ok(())
}

/// Builds the bench image under `build/bench/layout` unless it is already there.
fn build_image_once(build: &Path) -> Result<support::images::Layout, Box<dyn Error>> {
    let marker = build.join("image-ready");
    let layout_dir = build.join("image");
    if marker.exists() {
        return Ok(support::images::Layout::open(&layout_dir));
    }
    let _ = fs::remove_dir_all(&layout_dir);
    eprintln!("keel-image-bench: building the bench image once under {}", layout_dir.display());
    let layout = support::images::Layout::create(&layout_dir);
    layout.new_image("bench");
    let usr_files = usr_files();
    let mut next_file = 0;
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    for layer in 0..LAYERS {
        layout.add_layer("bench", |rootfs| {
            let dir = rootfs.join(format!("layer{layer}"));
            fs::create_dir_all(dir.join("usr")).unwrap_or_default();
            let mut copied = 0;
            while copied < USR_BYTES_PER_LAYER && next_file < usr_files.len() {
                let (source, size) = &usr_files[next_file];
                let target = dir
                    .join("usr")
                    .join(format!("{next_file}-{}", source.file_name().unwrap_or_default().to_string_lossy()));
                if fs::copy(source, &target).is_ok() {
                    copied += size;
                }
                next_file += 1;
            }
            // xorshift: incompressible bytes, deterministic across runs.
            let mut random = Vec::with_capacity(RANDOM_BYTES_PER_LAYER);
            while random.len() < RANDOM_BYTES_PER_LAYER {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                random.extend_from_slice(&seed.to_le_bytes());
            }
            for (index, chunk) in random.chunks(1 << 20).enumerate() {
                fs::write(dir.join(format!("random-{index}.bin")), chunk).unwrap_or_default();
            }
        });
    }
    fs::write(&marker, b"")?;
    Ok(layout)
}

/// Regular files under /usr (largest directories first is not needed: any order, stable), with sizes.
fn usr_files() -> Vec<(PathBuf, u64)> {
    let mut files = Vec::new();
    let mut pending = vec![PathBuf::from("/usr/lib"), PathBuf::from("/usr/share"), PathBuf::from("/usr/bin")];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = fs::read_dir(&dir) else { continue };
        let mut entries: Vec<_> = entries.flatten().collect();
        entries.sort_by_key(|entry| entry.file_name());
        for entry in entries {
            let Ok(kind) = entry.file_type() else { continue };
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() {
                let size = entry.metadata().map(|metadata| metadata.len()).unwrap_or(0);
                files.push((entry.path(), size));
            }
        }
    }
    files
}
