//! keel's container runtime: one container's root, namespaces, cgroup and process, the operations on it, and the
//! one reaper that collects every child's exit.
//!
//! # Background
//! A container here is what `docker run` makes of a config and an image, without a daemon, a shim or an OCI
//! bundle: the supervision crate (and `keel run`) call [`Container::create`] and [`Container::start`] directly.
//! The runtime does not know the image store: it takes the image's unpacked layer directories and its plain
//! defaults ([`ImageRunConfig`]), so that images and runtime are built and tested apart.
//!
//! # Design
//! A container's first process is cloned straight from the supervisor (so the reaper sees it) with new mount,
//! PID, UTS and IPC namespaces, and a new network namespace for `network = "none"`. Before exec it joins its
//! cgroup, mounts the overlay root (image layers plus the container's upper directory) inside its own mount
//! namespace, pivots into it, builds Docker's `/dev`, `/proc`, `/sys` and the user's mounts, masks Docker's paths,
//! drops to the container's capabilities and user, and installs its seccomp filter (last with `no_new_privs`,
//! before the privilege drop without it, as runc does). All of that is prepared as a plan in the parent and run
//! by allocation-free code in the child ([`child`], [`sys`]). `docs/containers.md` has the whole picture.
//!
//! One operation per file: [`create`](Container::create), [`start`](Container::start),
//! [`exec`](Container::exec), [`kill_container`], [`remove_container`]. Every child's exit goes through the
//! one [`Reaper`]: whoever owns SIGCHLD (PID 1's main thread, or a polling thread elsewhere) drives it.
//!
//! # Current limitations
//! No user namespaces, no bridge networking (a container shares the host's network
//! or has only loopback), no TTYs; `docs/containers.md` lists the rest.

mod bpf;
pub mod capabilities;
pub mod cgroup;
mod child;
pub mod container;
pub mod container_init;
mod container_root;
pub mod create;
pub mod device_filter;
pub mod etc_files;
pub mod exec;
pub mod host_devices;
pub mod image_config;
pub mod image_volumes;
pub mod kill;
pub mod mounts;
pub mod process_spec;
pub mod reaper;
pub mod remove;
pub mod seccomp;
pub mod start;
mod sys;
pub mod users;
pub mod volumes;

pub use cgroup::ContainerCgroup;
pub use container::{Container, ContainerPaths, RuntimeDirs};
pub use create::CreateError;
pub use exec::{ExecError, ExecResult};
pub use image_config::{ImageHealthcheck, ImageRunConfig};
pub use kill::{kill_container, ContainerProcess, KillError};
pub use reaper::{ExitStatus, Reaper};
pub use remove::{remove_container, RemoveError};
pub use start::{RunningContainer, StartError};

/// Marks this process as a subreaper, so that orphans of its children are re-parented to it (and reaped by
/// the reaper) instead of going to the host's PID 1. For supervisors that are not PID 1.
pub fn become_subreaper() -> std::io::Result<()> {
    sys::set_child_subreaper().map_err(std::io::Error::from_raw_os_error)
}
