//! `make bench` for the runtime: start latency of `/bin/true` (create → exec'd → exit seen) from an unpacked
//! busybox image, keel's runtime against `runc run` on the same layer, interleaved, medians side by side.
//!
//! Both get new mount, PID, UTS, IPC and network namespaces (keel with `network = "none"`, as runc's default spec).
//! runc's rootfs is an overlay of the same unpacked layer, mounted once up front (so runc is spared the overlay
//! mount keel does per start). Run as root. `KEEL_BENCH_RUNS` sets the runs per side (default 50).
//! Exit codes: 0 done, 111 a step failed (the message says which).

// The busybox image fixture is shared with the host tests, not duplicated.
#[path = "../../tests/support/mod.rs"]
mod support;

use std::error::Error;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use keel_config::UserData;
use keel_supervisor::image::ImageStore;
use keel_supervisor::runtime::{remove_container, Container, ImageRunConfig, RuntimeDirs};
use keel_supervisor::Reaper;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

const DEFAULT_RUNS: usize = 50;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("keel-start-bench: {error}");
            ExitCode::from(111)
        }
    }
}

/// Unmounts (lazily) and removes the scratch directory, also when a step fails.
struct Scratch {
    dir: PathBuf,
    mounted: Option<PathBuf>,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(mount) = &self.mounted {
            let _ = Command::new("umount").arg("-l").arg(mount).status();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn run() -> Result<(), Box<dyn Error>> {
    let runs = std::env::var("KEEL_BENCH_RUNS").ok().and_then(|runs| runs.parse().ok()).unwrap_or(DEFAULT_RUNS);
    let build = std::env::var_os("KEEL_BUILD_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../build"))
        .join("bench");
    fs::create_dir_all(&build)?;
    let archive = support::containers::build_busybox_archive(&build);
    let mut scratch = Scratch { dir: build.join(format!("start-{}", std::process::id())), mounted: None };
    let _ = fs::remove_dir_all(&scratch.dir);
    fs::create_dir_all(&scratch.dir)?;
    let state = scratch.dir.join("state");
    let store = ImageStore::open(&state.join("images"), &state.join("layers"))?;
    store.import_archive(&archive)?;
    let image = store.image(&support::containers::BUSYBOX.parse()?)?;
    let image_config = ImageRunConfig::load(&store, &image)?;

    // runc's bundle: the same layer under an overlay, read-only root, no terminal, /bin/true.
    let bundle = scratch.dir.join("bundle");
    let rootfs = bundle.join("rootfs");
    for dir in [&rootfs, &scratch.dir.join("upper"), &scratch.dir.join("work"), &scratch.dir.join("runc")] {
        fs::create_dir_all(dir)?;
    }
    let lower: Vec<String> = image.layer_dirs.iter().rev().map(|dir| dir.display().to_string()).collect();
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        scratch.dir.join("upper").display(),
        scratch.dir.join("work").display()
    );
    command("mount", &["-t", "overlay", "overlay", "-o", &options, &rootfs.display().to_string()])?;
    scratch.mounted = Some(rootfs.clone());
    command("runc", &["spec", "--bundle", &bundle.display().to_string()])?;
    let spec_path = bundle.join("config.json");
    let mut spec: serde_json::Value = serde_json::from_slice(&fs::read(&spec_path)?)?;
    spec["process"]["terminal"] = false.into();
    spec["process"]["args"] = serde_json::json!(["/bin/true"]);
    spec["root"]["path"] = rootfs.display().to_string().into();
    spec["root"]["readonly"] = true.into();
    fs::write(&spec_path, serde_json::to_vec_pretty(&spec)?)?;

    // keel's container: the same command, its own network namespace like runc's.
    let text = format!(
        "[containers.bench]\nimage = \"{}\"\ncommand = [\"/bin/true\"]\nnetwork = \"none\"\nread_only = true\n",
        support::containers::BUSYBOX
    );
    let user_data = UserData::parse("bench", &text).map_err(|errors| errors.to_string())?;
    let config = user_data.containers.get("bench").ok_or("no bench container")?;
    let dirs = RuntimeDirs {
        layers_root: state.join("layers"),
        containers_dir: state.join("containers"),
        volumes_dir: state.join("volumes"),
        cgroup_root: support::containers::cgroup_root(),
    };

    // The main thread reaps, as in keel: SIGCHLD blocked (before any thread) and read from a signalfd.
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    mask.thread_block()?;
    let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC)?;
    let reaper = Arc::new(Reaper::new());

    let keel_once = || -> Result<Duration, Box<dyn Error>> {
        let started = Instant::now();
        let container = Container::create("bench", config, &image, &image_config, &dirs)?;
        let running = container.start(&reaper)?;
        loop {
            if let Ok(status) = running.exit.try_recv() {
                if status.code() != 0 {
                    return Err(format!("keel: /bin/true exited with {}", status.code()).into());
                }
                return Ok(started.elapsed());
            }
            signals.read_signal()?;
            reaper.reap_all();
        }
    };
    let runc_state = scratch.dir.join("runc").display().to_string();
    let bundle_arg = bundle.display().to_string();
    let runc_once = |index: usize| -> Result<Duration, Box<dyn Error>> {
        let started = Instant::now();
        let status = Command::new("runc")
            .args(["--root", &runc_state, "run", "--bundle", &bundle_arg, &format!("bench-{index}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()?;
        if !status.success() {
            return Err(format!("runc run failed: {status}").into());
        }
        Ok(started.elapsed())
    };

    // One warm-up each (page cache, first cgroup creation), then interleaved so drift hits both alike.
    keel_once()?;
    runc_once(runs)?;
    let mut keel_times = Vec::with_capacity(runs);
    let mut runc_times = Vec::with_capacity(runs);
    for index in 0..runs {
        keel_times.push(keel_once()?);
        runc_times.push(runc_once(index)?);
    }
    let _ = remove_container(&dirs.containers_dir, "bench", dirs.cgroup_root.as_deref());

    let keel = Summary::of(&mut keel_times);
    let runc = Summary::of(&mut runc_times);
    println!("start latency of /bin/true (create -> exec'd -> exit seen), {runs} interleaved runs each");
    println!("{:<8} {:>10} {:>10} {:>10}", "", "median", "p10", "p90");
    for (name, summary) in [("keel", &keel), ("runc", &runc)] {
        println!("{name:<8} {:>10} {:>10} {:>10}", ms(summary.median), ms(summary.p10), ms(summary.p90));
    }
    let ratio = keel.median.as_secs_f64() / runc.median.as_secs_f64();
    println!("ratio keel/runc (medians): {ratio:.2} (target <= 0.50)");
    Ok(())
}

struct Summary {
    median: Duration,
    p10: Duration,
    p90: Duration,
}

impl Summary {
    fn of(times: &mut [Duration]) -> Summary {
        times.sort();
        let at = |fraction: f64| times[((times.len() - 1) as f64 * fraction).round() as usize];
        Summary { median: at(0.5), p10: at(0.1), p90: at(0.9) }
    }
}

fn ms(duration: Duration) -> String {
    format!("{:.2} ms", duration.as_secs_f64() * 1000.0)
}

fn command(program: &str, args: &[&str]) -> Result<(), Box<dyn Error>> {
    let output = Command::new(program).args(args).output()?;
    if !output.status.success() {
        return Err(format!("{program} {args:?}: {}", String::from_utf8_lossy(&output.stderr)).into());
    }
    Ok(())
}
