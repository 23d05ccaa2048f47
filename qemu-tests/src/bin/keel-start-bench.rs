//! `make bench` for the runtime: start latency of `/bin/true` from the unpacked busybox layer, through a process
//! boundary with teardown included: `keel run` against `runc run`, interleaved, p50 and p90 side by side.
//!
//! Both sides are whole commands a user types, timed from spawn to exit: keel's static binary (`keel run`, which
//! creates the container, runs it and removes it) and runc (`runc run`, which deletes the container after it
//! exits) plus the overlay runc needs, mounted and unmounted by this bench around each run (as `mount`(2), not a
//! `mount` process, so runc is charged the syscalls and not an extra exec). Both get new mount, PID, UTS, IPC,
//! cgroup and network namespaces (only `lo`), a read-only root, /dev/null as stdin and stdout, a device cgroup
//! filter and Docker's default seccomp profile (`runc spec` writes no seccomp section: the bench adds the
//! profile in the OCI form Docker hands runc, from keel's own copy of it). Besides wall time
//! the table shows each side's CPU time (its processes' user + system), which the machine's other load does not
//! inflate.
//!
//! Run as root. `KEEL_BENCH_RUNS` sets the runs per side (default 50); `KEEL_BIN` the `keel` binary (default: the
//! musl release build, else the host release build, under the workspace's `target/`).
//! Exit codes: 0 done, 111 a step failed (the message says which).

use std::error::Error;
use std::ffi::CString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use keel_images::ImageStore;

const DEFAULT_RUNS: usize = 50;
/// The name both sides give their container; each removes it before the next run.
const NAME: &str = "bench";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("keel-start-bench: {error}");
            ExitCode::from(111)
        }
    }
}

/// Unmounts (lazily) runc's root if a run left it mounted and removes the scratch directory, also when a step
/// fails.
struct Scratch {
    dir: PathBuf,
    rootfs: PathBuf,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = unmount(&self.rootfs, libc::MNT_DETACH);
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn run() -> Result<(), Box<dyn Error>> {
    let runs = std::env::var("KEEL_BENCH_RUNS").ok().and_then(|runs| runs.parse().ok()).unwrap_or(DEFAULT_RUNS).max(1);
    let keel_bin = keel_qemu_tests::bench::keel_binary()?;
    let keel_bin = keel_bin.canonicalize().map_err(|error| format!("keel binary {}: {error}", keel_bin.display()))?;
    let build = keel_qemu_tests::bench::bench_dir()?;
    let archive = keel_fixtures::containers::build_busybox_archive(&build);
    let dir = build.join(format!("start-{}", std::process::id()));
    let scratch = Scratch { rootfs: dir.join("bundle/rootfs"), dir };
    let _ = fs::remove_dir_all(&scratch.dir);
    fs::create_dir_all(&scratch.dir)?;
    let state = scratch.dir.join("state");
    let store = ImageStore::open(&state.join("images"), &state.join("layers"))?;
    store.import_archive(&archive)?;
    let image = store.image(&keel_fixtures::containers::BUSYBOX.parse()?)?;

    // runc's bundle: the store's unpacked layer under an overlay (mounted per run), read-only root, no terminal.
    let bundle = scratch.dir.join("bundle");
    fs::create_dir_all(&scratch.rootfs)?;
    command("runc", &["spec", "--bundle", &bundle.display().to_string()])?;
    let spec_path = bundle.join("config.json");
    let mut spec: serde_json::Value = serde_json::from_slice(&fs::read(&spec_path)?)?;
    spec["process"]["terminal"] = false.into();
    spec["process"]["args"] = serde_json::json!(["/bin/true"]);
    spec["root"]["path"] = scratch.rootfs.display().to_string().into();
    spec["root"]["readonly"] = true.into();
    // Docker's default profile, as Docker passes it to runc: resolved for Docker's default capabilities (keel's
    // side runs with them) into the OCI form, which has no includes/excludes.
    spec["linux"]["seccomp"] = runc_seccomp()?;
    // keel gives every container a cgroup namespace too; runc's default spec does not.
    spec["linux"]["namespaces"]
        .as_array_mut()
        .ok_or("runc spec has no namespaces")?
        .push(serde_json::json!({"type": "cgroup"}));
    fs::write(&spec_path, serde_json::to_vec_pretty(&spec)?)?;
    let lower: Vec<String> = image.layer_dirs.iter().rev().map(|dir| dir.display().to_string()).collect();
    let runc_run_dir = scratch.dir.join("runc-container");
    let overlay = CString::new(format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        runc_run_dir.join("upper").display(),
        runc_run_dir.join("work").display()
    ))?;
    let runc_state = scratch.dir.join("runc");

