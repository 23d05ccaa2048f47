//! keel's container side: everything that runs and watches processes for the host, under PID 1 or on its own.
//!
//! # Background
//! PID 1 (`keel`) starts the supervisor on its own threads; the same code also runs on an ordinary Linux host
//! (`keel supervise`) for development and tests. Either way there is exactly one place that calls `waitpid`: the
//! [`Reaper`], driven by whoever receives SIGCHLD.
//!
//! # Current limitations
//! The reaper and the image store (pulls, archives, layer unpacking); the container runtime, supervision, logs and the API come with their issues.

pub mod image;
pub mod reaper;
pub mod syslog;

pub use reaper::{ExitStatus, Reaper};
