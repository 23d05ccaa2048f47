//! The one reaper: collects every child exit with `waitpid(-1)` and routes it to whoever spawned that pid.
//!
//! Nothing else may wait for children: a second waiter steals statuses (Talos hit exactly this with Go's
//! `Command.Wait`). Orphans re-parented to us are collected too and their exits dropped.

use std::collections::HashMap;
use std::io;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Mutex, MutexGuard, PoisonError};

use nix::errno::Errno;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// How often [`Reaper::reap_while`] collects exits while its work runs.
const REAP_WHILE_INTERVAL: std::time::Duration = std::time::Duration::from_millis(20);

/// How a child ended, as a shell (and Docker) reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Exited(i32),
    Signaled(i32),
}

impl ExitStatus {
    /// The exit code, with death by signal N reported as 128 + N.
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Exited(code) => code,
            ExitStatus::Signaled(signal) => 128 + signal,
        }
    }
}

/// Routes child exits to the code that spawned each child.
#[derive(Default)]
pub struct Reaper {
    routes: Mutex<HashMap<Pid, Sender<ExitStatus>>>,
}

impl Reaper {
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `spawn`, which starts one child and returns its pid, and routes that child's exit to the receiver.
    ///
    /// The routes stay locked from before the fork until the route is recorded: an exit collected in between
    /// waits for the lock instead of finding no route and being dropped.
    pub fn spawn_with(&self, spawn: impl FnOnce() -> io::Result<Pid>) -> io::Result<(Pid, Receiver<ExitStatus>)> {
        let mut routes = self.lock_routes();
        let pid = spawn()?;
        let (sender, receiver) = channel();
        routes.insert(pid, sender);
        Ok((pid, receiver))
    }

    /// Collects every child that has ended, without blocking; returns how many. Call it on every SIGCHLD: one
    /// signal can stand for many exits.
    pub fn reap_all(&self) -> usize {
        let mut reaped = 0;
        loop {
            let (pid, status) = match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => (pid, ExitStatus::Exited(code)),
                Ok(WaitStatus::Signaled(pid, signal, _core_dumped)) => (pid, ExitStatus::Signaled(signal as i32)),
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return reaped,
                Ok(_stopped_or_continued) => continue,
                Err(Errno::EINTR) => continue,
                Err(error) => {
                    log::warn!("waitpid failed: {error}");
                    return reaped;
                }
            };
            reaped += 1;
            self.route(pid, status);
        }
    }

    /// Runs `work` on a thread of its own and keeps reaping until it is done; returns its result, or `None` when
    /// the thread could not start or panicked. For work that waits on child exits (stopping containers) while
    /// the caller is the one that reaps.
    pub fn reap_while<T: Send + 'static>(&self, name: &str, work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
        let worker = match std::thread::Builder::new().name(name.to_owned()).spawn(work) {
            Ok(worker) => worker,
            Err(error) => {
                log::error!("cannot start the {name} thread: {error}");
                return None;
            }
        };
        while !worker.is_finished() {
            self.reap_all();
            std::thread::sleep(REAP_WHILE_INTERVAL);
        }
        self.reap_all();
        match worker.join() {
            Ok(result) => Some(result),
            Err(_) => {
                log::error!("the {name} thread panicked");
                None
            }
        }
    }

    fn route(&self, pid: Pid, status: ExitStatus) {
        match self.lock_routes().remove(&pid) {
            // The receiver may be gone when its owner stopped caring; the exit is collected either way.
            Some(sender) => drop(sender.send(status)),
            None => log::debug!("reaped orphan {pid} ({status:?})"),
        }
    }

    fn lock_routes(&self) -> MutexGuard<'_, HashMap<Pid, Sender<ExitStatus>>> {
        // A panic while holding the lock leaves a map that is still consistent: every operation is one insert or
        // remove. Keep reaping rather than stop collecting children.
        self.routes.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_deaths_are_reported_as_128_plus_signal() {
        assert_eq!(ExitStatus::Signaled(9).code(), 137);
        assert_eq!(ExitStatus::Exited(3).code(), 3);
    }
}