    let keel_once = || -> Result<Sample, Box<dyn Error>> {
        let cpu_before = children_cpu();
        let started = Instant::now();
        let status = Command::new(&keel_bin)
            .arg("run")
            .arg("--state-dir")
            .arg(&state)
            .args(["--name", NAME, "--network", "none", "--read-only", keel_fixtures::containers::BUSYBOX, "/bin/true"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()?;
        let sample = Sample { wall: started.elapsed(), cpu: children_cpu().saturating_sub(cpu_before) };
        if !status.success() {
            return Err(format!("keel run failed: {status}").into());
        }
        Ok(sample)
    };
    let runc_once = || -> Result<Sample, Box<dyn Error>> {
        let cpu_before = children_cpu();
        let started = Instant::now();
        fs::create_dir_all(runc_run_dir.join("upper"))?;
        fs::create_dir_all(runc_run_dir.join("work"))?;
        mount_overlay(&scratch.rootfs, &overlay)?;
        let status = Command::new("runc")
            .arg("--root")
            .arg(&runc_state)
            .arg("run")
            .arg("--bundle")
            .arg(&bundle)
            .arg(NAME)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status();
        unmount(&scratch.rootfs, 0)?;
        fs::remove_dir_all(&runc_run_dir)?;
        let sample = Sample { wall: started.elapsed(), cpu: children_cpu().saturating_sub(cpu_before) };
        let status = status?;
        if !status.success() {
            return Err(format!("runc run failed: {status}").into());
        }
        Ok(sample)
    };

    // One warm-up each (page cache, first cgroup creation), and a check that each side removes its container.
    keel_once()?;
    if state.join("containers").join(NAME).exists() {
        return Err("keel run left its container directory behind".into());
    }
    runc_once()?;
    if runc_state.join(NAME).exists() {
        return Err("runc run left its container state behind".into());
    }
    // Interleaved, the side that goes first alternating, so that drift and the other load hit both alike.
    let mut keel_times = Vec::with_capacity(runs);
    let mut runc_times = Vec::with_capacity(runs);
    for index in 0..runs {
        if index % 2 == 0 {
            keel_times.push(keel_once()?);
            runc_times.push(runc_once()?);
        } else {
            runc_times.push(runc_once()?);
            keel_times.push(keel_once()?);
        }
    }

    let keel = Summary::of(&keel_times);
    let runc = Summary::of(&runc_times);
    println!("start latency of /bin/true, spawn -> container gone -> exit, {runs} runs each, interleaved");
    println!("{:<16} {:>10} {:>10} {:>10} {:>10}", "", "p50", "p90", "min", "cpu p50");
    for (name, summary) in [("keel run", &keel), ("runc run", &runc)] {
        println!(
            "{name:<16} {:>10} {:>10} {:>10} {:>10}",
            ms(summary.p50),
            ms(summary.p90),
            ms(summary.min),
            ms(summary.cpu_p50)
        );
    }
    let ratio = |ours: Duration, theirs: Duration| ours.as_secs_f64() / theirs.as_secs_f64();
    println!(
        "{:<16} {:>10.2} {:>10.2} {:>10.2} {:>10.2}   (target p50 <= 0.50)",
        "ratio keel/runc",
        ratio(keel.p50, runc.p50),
        ratio(keel.p90, runc.p90),
        ratio(keel.min, runc.min),
        ratio(keel.cpu_p50, runc.cpu_p50)
    );
    let pressure = keel_fixtures::cpu_pressure_percent().map(|percent| format!("{percent:.0}%")).unwrap_or("?".into());
    println!(
        "(wall: spawn to exit; cpu: user + system time of the side's processes, which other load on this machine \
         does not inflate; CPU pressure over the last minute: {pressure} of the time a task waited for a CPU)"
    );
    // runc's cgroup manager follows the host: one cgroup2 cgroup on a unified host, one cgroup per v1 hierarchy
    // plus the unified one on a hybrid host. keel makes one cgroup2 leaf either way.
    let runc_cgroups = if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        "one cgroup2 cgroup"
    } else {
        "a cgroup in every v1 hierarchy plus the cgroup2 one (hybrid host)"
    };
    println!(
        "keel: `{} run --network none --read-only IMAGE /bin/true`: reads the image from the store, creates \
         containers/{NAME}/ and one cgroup2 leaf, clones into new mnt/pid/uts/ipc/net/cgroup namespaces, mounts the \
         overlay of the unpacked layer, pivots, /dev /proc /sys, lo up, seccomp (Docker's default profile) and the \
         device filter, execs, waits, removes the dir and cgroup",
        keel_bin.display()
    );
    println!(
        "runc: mkdir upper+work, mount(2) the overlay of the same layer, `runc run` (Go start-up, re-exec as runc \
         init, new mnt/pid/uts/ipc/net/cgroup namespaces, {runc_cgroups} with its device filter, pivots, /dev /proc \
         /sys, lo up, seccomp (Docker's default profile, added to `runc spec`'s config.json by this bench; \
         libseccomp), exec, wait, delete), umount(2), rm -r upper+work"
    );
    Ok(())
}

/// Docker's default seccomp profile in the OCI runtime spec's form (`linux.seccomp`) for a container with Docker's
/// default capabilities on amd64, with the architectures Docker lists for it.
fn runc_seccomp() -> Result<serde_json::Value, Box<dyn Error>> {
    let profile = keel_runtime::seccomp::docker_default();
    let capabilities = keel_runtime::capabilities::capability_mask(false, &[], &[], 40);
    let context = keel_runtime::seccomp::profile::Context {
        capabilities,
        arch: "amd64",
        kernel: keel_runtime::seccomp::profile::running_kernel(),
    };
    let syscalls: Vec<serde_json::Value> = profile
        .applicable(&context)?
        .into_iter()
        .map(|rule| {
            let args: Vec<serde_json::Value> = rule
                .args
                .iter()
                .map(|arg| serde_json::json!({"index": arg.index, "value": arg.value, "valueTwo": arg.value_two, "op": arg.op}))
                .collect();
            let mut entry = serde_json::json!({"names": rule.all_names().collect::<Vec<_>>(), "action": rule.action, "args": args});
            if let Some(errno) = rule.errno_ret {
                entry["errnoRet"] = errno.into();
            }
            entry
        })
        .collect();
    Ok(serde_json::json!({
        "defaultAction": profile.default_action,
        "defaultErrnoRet": profile.default_errno_ret,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": syscalls,
    }))
}

fn mount_overlay(target: &Path, options: &CString) -> Result<(), Box<dyn Error>> {
    let target_c = CString::new(target.as_os_str().as_encoded_bytes())?;
    // SAFETY: every pointer is a NUL-terminated string that outlives the call.
    let result =
        unsafe { libc::mount(c"overlay".as_ptr(), target_c.as_ptr(), c"overlay".as_ptr(), 0, options.as_ptr().cast()) };
    if result != 0 {
        return Err(format!("mounting the overlay on {}: {}", target.display(), std::io::Error::last_os_error()).into());
    }
    Ok(())
}

fn unmount(target: &Path, flags: libc::c_int) -> Result<(), Box<dyn Error>> {
    let target_c = CString::new(target.as_os_str().as_encoded_bytes())?;
    // SAFETY: the pointer is a NUL-terminated string that outlives the call.
    if unsafe { libc::umount2(target_c.as_ptr(), flags) } != 0 {
        return Err(format!("unmounting {}: {}", target.display(), std::io::Error::last_os_error()).into());
    }
    Ok(())
}

/// One run: wall time from spawn to exit, and the CPU time its processes used.
struct Sample {
    wall: Duration,
    cpu: Duration,
}

struct Summary {
    p50: Duration,
    p90: Duration,
    min: Duration,
    cpu_p50: Duration,
}

impl Summary {
    fn of(samples: &[Sample]) -> Summary {
        let percentile = |mut times: Vec<Duration>, fraction: f64| {
            times.sort();
            times[((times.len() - 1) as f64 * fraction).round() as usize]
        };
        let walls: Vec<Duration> = samples.iter().map(|sample| sample.wall).collect();
        let cpus: Vec<Duration> = samples.iter().map(|sample| sample.cpu).collect();
        Summary {
            p50: percentile(walls.clone(), 0.5),
            p90: percentile(walls.clone(), 0.9),
            min: percentile(walls, 0.0),
            cpu_p50: percentile(cpus, 0.5),
        }
    }
}

/// User + system time of every child this process has waited for, and of their waited-for descendants.
fn children_cpu() -> Duration {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable rusage.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    let time = |value: libc::timeval| {
        Duration::from_secs(value.tv_sec.max(0) as u64) + Duration::from_micros(value.tv_usec.max(0) as u64)
    };
    time(usage.ru_utime) + time(usage.ru_stime)
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
