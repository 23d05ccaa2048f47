//! Sees a running container's OOM kills as they happen, as Docker does: `OOMKilled` is set and an `oom` event goes
//! out at the kill, also when the process killed is not the container's init and the container keeps running.
//!
//! One thread per run waits in inotify on the container's `memory.events` (cgroup2 marks the file modified at every
//! change of its counters) and tells the worker when `oom_kill` grew. It ends when the run ends: the worker drops
//! the run's stop channel, which the thread checks at least every few seconds, or the cgroup goes away.

use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::thread;
use std::time::Duration;

use keel_runtime::ContainerCgroup;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

use crate::worker::Message;

/// How often the thread looks whether its run is over while no event comes.
const STOP_CHECK: Duration = Duration::from_secs(5);

/// Watches `cgroup` for the worker's run `run`; `kills_at_start` is the `oom_kill` count before the run began.
/// Without the memory controller (no `memory.events`) nothing is watched.
pub(crate) fn spawn(
    name: &str,
    cgroup: &ContainerCgroup,
    kills_at_start: u64,
    run: u64,
    worker: Sender<Message>,
    stopped: Receiver<()>,
) {
    let events = cgroup.memory_events();
    let watch = || -> nix::Result<Inotify> {
        let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)?;
        inotify.add_watch(&events, AddWatchFlags::IN_MODIFY)?;
        Ok(inotify)
    };
    let Ok(inotify) = watch() else { return };
    let counter = Counter { events, reported: kills_at_start };
    let spawned = thread::Builder::new()
        .name(format!("oom-{name}"))
        .spawn(move || watch_kills(&inotify, counter, run, &worker, &stopped));
    if let Err(error) = spawned {
        log::warn!("{name}: cannot watch for OOM kills: {error}");
    }
}

/// The `oom_kill` count and how much of it was told already.
struct Counter {
    events: PathBuf,
    reported: u64,
}

fn watch_kills(inotify: &Inotify, mut counter: Counter, run: u64, worker: &Sender<Message>, stopped: &Receiver<()>) {
    let timeout = PollTimeout::try_from(STOP_CHECK).unwrap_or(PollTimeout::NONE);
    loop {
        if !matches!(stopped.try_recv(), Err(TryRecvError::Empty)) {
            return;
        }
        let mut fds = [PollFd::new(inotify.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return,
        }
        let gone = match inotify.read_events() {
            Ok(events) => events.iter().any(|event| event.mask.contains(AddWatchFlags::IN_IGNORED)),
            Err(nix::errno::Errno::EAGAIN) => false,
            Err(_) => return,
        };
        let Ok(text) = std::fs::read_to_string(&counter.events) else { return };
        let kills = keel_runtime::cgroup::parse_oom_kills(&text).unwrap_or(0);
        if kills > counter.reported {
            counter.reported = kills;
            if worker.send(Message::OomKilled { run }).is_err() {
                return;
            }
        }
        if gone {
            return;
        }
    }
}
