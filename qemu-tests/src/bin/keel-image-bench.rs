//! `make bench` for images: pull + unpack of a ~200 MB, 5-layer image from a loopback registry, keel against
//! `skopeo copy` + `umoci raw unpack`, round by round with the side that goes first alternating; prints every round,
//! the medians and their ratio.
//!
//! Like for like: each round starts both from an empty directory on the same filesystem; both end with the data on
//! disk (keel's pull syncs as it goes, theirs gets one `syncfs` inside the timed region); both keep the compressed
//! blobs in an OCI layout and the files unpacked once. umoci's `unpack` would also hash every file for an mtree,
//! which keel does not do, so `raw unpack` is measured. keel's layers stay separate (overlayfs lowerdirs), umoci
//! flattens them; the bench image's layers write disjoint paths, so the same files are written either way.
//!
//! The image is built once with umoci under `build/bench/` (files from /usr plus pseudo-random bytes) and reused.
//! `KEEL_BENCH_ROUNDS` sets the rounds (default 5).
//! Exit codes: 0 done, 111 a step failed (the message says which).

use std::collections::HashMap;
use std::error::Error;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use keel_images::{pull_image, ImageReference, ImageStore, NoProgress, PullOptions, RegistryClient, RegistrySettings};

const LAYERS: usize = 5;
/// Per layer: this much copied from /usr and this much pseudo-random data, ~40 MB together.
const USR_BYTES_PER_LAYER: u64 = 28 << 20;
const RANDOM_BYTES_PER_LAYER: usize = 12 << 20;
/// Rounds per side unless `KEEL_BENCH_ROUNDS` says otherwise.
const DEFAULT_ROUNDS: usize = 5;

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
    let build = keel_qemu_tests::bench::bench_dir()?;
    let layout = build_image_once(&build)?;
    let work = build.join(format!("run-{}", std::process::id()));
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work)?;
    let rounds =
        std::env::var("KEEL_BENCH_ROUNDS").ok().and_then(|rounds| rounds.parse().ok()).unwrap_or(DEFAULT_ROUNDS).max(1);
    let result = compare(&layout, &work, rounds);
    let _ = fs::remove_dir_all(&work);
    result
}

fn compare(layout: &keel_fixtures::images::Layout, work: &Path, rounds: usize) -> Result<(), Box<dyn Error>> {
    let registry = keel_fixtures::registry::Registry::start(&work.join("registry"));
    layout.push("bench", &registry.host(), "keel/bench:latest", None);
    let reference: ImageReference = format!("{}/keel/bench:latest", registry.host()).parse()?;
    let settings = RegistrySettings { insecure: true, username: None, password: None };
    let digests = layout.layer_digests("bench");
    let compressed: u64 = digests.iter().map(|digest| layout.read_blob(digest).len() as u64).sum();
    // The registry serves from the page cache for every round, the first included.
    for digest in &digests {
        fs::read(registry.blob_data_path(digest.trim_start_matches("sha256:")))?;
    }

    let keel_once = |round: usize| -> Result<Sample, Box<dyn Error>> {
        let keel_dir = work.join(format!("keel-{round}"));
        let cpu_before = cpu_time(libc::RUSAGE_SELF);
        let started = Instant::now();
        let store = ImageStore::open(&keel_dir.join("images"), &keel_dir.join("layers"))?;
        let client = RegistryClient::new(HashMap::from([(registry.host(), settings.clone())]));
        pull_image(&client, &store, &reference, &PullOptions::default(), &NoProgress)?;
        let sample = Sample { wall: started.elapsed(), cpu: cpu_time(libc::RUSAGE_SELF).saturating_sub(cpu_before) };
        fs::remove_dir_all(&keel_dir)?;
        Ok(sample)
    };
    let theirs_once = |round: usize| -> Result<Sample, Box<dyn Error>> {
        let their_dir = work.join(format!("theirs-{round}"));
        fs::create_dir_all(&their_dir)?;
        let source = format!("docker://{}/keel/bench:latest", registry.host());
        let oci = format!("oci:{}:bench", their_dir.join("layout").display());
        let image = format!("{}:bench", their_dir.join("layout").display());
        let rootfs = their_dir.join("rootfs").display().to_string();
        let cpu_before = cpu_time(libc::RUSAGE_CHILDREN);
        let started = Instant::now();
        command("skopeo", &["copy", "--quiet", "--src-tls-verify=false", &source, &oci])?;
        command("umoci", &["raw", "unpack", "--image", &image, &rootfs])?;
        // keel's pull returns with everything on disk; this makes theirs as durable before the clock stops.
        syncfs(&their_dir)?;
        let sample =
            Sample { wall: started.elapsed(), cpu: cpu_time(libc::RUSAGE_CHILDREN).saturating_sub(cpu_before) };
        fs::remove_dir_all(&their_dir)?;
        Ok(sample)
    };

    println!(
        "image pull + unpack, {LAYERS} layers, {:.0} MB compressed, loopback registry, {rounds} rounds, first side \
         alternating",
        compressed as f64 / 1e6
    );
    let header = ["round", "first", "keel (s)", "skopeo + umoci (s)", "keel cpu (s)", "theirs cpu (s)"];
    println!(
        "{:<8} {:<8} {:>10} {:>20} {:>14} {:>16}",
        header[0], header[1], header[2], header[3], header[4], header[5]
    );
    let row = |label: &str, first: &str, keel: &Sample, theirs: &Sample| {
        println!(
            "{label:<8} {first:<8} {:>10.2} {:>20.2} {:>14.2} {:>16.2}",
            keel.wall.as_secs_f64(),
            theirs.wall.as_secs_f64(),
            keel.cpu.as_secs_f64(),
            theirs.cpu.as_secs_f64()
        );
    };
    let mut keel_samples = Vec::with_capacity(rounds);
    let mut theirs_samples = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let keel_first = round % 2 == 0;
        let (keel, theirs) = if keel_first {
            let keel = keel_once(round)?;
            (keel, theirs_once(round)?)
        } else {
            let theirs = theirs_once(round)?;
            (keel_once(round)?, theirs)
        };
        row(&(round + 1).to_string(), if keel_first { "keel" } else { "theirs" }, &keel, &theirs);
        keel_samples.push(keel);
        theirs_samples.push(theirs);
    }
    let keel = Sample::median(&keel_samples);
    let theirs = Sample::median(&theirs_samples);
    row("median", "", &keel, &theirs);
    println!(
        "ratio keel / theirs (medians): wall {:.2}x  (target <= 0.60x), cpu {:.2}x",
        keel.wall.as_secs_f64() / theirs.wall.as_secs_f64(),
        keel.cpu.as_secs_f64() / theirs.cpu.as_secs_f64()
    );
    let pressure = keel_fixtures::cpu_pressure_percent().map(|percent| format!("{percent:.0}%")).unwrap_or("?".into());
    println!(
        "(wall: the side's whole work; cpu: user + system time of keel's threads in this process, of skopeo and \
         umoci for theirs; other load on this machine inflates wall, not cpu; CPU pressure over the last minute: \
         {pressure} of the time a task waited for a CPU)"
    );
    println!(
        "keel: pull_image in this process into an empty store: manifest, config, each layer streamed once \
         (digest + diff_id verified, blob kept in the OCI layout, unpacked to its own directory ready for overlayfs), \
         an fsync per blob and per directory it commits, one syncfs per layer"
    );
    println!(
        "theirs: `skopeo copy docker://… oci:DIR` into an empty layout (digests verified, an fsync per blob), then \
         `umoci raw unpack` (every layer applied into one flattened rootfs, no mtree, no fsync), then one syncfs; \
         this image's layers write disjoint paths, so both end states hold the same files"
    );
    Ok(())
}

