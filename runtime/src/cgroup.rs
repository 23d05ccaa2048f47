//! A container's cgroup2 leaf `<root>/keel/<name>`: creates it, writes the limits, reads OOM kills, removes it.
//!
//! The cgroup root is a parameter: `/sys/fs/cgroup` under PID 1, wherever cgroup2 is mounted on a development
//! host. A controller the hierarchy lacks (a hybrid host has none) is logged and skipped: the container still
//! gets its own cgroup for membership, just without that limit.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;

use keel_config::containers::resources::Resources;

/// The controllers containers use, enabled in `<root>/keel/cgroup.subtree_control` (never in a leaf's).
pub const CONTROLLERS: [&str; 5] = ["cpu", "cpuset", "io", "memory", "pids"];
/// cgroup2's default `cpu.max` period, as Docker uses it for `--cpus`.
pub const CPU_PERIOD_MICROS: u64 = 100_000;

/// Where this host mounts cgroup2 with the `cgroup.procs` interface containers join through: `/sys/fs/cgroup`,
/// or the `unified` mount of a hybrid (v1 + v2) host.
pub fn detect_mount() -> Option<PathBuf> {
    ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
        .into_iter()
        .map(PathBuf::from)
        .find(|path| path.join("cgroup.controllers").exists())
}

/// How long the processes left in a reused leaf may take to die once killed.
const LEFTOVER_KILL_WAIT: Duration = Duration::from_secs(5);

/// Creating the leaf failed; limits that cannot be written are not errors.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("container {container}: creating cgroup {path}")]
    CreateLeaf {
        container: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("container {container}: cannot kill the processes an earlier run left in cgroup {path}")]
    KillLeftover {
        container: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "container {container}: cgroup {path} still holds processes {LEFTOVER_KILL_WAIT:?} after they were killed"
    )]
    LeftoverAlive { container: String, path: PathBuf },
}

/// Whether the leaf of container `name` under `root` holds any process (`cgroup.events`' `populated`).
pub fn is_populated(root: &Path, name: &str) -> bool {
    leaf_is_populated(&root.join("keel").join(name))
}

fn leaf_is_populated(leaf: &Path) -> bool {
    let events = fs::read_to_string(leaf.join("cgroup.events")).unwrap_or_default();
    events.lines().any(|line| line.trim() == "populated 1")
}

/// A container's cgroup directory.
#[derive(Debug, Clone)]
pub struct ContainerCgroup {
    pub path: PathBuf,
}

impl ContainerCgroup {
    /// Creates (or reuses) `<root>/keel/<name>` and writes the limits from `resources`. Processes a reused leaf
    /// still holds are killed first: a supervisor that was killed leaves its containers running (nothing else
    /// stops them), and two instances of one container must not share its cgroup, its limits and its OOM count.
    pub fn create(root: &Path, name: &str, resources: &Resources) -> Result<ContainerCgroup, CgroupError> {
        let parent = root.join("keel");
        let path = parent.join(name);
        fs::create_dir_all(&path).map_err(|source| CgroupError::CreateLeaf {
            container: name.to_owned(),
            path: path.clone(),
            source,
        })?;
        enable_controllers(&parent);
        let cgroup = ContainerCgroup { path };
        cgroup.kill_leftovers(name)?;
        for (file, value) in limit_files(resources) {
            cgroup.write_limit(name, file, &value);
        }
        Ok(cgroup)
    }

    fn write_limit(&self, name: &str, file: &str, value: &str) {
        let path = self.path.join(file);
        if let Err(error) = fs::write(&path, value) {
            log::warn!("container {name}: cannot set {file} to {value} in {}: {error}", self.path.display());
        }
    }

