//! The health-check thread of one run: every interval, exec the probe in the container and report the result.

use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread;
use std::time::{Instant, SystemTime};

use keel_logs::error_chain;
use keel_runtime::{Container, ContainerProcess, Reaper};

use super::health::{HealthSettings, ProbeRecord};
use super::worker::Message;

/// Probes until `stop` is dropped (the run ended) or the worker is gone. The first probe comes one interval
/// after the start, or one start interval within the start period, as with Docker (`HealthSettings::next_wait`);
/// `is_starting` tells whether the container has not been healthy yet.
#[allow(clippy::too_many_arguments)]
pub(crate) fn spawn_prober(
    container: Arc<Container>,
    init: ContainerProcess,
    settings: HealthSettings,
    reaper: Arc<Reaper>,
    worker: Sender<Message>,
    run: u64,
    stop: Receiver<()>,
    is_starting: impl Fn() -> bool + Send + 'static,
) {
    let name = container.name.clone();
    let started = Instant::now();
    let spawned = thread::Builder::new().name(format!("health-{name}")).spawn(move || loop {
        match stop.recv_timeout(settings.next_wait(started.elapsed(), is_starting())) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        let start = SystemTime::now();
        let probe = match container.exec(&init, &settings.argv, &reaper, settings.timeout) {
            Ok(result) => {
                ProbeRecord { start, end: SystemTime::now(), exit_code: result.exit_code, output: result.output }
            }
            Err(error) => ProbeRecord { start, end: SystemTime::now(), exit_code: -1, output: error_chain(&error) },
        };
        if worker.send(Message::Health { run, probe }).is_err() {
            return;
        }
    });
    if let Err(error) = spawned {
        log::warn!("{name}: cannot start the health-check thread: {}", error_chain(&error));
    }
}
