//! keel's supervision: starts the declared containers in dependency order, restarts them as Docker's policies
//! say, runs their health checks, keeps their output, reconciles config changes and stops everything on shutdown.
//!
//! # Background
//! PID 1 (`keel`) starts the [`Supervisor`] on its own threads; the same code also runs on an ordinary Linux host
//! (`keel supervise`) for development and for tests that need no VM. It is the one crate that puts the others
//! together: images come from `keel-images`, processes from `keel-runtime`, output goes to `keel-logs`; this
//! crate decides when. Reading an image's defaults out of the store for the runtime happens here
//! ([`image_run_config`]), so that the runtime does not depend on the store.
//!
//! # Design
//! One thread per container ([`worker`]) owns that container's [`machine::Machine`] and is the only code that
//! starts, signals or forgets its process; everything else talks to it over a channel. Exits come from the one
//! [`Reaper`] (whoever owns SIGCHLD drives it), forwarded per run. [`SupervisorHandle`] is what PID 1 and
//! `keel supervise` hold. `docs/containers.md` has the state table and the timings.
//!
//! # Current limitations
//! No Docker API server yet, no per-container log files (an in-memory buffer only), no events stream; a worker's
//! state reaches the rest through a shared status that readers lock, not through the machine alone.

pub mod backoff;
pub mod health;
mod images;
pub mod machine;
mod probe;
pub mod reconcile;
pub mod state_file;
pub mod status;
mod worker;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use keel_config::UserData;
use keel_images::{ImageReference, ImageStore, RegistryClient, RegistrySettings, StoreError};
use keel_logs::{EchoSink, LogBuffer, LogRecord, LogSink};
use keel_runtime::{Reaper, RuntimeDirs};

pub use images::{image_run_config, EnsureImageError, ImageConfigError};
pub use reconcile::{Definition, ReconcilePlan};
pub use status::ContainerStatus;

use reconcile::plan;
use worker::{Message, Worker};

/// Where the supervisor keeps things and how it reports.
#[derive(Clone)]
pub struct SupervisorOptions {
    /// `containers/` and `volumes/` go here (`/var/lib/keel` on a keel host).
    pub state_dir: PathBuf,
    /// The OCI image layout (`<state>/images`).
    pub images_root: PathBuf,
    /// Unpacked layers (`<state>/layers`).
    pub layers_root: PathBuf,
    /// The cgroup2 mount (`/sys/fs/cgroup`); `None` runs containers without cgroups.
    pub cgroup_root: Option<PathBuf>,
    /// Image archives imported at start if not yet in the store (`/usr/share/keel/images` on a keel host).
    pub preloaded_images: Option<PathBuf>,
    /// Echo every container line to the log as `<name>: <line>`.
    pub echo_logs: bool,
    /// More destinations for container output (the `docker logs` files and the syslog relay plug in here).
    pub log_sinks: Vec<Arc<dyn LogSink>>,
}

impl SupervisorOptions {
    /// Everything under `state_dir`, no cgroups, no preloaded images, no echo.
    pub fn new(state_dir: impl Into<PathBuf>) -> SupervisorOptions {
        let state_dir = state_dir.into();
        SupervisorOptions {
            images_root: state_dir.join("images"),
            layers_root: state_dir.join("layers"),
            state_dir,
            cgroup_root: None,
            preloaded_images: None,
            echo_logs: false,
            log_sinks: Vec::new(),
        }
    }
}

/// What failed at the supervisor level.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error("opening the image store")]
    OpenStore(#[source] StoreError),
    #[error("no container named {name}")]
    UnknownContainer { name: String },
    #[error("container {name}: its worker is gone")]
    WorkerGone { name: String },
    #[error("container {name}: starting its worker thread")]
    SpawnWorker {
        name: String,
        #[source]
        source: std::io::Error,
    },
}

