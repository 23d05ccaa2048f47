//! The container runtime: one container's root, namespaces, cgroup, process, and the operations on it.
//!
//! # Design
//! A container's first process is cloned straight from the supervisor (so the reaper sees it) with new mount,
//! PID, UTS and IPC namespaces, and a new network namespace for `network = "none"`. Before exec it joins its
//! cgroup, mounts the overlay root (image layers plus the container's upper directory) inside its own mount
//! namespace, pivots into it, builds Docker's `/dev`, `/proc`, `/sys` and the user's mounts, masks Docker's paths,
//! and drops to the container's capabilities and user. All of that is prepared as a plan in the parent and run
//! by allocation-free code in the child ([`child`], [`sys`]). `docs/containers.md` has the whole picture.
//!
//! One operation per file: [`create`](Container::create), [`start`](Container::start),
//! [`exec`](Container::exec), [`kill_container`], [`remove_container`].

mod bpf;
pub mod capabilities;
pub mod cgroup;
mod child;
pub mod container;
pub mod create;
pub mod device_filter;
pub mod exec;
pub mod host_devices;
pub mod image_config;
pub mod kill;
pub mod mounts;
pub mod process_spec;
pub mod remove;
pub mod start;
mod sys;
pub mod users;
pub mod volumes;

pub use cgroup::ContainerCgroup;
pub use container::{Container, ContainerPaths, RuntimeDirs};
pub use create::CreateError;
pub use exec::{ExecError, ExecResult};
pub use image_config::{ImageConfigError, ImageHealthcheck, ImageRunConfig};
pub use kill::{kill_container, KillError};
pub use remove::{remove_container, RemoveError};
pub use start::{RunningContainer, StartError};

/// Marks this process as a subreaper, so that orphans of its children are re-parented to it (and reaped by
/// the reaper) instead of going to the host's PID 1. For supervisors that are not PID 1.
pub fn become_subreaper() -> std::io::Result<()> {
    sys::set_child_subreaper().map_err(std::io::Error::from_raw_os_error)
}