    /// Kills every process in the leaf (`cgroup.kill`) and waits until it is empty.
    fn kill_leftovers(&self, name: &str) -> Result<(), CgroupError> {
        if !leaf_is_populated(&self.path) {
            return Ok(());
        }
        // Their pids are not listed: a leftover may have forked without bound, and cgroup.procs with it.
        log::warn!(
            "container {name}: cgroup {} still holds processes of an earlier run; killing them",
            self.path.display()
        );
        // Not pid by pid: a pid read from cgroup.procs may be another process's by the time it is signalled.
        if let Err(source) = fs::write(self.path.join("cgroup.kill"), "1") {
            return Err(CgroupError::KillLeftover { container: name.to_owned(), path: self.path.clone(), source });
        }
        let deadline = std::time::Instant::now() + LEFTOVER_KILL_WAIT;
        while leaf_is_populated(&self.path) {
            if std::time::Instant::now() >= deadline {
                return Err(CgroupError::LeftoverAlive { container: name.to_owned(), path: self.path.clone() });
            }
            thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// `cgroup.procs`, which the container's first process writes itself into before it execs.
    pub fn procs_file(&self) -> PathBuf {
        self.path.join("cgroup.procs")
    }

    /// The `oom_kill` count of `memory.events`; `None` without the memory controller.
    pub fn oom_kills(&self) -> Option<u64> {
        let events = fs::read_to_string(self.memory_events()).ok()?;
        parse_oom_kills(&events)
    }

    /// `memory.events`, which the kernel marks modified (inotify) whenever one of its counters changes.
    pub fn memory_events(&self) -> PathBuf {
        self.path.join("memory.events")
    }

    /// Removes the leaf once its processes are gone; the kernel empties it shortly after the container's init
    /// dies, so a busy cgroup is retried for a moment. A leftover is reused by the next start.
    pub fn remove(&self) {
        for _ in 0..50 {
            match fs::remove_dir(&self.path) {
                Ok(()) => return,
                Err(error) if error.kind() == io::ErrorKind::NotFound => return,
                Err(error) if error.raw_os_error() == Some(libc::EBUSY) => thread::sleep(Duration::from_millis(20)),
                Err(error) => {
                    log::debug!("cannot remove cgroup {}: {error}", self.path.display());
                    return;
                }
            }
        }
        log::debug!("cgroup {} still busy; leaving it", self.path.display());
    }
}

/// Writes each wanted controller separately: one the hierarchy lacks must not keep the others off.
fn enable_controllers(parent: &Path) {
    let control = parent.join("cgroup.subtree_control");
    let enabled = fs::read_to_string(&control).unwrap_or_default();
    for controller in CONTROLLERS {
        if enabled.split_whitespace().any(|name| name == controller) {
            continue;
        }
        if let Err(error) = fs::write(&control, format!("+{controller}")) {
            log::debug!("cgroup {}: cannot enable {controller}: {error}", parent.display());
        }
    }
}

/// The files and values for `resources`, as runc writes them on cgroup2 for Docker's options.
pub fn limit_files(resources: &Resources) -> Vec<(&'static str, String)> {
    let mut files = Vec::new();
    if let Some(memory) = resources.memory {
        files.push(("memory.max", memory.to_string()));
        // Docker's default --memory-swap is twice --memory: as much swap as memory.
        files.push(("memory.swap.max", memory.to_string()));
    }
    if let Some(cpus) = resources.cpus {
        files.push(("cpu.max", cpu_max(cpus)));
    }
    if let Some(shares) = resources.cpu_shares {
        files.push(("cpu.weight", cpu_weight_from_shares(shares).to_string()));
    }
    if let Some(cpuset) = &resources.cpuset {
        files.push(("cpuset.cpus", cpuset.clone()));
    }
    if let Some(pids) = resources.pids_limit {
        files.push(("pids.max", pids.to_string()));
    }
    files
}

/// `cpu.max` for a number of CPUs: quota and period in microseconds.
pub fn cpu_max(cpus: f64) -> String {
    let quota = (cpus * CPU_PERIOD_MICROS as f64).round() as u64;
    format!("{} {CPU_PERIOD_MICROS}", quota.max(1000))
}

/// runc's (≥ 1.3.2) conversion of cgroup1 shares (2..=262144) to cgroup2 weight (1..=10000): a quadratic on the
/// log scale that maps the minimum, Docker's default (1024 → 100, cgroup2's default) and the maximum onto each
/// other. The older linear formula put the default at 39, below every systemd service on the host.
pub fn cpu_weight_from_shares(shares: u32) -> u64 {
    match shares {
        0..=2 => 1,
        262_144.. => 10_000,
        _ => {
            let log = f64::from(shares).log2();
            let exponent = (log * log + 125.0 * log) / 612.0 - 7.0 / 34.0;
            // Within 1..=10000 by construction; the cast cannot truncate anything meaningful.
            10f64.powf(exponent).ceil() as u64
        }
    }
}

/// The `oom_kill` count in the text of a `memory.events` file.
pub fn parse_oom_kills(events: &str) -> Option<u64> {
    events.lines().find_map(|line| line.strip_prefix("oom_kill ")).and_then(|count| count.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_shares_map_to_cpu_weight_as_runc_1_3_2_does() {
        assert_eq!(cpu_weight_from_shares(2), 1);
        assert_eq!(cpu_weight_from_shares(1024), 100);
        assert_eq!(cpu_weight_from_shares(262_144), 10_000);
        // Between the fixed points, runc's values: half and double the default.
        assert_eq!(cpu_weight_from_shares(512), 59);
        assert_eq!(cpu_weight_from_shares(2048), 174);
    }

    #[test]
    fn cpus_become_quota_over_period() {
        assert_eq!(cpu_max(1.5), "150000 100000");
        assert_eq!(cpu_max(0.5), "50000 100000");
    }

    #[test]
    fn limits_cover_every_resource() {
        let resources = Resources {
            memory: Some(64 << 20),
            cpus: Some(2.0),
            cpu_shares: Some(512),
            cpuset: Some("0-1".into()),
            pids_limit: Some(100),
            ..Resources::default()
        };
        let files: Vec<&str> = limit_files(&resources).into_iter().map(|(file, _)| file).collect();
        assert_eq!(files, ["memory.max", "memory.swap.max", "cpu.max", "cpu.weight", "cpuset.cpus", "pids.max"]);
        assert!(limit_files(&Resources::default()).is_empty());
    }

    #[test]
    fn reads_oom_kill_count() {
        let events = "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(parse_oom_kills(events), Some(1));
        assert_eq!(parse_oom_kills(""), None);
    }
}