/// What the workers share.
pub(crate) struct Shared {
    pub dirs: RuntimeDirs,
    pub store: Arc<ImageStore>,
    pub reaper: Arc<Reaper>,
    pub sinks: Arc<Vec<Arc<dyn LogSink>>>,
    registry: RwLock<Arc<RegistryClient>>,
    statuses: Mutex<BTreeMap<String, Arc<Mutex<ContainerStatus>>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub(crate) fn registry(&self) -> Arc<RegistryClient> {
        Arc::clone(&self.registry.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Whether container `name` is running and, if it has a health check, healthy.
    pub(crate) fn is_ready(&self, name: &str) -> bool {
        let status = lock(&self.statuses).get(name).cloned();
        status.is_some_and(|status| lock(&status).is_ready())
    }

    fn set_registries(&self, user_data: &UserData) {
        let settings: HashMap<String, RegistrySettings> = user_data
            .registries
            .iter()
            .map(|(host, registry)| {
                let credentials = registry.credentials.as_ref();
                let settings = RegistrySettings {
                    insecure: registry.insecure,
                    username: credentials.map(|credentials| credentials.username.clone()),
                    password: credentials.map(|credentials| credentials.password.clone()),
                };
                (host.clone(), settings)
            })
            .collect();
        *self.registry.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(RegistryClient::new(settings));
    }
}

struct WorkerHandle {
    sender: Sender<Message>,
    thread: JoinHandle<()>,
    status: Arc<Mutex<ContainerStatus>>,
    logs: Arc<LogBuffer>,
    definition: Definition,
}

#[derive(Default)]
struct Workers {
    /// Start order of the current config.
    order: Vec<String>,
    by_name: BTreeMap<String, WorkerHandle>,
}

/// The running supervisor. Dropping it leaves containers running; call [`SupervisorHandle::shutdown`].
pub struct SupervisorHandle {
    shared: Arc<Shared>,
    workers: Mutex<Workers>,
}

/// Entry point for PID 1 and `keel supervise`.
pub struct Supervisor;

impl Supervisor {
    /// Opens the image store, imports preloaded images, and starts the containers of `user_data` in dependency
    /// order on their own threads. Returns at once; pulls and dependency waits happen on those threads.
    pub fn start(
        options: SupervisorOptions,
        reaper: Arc<Reaper>,
        user_data: &UserData,
    ) -> Result<SupervisorHandle, SupervisorError> {
        // The container's first process changes directory before it mounts: relative paths would break there.
        let mut options = options;
        for path in [&mut options.state_dir, &mut options.images_root, &mut options.layers_root] {
            if let Ok(absolute) = std::path::absolute(&*path) {
                *path = absolute;
            }
        }
        let store = ImageStore::open(&options.images_root, &options.layers_root).map_err(SupervisorError::OpenStore)?;
        if let Some(dir) = &options.preloaded_images {
            match store.import_preloaded_dir(dir) {
                Ok(imported) => {
                    for reference in imported {
                        log::info!("imported preloaded image {reference}");
                    }
                }
                Err(error) => log::warn!("preloaded images in {}: {}", dir.display(), keel_logs::error_chain(&error)),
            }
        }
        let mut sinks = options.log_sinks.clone();
        if options.echo_logs {
            sinks.push(Arc::new(EchoSink));
        }
        let dirs = RuntimeDirs {
            layers_root: options.layers_root.clone(),
            containers_dir: options.state_dir.join("containers"),
            volumes_dir: options.state_dir.join("volumes"),
            cgroup_root: options.cgroup_root.clone(),
        };
        let shared = Arc::new(Shared {
            dirs,
            store: Arc::new(store),
            reaper,
            sinks: Arc::new(sinks),
            registry: RwLock::new(Arc::new(RegistryClient::new(HashMap::new()))),
            statuses: Mutex::new(BTreeMap::new()),
        });
        let handle = SupervisorHandle { shared, workers: Mutex::new(Workers::default()) };
        handle.apply(user_data)?;
        Ok(handle)
    }
}

impl SupervisorHandle {
    /// Reconciles with `user_data`: removed containers are stopped (reverse order) and deleted, changed ones
    /// (config or image digest) recreated, new ones started in dependency order, the rest left running.
    pub fn apply(&self, user_data: &UserData) -> Result<ReconcilePlan, SupervisorError> {
        self.shared.set_registries(user_data);
        let mut workers = lock(&self.workers);
        let current: BTreeMap<String, Definition> = workers
            .by_name
            .iter()
            .map(|(name, worker)| {
                let mut definition = worker.definition.clone();
                if let Some(digest) = lock(&worker.status).image_digest.clone() {
                    definition.image_digest = Some(digest);
                }
                (name.clone(), definition)
            })
            .collect();
        let desired: BTreeMap<String, Definition> = user_data
            .containers
            .iter()
            .map(|(name, config)| {
                let image_digest = config
                    .image
                    .parse::<ImageReference>()
                    .ok()
                    .and_then(|reference| self.shared.store.lookup(&reference.to_string()).ok().flatten())
                    .map(|descriptor| descriptor.digest.to_string());
                (name.clone(), Definition { config: config.clone(), image_digest })
            })
            .collect();
        let plan = plan(&current, &desired);
        let old_order = workers.order.clone();
        for name in old_order.iter().rev() {
            if plan.remove.contains(name) || plan.recreate.contains(name) {
                if let Some(worker) = workers.by_name.remove(name) {
                    log::info!(
                        "{name}: {}",
                        if plan.remove.contains(name) { "removed from the config" } else { "changed; recreating" }
                    );
                    self.stop_worker(name, worker, true);
                }
            }
        }
        let order = user_data.start_order();
        for name in &order {
            if !(plan.create.contains(name) || plan.recreate.contains(name)) {
                continue;
            }
            let Some(definition) = desired.get(name) else { continue };
            let worker = self.spawn_worker(name, definition.clone())?;
            workers.by_name.insert(name.clone(), worker);
        }
        workers.order = order;
        Ok(plan)
    }

    fn spawn_worker(&self, name: &str, definition: Definition) -> Result<WorkerHandle, SupervisorError> {
        let config = &definition.config;
        let status = Arc::new(Mutex::new(ContainerStatus::new(name, &config.image, config.restart, config.required)));
        let logs = Arc::new(LogBuffer::default());
        lock(&self.shared.statuses).insert(name.to_owned(), Arc::clone(&status));
        let (worker, sender) =
            Worker::new(name, config.clone(), Arc::clone(&self.shared), Arc::clone(&status), Arc::clone(&logs));
        let thread = thread::Builder::new()
            .name(format!("container-{name}"))
            .spawn(move || worker.run())
            .map_err(|source| SupervisorError::SpawnWorker { name: name.to_owned(), source })?;
        Ok(WorkerHandle { sender, thread, status, logs, definition })
    }

    /// Stops a worker's container for good and waits, bounded by its stop timeout plus a margin.
    fn stop_worker(&self, name: &str, worker: WorkerHandle, remove: bool) {
        let (done, finished) = channel();
        if worker.sender.send(Message::Shutdown { remove, done }).is_ok() {
            let bound = Duration::from_secs(u64::from(worker.definition.config.stop_timeout) + 30);
            if finished.recv_timeout(bound).is_err() {
                log::warn!("{name}: did not stop within {bound:?}");
                return;
            }
        }
        let _ = worker.thread.join();
        if remove {
            lock(&self.shared.statuses).remove(name);
        }
    }

    /// Every container's status, in start order.
    pub fn status(&self) -> Vec<ContainerStatus> {
        let workers = lock(&self.workers);
        workers
            .order
            .iter()
            .filter_map(|name| workers.by_name.get(name))
            .map(|worker| lock(&worker.status).clone())
            .collect()
    }

    /// One container's status.
    pub fn container(&self, name: &str) -> Option<ContainerStatus> {
        lock(&self.workers).by_name.get(name).map(|worker| lock(&worker.status).clone())
    }

    /// A container's buffered output, oldest first.
    pub fn logs(&self, name: &str) -> Option<Vec<LogRecord>> {
        lock(&self.workers).by_name.get(name).map(|worker| worker.logs.records())
    }

    fn send(&self, name: &str, message: Message) -> Result<(), SupervisorError> {
        let workers = lock(&self.workers);
        let worker =
            workers.by_name.get(name).ok_or_else(|| SupervisorError::UnknownContainer { name: name.to_owned() })?;
        worker.sender.send(message).map_err(|_| SupervisorError::WorkerGone { name: name.to_owned() })
    }

    /// `docker stop`: stop signal, stop timeout, SIGKILL; remembered as a manual stop (no restart; an
    /// `unless-stopped` container stays stopped across supervisor restarts). Returns when it has stopped.
    pub fn stop(&self, name: &str) -> Result<(), SupervisorError> {
        let (done, stopped) = channel();
        self.send(name, Message::Stop { by_user: true, done: Some(done) })?;
        stopped.recv().map_err(|_| SupervisorError::WorkerGone { name: name.to_owned() })
    }

    /// `docker start`: starts it again, resetting the restart count and the manual stop.
    pub fn start(&self, name: &str) -> Result<(), SupervisorError> {
        self.send(name, Message::Start { manual: true })
    }

    /// `docker restart`: stop (as above, but not a manual stop), then start. Returns once started.
    pub fn restart(&self, name: &str) -> Result<(), SupervisorError> {
        let (done, restarted) = channel();
        self.send(name, Message::Restart { done })?;
        restarted.recv().map_err(|_| SupervisorError::WorkerGone { name: name.to_owned() })
    }

    /// Stops every container in reverse dependency order, each bounded by its stop timeout. Not a manual stop:
    /// containers start again with the next supervisor.
    pub fn shutdown(&self) {
        let mut workers = lock(&self.workers);
        let order = std::mem::take(&mut workers.order);
        for name in order.iter().rev() {
            if let Some(worker) = workers.by_name.remove(name) {
                self.stop_worker(name, worker, false);
            }
        }
        for (name, worker) in std::mem::take(&mut workers.by_name) {
            self.stop_worker(&name, worker, false);
        }
    }
}
