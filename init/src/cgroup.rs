//! The cgroup2 hierarchy: mounted at `/sys/fs/cgroup`, PID 1 in a leaf, controllers enabled for children.

use std::fs;
use std::path::{Path, PathBuf};

use nix::mount::MsFlags;

use crate::mounts::{Mount, MountError};

pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// The leaf PID 1 lives in. cgroup2's no-internal-processes rule refuses controllers in a cgroup's
/// `subtree_control` while processes sit in it, and the root counts once anything else is enabled below it.
pub const INIT_CGROUP: &str = "/sys/fs/cgroup/init";
/// What containers need: memory.max, cpu.max/cpu.weight, cpuset.cpus, io, pids.max.
const CONTROLLERS: [&str; 5] = ["cpu", "cpuset", "io", "memory", "pids"];

/// A step of the cgroup setup that failed.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error(transparent)]
    Mount(#[from] MountError),
    #[error("cannot create {path}")]
    CreateLeaf { path: PathBuf, source: std::io::Error },
    #[error("cannot move PID 1 into {path}")]
    MoveInit { path: PathBuf, source: std::io::Error },
    #[error("cannot enable controllers {controllers:?} in {CGROUP_ROOT}")]
    EnableControllers { controllers: String, source: std::io::Error },
}

/// Mounts cgroup2, moves PID 1 into its leaf and enables the available controllers for child cgroups. Returns
/// the controllers enabled.
pub fn set_up() -> Result<Vec<String>, CgroupError> {
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let options = Some("nsdelegate,memory_recursiveprot");
    Mount { source: "cgroup2", target: CGROUP_ROOT, fstype: "cgroup2", flags, data: options }.ensure()?;

    let leaf = Path::new(INIT_CGROUP);
    fs::create_dir_all(leaf).map_err(|source| CgroupError::CreateLeaf { path: leaf.to_owned(), source })?;
    let procs = leaf.join("cgroup.procs");
    fs::write(&procs, std::process::id().to_string())
        .map_err(|source| CgroupError::MoveInit { path: leaf.to_owned(), source })?;

    let available = fs::read_to_string(Path::new(CGROUP_ROOT).join("cgroup.controllers")).unwrap_or_default();
    let enabled: Vec<String> = CONTROLLERS
        .iter()
        .filter(|wanted| available.split_whitespace().any(|name| name == **wanted))
        .map(|name| name.to_string())
        .collect();
    let request: Vec<String> = enabled.iter().map(|name| format!("+{name}")).collect();
    let request = request.join(" ");
    fs::write(Path::new(CGROUP_ROOT).join("cgroup.subtree_control"), &request)
        .map_err(|source| CgroupError::EnableControllers { controllers: request, source })?;
    Ok(enabled)
}
