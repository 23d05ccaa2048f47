//! `Container::exec`: runs a command inside a running container's namespaces (health probes), with a timeout.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::unistd::Pid;

use super::child::{self, ChildFds, ExecPlan};
use super::container::{process_plan, Container};
use super::kill::{kill_container, ContainerProcess};
use super::mounts::PathNulError;
use super::start::{cloexec_pipe, read_failure, StartError};
use super::sys::{self, Cloned, NullTerminated};
use crate::reaper::Reaper;

/// Docker keeps this much of a probe's output.
pub const MAX_OUTPUT: usize = 4096;

/// What failed before the command could run.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("container {container}: preparing the exec")]
    Prepare {
        container: String,
        #[source]
        source: PathNulError,
    },
    #[error(transparent)]
    Start(#[from] StartError),
}

/// How an exec'd command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecResult {
    /// The exit code (128 + N for signal N); -1 when it timed out, as Docker records it.
    pub exit_code: i64,
    /// stdout and stderr together, at most [`MAX_OUTPUT`] bytes.
    pub output: String,
    pub timed_out: bool,
}

/// The namespaces an exec joins, all at once through the init's pidfd (`setns(pidfd)`, Linux 5.8).
const NAMESPACES: libc::c_int =
    libc::CLONE_NEWIPC | libc::CLONE_NEWUTS | libc::CLONE_NEWNET | libc::CLONE_NEWPID | libc::CLONE_NEWNS;

impl Container {
    /// Runs `argv` in the namespaces and cgroup of the container whose PID 1 is `init`, as the container's
    /// user with its capabilities and environment; kills it `timeout` after its exec. The namespaces are those of
    /// `init`'s pidfd: if it has exited (and its pid been reused), joining fails instead of entering another
    /// process's.
    pub fn exec(
        &self,
        init: &ContainerProcess,
        argv: &[String],
        reaper: &Reaper,
        timeout: Duration,
    ) -> Result<ExecResult, ExecError> {
        let prepare_error = |source| ExecError::Prepare { container: self.name.clone(), source };
        let process =
            process_plan(argv, &self.spec.env, &self.spec.workdir, &self.user, &self.limits).map_err(prepare_error)?;
        let cgroup_procs = match &self.cgroup {
            Some(cgroup) => Some(
                CString::new(cgroup.procs_file().as_os_str().as_encoded_bytes())
                    .map_err(|_| prepare_error(PathNulError { path: cgroup.procs_file().display().to_string() }))?,
            ),
            None => None,
        };
        let plan = ExecPlan { namespaces: vec![(init.pidfd().as_raw_fd(), NAMESPACES)], cgroup_procs, process };
        let (output_read, output_write) = cloexec_pipe(&self.name)?;
        let (failure_read, failure_write) = cloexec_pipe(&self.name)?;
        let argv_pointers = NullTerminated::new(plan.process.argv.iter().map(CString::as_c_str));
        let envp = NullTerminated::new(plan.process.env.iter().map(CString::as_c_str));
        let fds = ChildFds {
            stdout: output_write.as_raw_fd(),
            stderr: output_write.as_raw_fd(),
            error: failure_write.as_raw_fd(),
        };
        let mut pidfd = None;
        let (pid, exit) = reaper
            .spawn_with(|| match sys::clone_with_pidfd(0) {
                Ok(Cloned::Child) => child::run_exec(&plan, &argv_pointers, &envp, fds),
                Ok(Cloned::Parent { pid, pidfd: fd }) => {
                    pidfd = Some(fd);
                    Ok(Pid::from_raw(pid))
                }
                Err(errno) => Err(io::Error::from_raw_os_error(errno)),
            })
            .map_err(|source| StartError::Clone { container: self.name.clone(), source })?;
        drop((output_write, failure_write));
        let failure = read_failure(failure_read)
            .map_err(|source| StartError::ReadResult { container: self.name.clone(), source })?;
        if let Some(failure) = failure {
            let _ = exit.recv_timeout(timeout);
            return Ok(ExecResult {
                exit_code: i64::from(failure.exit_code()),
                output: failure.describe(&[]),
                timed_out: false,
            });
        }
        // From the exec on, as Docker times a probe: joining the namespaces and forking is not the probe's time.
        let deadline = Instant::now() + timeout;
        let (output, finished) = read_until(output_read, deadline);
        let remaining = deadline.saturating_duration_since(Instant::now());
        let status = if finished { exit.recv_timeout(remaining).ok() } else { None };
        match status {
            Some(status) => Ok(ExecResult { exit_code: i64::from(status.code()), output, timed_out: false }),
            None => {
                // The probe's own process dies with this one (parent-death signal).
                // Through the probe's pidfd: its pid may already be reaped and reused.
                if let Some(pidfd) = pidfd {
                    let _ = kill_container(&self.name, &ContainerProcess::new(pid, pidfd), libc::SIGKILL);
                }
                let _ = exit.recv_timeout(Duration::from_secs(5));
                let output = format!("Health check exceeded timeout ({timeout:?})");
                Ok(ExecResult { exit_code: -1, output, timed_out: true })
            }
        }
    }
}

/// Reads `pipe` until its end or `deadline`; keeps the first [`MAX_OUTPUT`] bytes. Returns whether the end came.
fn read_until(pipe: OwnedFd, deadline: Instant) -> (String, bool) {
    let fd = pipe.as_raw_fd();
    let mut file = File::from(pipe);
    let mut kept = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (String::from_utf8_lossy(&kept).into_owned(), false);
        }
        match sys::poll_readable(fd, left.as_millis().min(i32::MAX as u128) as i32) {
            Ok(false) => continue,
            Ok(true) | Err(libc::EINTR) => {}
            Err(_) => return (String::from_utf8_lossy(&kept).into_owned(), true),
        }
        match file.read(&mut buffer) {
            Ok(0) => return (String::from_utf8_lossy(&kept).into_owned(), true),
            Ok(count) => {
                let room = MAX_OUTPUT.saturating_sub(kept.len());
                kept.extend_from_slice(&buffer[..count.min(room)]);
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return (String::from_utf8_lossy(&kept).into_owned(), true),
        }
    }
}
