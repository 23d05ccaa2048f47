//! keel's container side: everything that runs and watches processes for the host, under PID 1 or on its own.
//!
//! # Background
//! PID 1 (`keel`) starts the supervisor on its own threads; the same code also runs on an ordinary Linux host
//! (`keel supervise`) for development and tests. Either way there is exactly one place that calls `waitpid`: the
//! [`Reaper`], driven by whoever receives SIGCHLD.
//!
//! # Design
//! [`image`] pulls and stores images and unpacks layers; [`runtime`] turns a container config and an image into a
//! process in its own namespaces, root and cgroup; [`supervise`] runs the declared containers with Docker's
//! restart policies and health checks; [`syslog`] relays log lines to a syslog receiver. `docs/images.md` and
//! `docs/containers.md` have the details.
//!
//! # Current limitations
//! No Docker API server yet (`keelctl` validates configs only), no per-container log files (an in-memory buffer
//! only), no bridge networking, no device cgroup, no seccomp, no user namespaces, no TTYs; `docs/containers.md`
//! lists the rest.

/// Moved to its own crate; the old path stays until every user imports `keel_images`.
pub use keel_images as image;
pub use keel_logs::{error_chain, syslog};
/// Moved to its own crate; the old path stays until every user imports `keel_runtime`.
pub use keel_runtime as runtime;
pub use keel_runtime::{reaper, ExitStatus, Reaper};
/// Moved to its own crate; the old path stays until every user imports `keel_supervision`.
pub use keel_supervision as supervise;