/// One side's round: wall time and the CPU time its work used.
struct Sample {
    wall: Duration,
    cpu: Duration,
}

impl Sample {
    /// Wall and CPU medians, each on its own.
    fn median(samples: &[Sample]) -> Sample {
        Sample {
            wall: median(samples.iter().map(|sample| sample.wall).collect()),
            cpu: median(samples.iter().map(|sample| sample.cpu).collect()),
        }
    }
}

/// The middle time (the mean of the two middle ones for an even count).
fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    match times.len() {
        0 => Duration::ZERO,
        len if len % 2 == 1 => times[len / 2],
        len => (times[len / 2 - 1] + times[len / 2]) / 2,
    }
}

/// User + system time of this process (`RUSAGE_SELF`, all threads) or of its waited-for children.
fn cpu_time(who: libc::c_int) -> Duration {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable rusage.
    unsafe { libc::getrusage(who, &mut usage) };
    let time = |value: libc::timeval| {
        Duration::from_secs(value.tv_sec.max(0) as u64) + Duration::from_micros(value.tv_usec.max(0) as u64)
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// `syncfs(2)` of the filesystem holding `dir`: what `sync -f DIR` does, without a process.
fn syncfs(dir: &Path) -> Result<(), Box<dyn Error>> {
    let handle = fs::File::open(dir)?;
    // SAFETY: the fd is open for the duration of the call.
    if unsafe { libc::syncfs(std::os::fd::AsRawFd::as_raw_fd(&handle)) } != 0 {
        return Err(format!("syncfs {}: {}", dir.display(), std::io::Error::last_os_error()).into());
    }
    Ok(())
}

fn command(program: &str, args: &[&str]) -> Result<(), Box<dyn Error>> {
    let output = Command::new(program).args(args).output()?;
    if !output.status.success() {
        return Err(format!("{program} {args:?}: {}", String::from_utf8_lossy(&output.stderr)).into());
    }
    Ok(())
}

/// Builds the bench image under `build/bench/layout` unless it is already there.
fn build_image_once(build: &Path) -> Result<keel_fixtures::images::Layout, Box<dyn Error>> {
    let marker = build.join("image-ready");
    let layout_dir = build.join("image");
    if marker.exists() {
        return Ok(keel_fixtures::images::Layout::open(&layout_dir));
    }
    let _ = fs::remove_dir_all(&layout_dir);
    eprintln!("keel-image-bench: building the bench image once under {}", layout_dir.display());
    let layout = keel_fixtures::images::Layout::create(&layout_dir);
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
