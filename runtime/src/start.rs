//! `Container::start`: clones the container's first process (through the reaper) and waits until it has exec'd.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::sync::mpsc::Receiver;
use std::time::SystemTime;

use nix::unistd::Pid;

use super::child::{self, ChildFailure, ChildFds};
use super::container::Container;
use super::container_init;
use super::kill::ContainerProcess;
use super::sys::{self, Cloned, NullTerminated};
use crate::reaper::{ExitStatus, Reaper};

/// What failed while starting; the container's first process, if any, is gone or going.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("container {container}: creating a pipe")]
    Pipe {
        container: String,
        #[source]
        source: nix::Error,
    },
    #[error("container {container}: duplicating the stdout or stderr it is given")]
    DuplicateStdio {
        container: String,
        #[source]
        source: io::Error,
    },
    #[error("container {container}: cloning its first process")]
    Clone {
        container: String,
        #[source]
        source: io::Error,
    },
    #[error("container {container}: reading the start result")]
    ReadResult {
        container: String,
        #[source]
        source: io::Error,
    },
    /// The first process reported a failed step: a setup error (125) or a command that cannot run (126, 127).
    #[error("container {container}: {message}")]
    Failed { container: String, message: String, exit_code: i32 },
}

impl StartError {
    /// The exit code Docker shows for a container that failed to start this way.
    pub fn exit_code(&self) -> i32 {
        match self {
            StartError::Failed { exit_code, .. } => *exit_code,
            _ => child::EXIT_SETUP_FAILED,
        }
    }
}

/// A container whose command is running.
#[derive(Debug)]
pub struct RunningContainer {
    /// The container's PID 1 as the host sees it, with its pidfd.
    pub process: ContainerProcess,
    /// Delivers the exit of `process` (from the reaper).
    pub exit: Receiver<ExitStatus>,
    pub stdout: File,
    pub stderr: File,
    pub started_at: SystemTime,
    /// `oom_kill` in the container's cgroup when it started; more at exit means an OOM kill.
    pub oom_kills_at_start: Option<u64>,
}

pub(crate) fn cloexec_pipe(container: &str) -> Result<(OwnedFd, OwnedFd), StartError> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|source| StartError::Pipe { container: container.to_owned(), source })
}

/// Reads the error pipe to its end: nothing means the child exec'd (the pipe closed on exec).
pub(crate) fn read_failure(read_end: OwnedFd) -> io::Result<Option<ChildFailure>> {
    let mut bytes = Vec::with_capacity(ChildFailure::SIZE);
    // The child writes one record at most; anything more is not ours to hold.
    File::from(read_end).take(ChildFailure::SIZE as u64 + 1).read_to_end(&mut bytes)?;
    Ok(ChildFailure::decode(&bytes))
}

impl Container {
    /// Starts the container's first process in new namespaces as a direct child of this process, registered
    /// with `reaper`; returns once it has exec'd the command, with pipes carrying its stdout and stderr.
    pub fn start(&self, reaper: &Reaper) -> Result<RunningContainer, StartError> {
        let (stdout_read, stdout_write) = cloexec_pipe(&self.name)?;
        let (stderr_read, stderr_write) = cloexec_pipe(&self.name)?;
        let oom_kills_at_start = self.cgroup.as_ref().and_then(|cgroup| cgroup.oom_kills());
        // The write ends are dropped inside: our copies must go, or readers never see the end.
        let (process, exit, started_at) = self.clone_first_process(reaper, stdout_write, stderr_write)?;
        Ok(RunningContainer {
            process,
            exit,
            stdout: File::from(stdout_read),
            stderr: File::from(stderr_read),
            started_at,
            oom_kills_at_start,
        })
    }

    /// Like [`start`](Container::start), but the container writes straight to `stdout` and `stderr` (for
    /// `keel run`: this process's own, as `docker run` attached without a terminal), so nobody has to relay
    /// pipes. Returns the container's PID 1 and the receiver of its exit.
    pub fn start_attached(
        &self,
        reaper: &Reaper,
        stdout: BorrowedFd<'_>,
        stderr: BorrowedFd<'_>,
    ) -> Result<(ContainerProcess, Receiver<ExitStatus>), StartError> {
        // Duplicates close on exec in the child; the child dups them onto 1 and 2 itself.
        let duplicate = |fd: BorrowedFd<'_>| {
            fd.try_clone_to_owned()
                .map_err(|source| StartError::DuplicateStdio { container: self.name.clone(), source })
        };
        let (process, exit, _) = self.clone_first_process(reaper, duplicate(stdout)?, duplicate(stderr)?)?;
        Ok((process, exit))
    }

    /// Clones the first process with `stdout` and `stderr` as its 1 and 2 and waits until it has exec'd.
    fn clone_first_process(
        &self,
        reaper: &Reaper,
        stdout: OwnedFd,
        stderr: OwnedFd,
    ) -> Result<(ContainerProcess, Receiver<ExitStatus>, SystemTime), StartError> {
        let (failure_read, failure_write) = cloexec_pipe(&self.name)?;
        // Allocated now: the child may not allocate.
        // Under `init = true` the first process executes the init, which runs the command.
        let init_argv = self.plan.init.as_ref().map(|_| container_init::init_argv(&self.plan.process.argv));
        let argv =
            NullTerminated::new(init_argv.as_ref().unwrap_or(&self.plan.process.argv).iter().map(CString::as_c_str));
        let envp = NullTerminated::new(self.plan.process.env.iter().map(CString::as_c_str));
        let fds = ChildFds { stdout: stdout.as_raw_fd(), stderr: stderr.as_raw_fd(), error: failure_write.as_raw_fd() };
        let plan = &self.plan;
        let mut pidfd = None;
        let (pid, exit) = reaper
            .spawn_with(|| match sys::clone_with_pidfd(plan.namespaces) {
                Ok(Cloned::Child) => child::run_container(plan, &argv, &envp, fds),
                Ok(Cloned::Parent { pid, pidfd: fd }) => {
                    pidfd = Some(fd);
                    Ok(Pid::from_raw(pid))
                }
                Err(errno) => Err(io::Error::from_raw_os_error(errno)),
            })
            .map_err(|source| StartError::Clone { container: self.name.clone(), source })?;
        // Set whenever the clone succeeded (the only way to get here); no pidfd would mean no safe way to signal.
        let Some(pidfd) = pidfd else {
            let source = io::Error::other("clone returned no pidfd");
            return Err(StartError::Clone { container: self.name.clone(), source });
        };
        let process = ContainerProcess::new(pid, pidfd);
        let started_at = SystemTime::now();
        // Our copies of the write ends must go, or the read below never sees the end.
        drop((stdout, stderr, failure_write));
        let failure = read_failure(failure_read)
            .map_err(|source| StartError::ReadResult { container: self.name.clone(), source })?;
        if let Some(failure) = failure {
            // The child exits on its own after reporting; the reaper collects it and drops the unwanted status.
            return Err(StartError::Failed {
                container: self.name.clone(),
                message: failure.describe(&self.plan.steps),
                exit_code: failure.exit_code(),
            });
        }
        Ok((process, exit, started_at))
    }
}
