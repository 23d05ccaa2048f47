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
//! Readers never wait on writers: `status`, `container` and `logs` read a snapshot of the containers
//! (`registry.rs`) that `apply` and `shutdown` replace whole, and never hold a lock across a stop. Every wait for a
//! worker (`stop`, `restart`, a stop inside `apply` or `shutdown`) is bounded by the container's stop timeout plus
//! a margin.
//!
//! # Current limitations
//! No container logs beyond the json-file files (no other log drivers).

pub mod backoff;
pub mod events;
pub mod health;
mod images;
pub mod machine;
mod oom_watch;
mod probe;
pub mod reconcile;
mod registry;
pub mod state_file;
pub mod status;
mod worker;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::mpsc::{channel, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use keel_config::containers::dependencies::{stop_levels, DependencyCondition};
use keel_config::{ContainerConfig, UserData};
use keel_images::{ImageReference, ImageStore, RegistryClient, RegistrySettings, RegistryTimeouts, StoreError};
use keel_logs::json_file::{JsonFileSink, LogFiles, LogLimits, LogQuery};
use keel_logs::{error_chain, LogRecord, LogSink};
use keel_runtime::{Reaper, RuntimeDirs};

pub use images::{image_run_config, EnsureImageError, ImageConfigError, PullImageError};
pub use keel_images::{ProgressSink, PullEvent};
pub use reconcile::{Definition, ReconcilePlan};
pub use status::ContainerStatus;

use reconcile::plan;
use registry::{Containers, Entry};
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
    /// The cgroup2 mount (`/sys/fs/cgroup`); `None` allows only privileged containers (the device filter needs a cgroup).
    pub cgroup_root: Option<PathBuf>,
    /// The program `init = true` runs as a container's PID 1 (beside the running executable by default).
    pub container_init: PathBuf,
    /// Image archives imported at start if not yet in the store (`/usr/share/keel/images` on a keel host).
    pub preloaded_images: Option<PathBuf>,
    /// Where container output goes besides the json-file logs: PID 1 and `keel supervise` put their `LogRouter` here
    /// (console and syslog); later the `docker logs` files plug in too.
    pub log_sinks: Vec<Arc<dyn LogSink>>,
    /// Deadlines and retries of pulls; the defaults everywhere but in tests.
    pub registry_timeouts: RegistryTimeouts,
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
            container_init: keel_runtime::container_init::beside_current_exe(),
            preloaded_images: None,
            log_sinks: Vec::new(),
            registry_timeouts: RegistryTimeouts::default(),
        }
    }
}

/// One image of the store, as `docker images` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredImageSummary {
    pub name: String,
    pub manifest_digest: String,
    pub config_digest: String,
    /// Config and layers as stored (compressed), in bytes.
    pub size: u64,
}

/// What a pull through the API gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullOutcome {
    /// The reference as stored (`registry/repository:tag`).
    pub reference: String,
    pub manifest_digest: String,
    /// The store already had this manifest under this name.
    pub up_to_date: bool,
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
    #[error("{message}")]
    Refused { name: String, message: String },
    #[error("container {name}: not stopped within {bound:?}")]
    StopTimedOut { name: String, bound: Duration },
    #[error("container {name}: not restarted within {bound:?}")]
    RestartTimedOut { name: String, bound: Duration },
}

/// How long a stop may take beyond the container's stop timeout: the SIGKILL, the exit reaching the worker and,
/// for a restart, the new start. Past it the caller gets an error rather than waiting on a stuck container.
const STOP_MARGIN: Duration = Duration::from_secs(30);

/// How long a shutdown waits past its deadline for the killed containers' exits to reach their workers.
const KILL_MARGIN: Duration = Duration::from_secs(5);

/// The longest a reader of the logs waits for the lines read before it to reach the files.
pub const LOG_FLUSH_BOUND: Duration = Duration::from_millis(500);

/// The longest a shutdown waits for the containers' last lines to reach their files.
const LOG_SHUTDOWN_FLUSH: Duration = Duration::from_secs(2);

/// The longest a caller waits for `config`'s container to stop (or restart).
fn stop_bound(config: &ContainerConfig) -> Duration {
    Duration::from_secs(u64::from(config.stop_timeout)) + STOP_MARGIN
}

/// What the workers share.
pub(crate) struct Shared {
    pub dirs: RuntimeDirs,
    pub store: Arc<ImageStore>,
    pub reaper: Arc<Reaper>,
    pub sinks: Arc<Vec<Arc<dyn LogSink>>>,
    /// The json-file sink among `sinks` (none if its writer thread could not start).
    log_files: Option<Arc<JsonFileSink>>,
    registry: RwLock<Arc<RegistryClient>>,
    registry_timeouts: RegistryTimeouts,
    pub containers: Containers,
    pub events: events::EventLog,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub(crate) fn registry(&self) -> Arc<RegistryClient> {
        Arc::clone(&self.registry.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Whether container `name` meets `condition` for a container that depends on it.
    pub(crate) fn dependency_met(&self, name: &str, condition: DependencyCondition) -> bool {
        self.containers.get(name).is_some_and(|entry| lock(&entry.status).meets(condition))
    }

    /// Why container `name` will not meet `condition` unless it changes (it exited, or is unhealthy); `None` while
    /// it may still get there.
    pub(crate) fn dependency_failure(&self, name: &str, condition: DependencyCondition) -> Option<String> {
        self.containers.get(name).and_then(|entry| lock(&entry.status).fails(condition))
    }

    /// Tells every worker whose container depends on `name` that `name`'s state or health changed. Called after the
    /// change is in `name`'s status, so a dependent registered too late to be told sees the change when it looks.
    pub(crate) fn notify_dependents(&self, name: &str) {
        for entry in self.containers.snapshot().by_name.values() {
            if entry.definition.config.depends_on.iter().any(|dependency| dependency == name) {
                let _ = entry.sender.send(Message::DependencyChanged);
            }
        }
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
        let client = RegistryClient::with_timeouts(settings, self.registry_timeouts);
        *self.registry.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(client);
    }
}

/// The running supervisor. Dropping it leaves containers running; call [`SupervisorHandle::shutdown`].
///
/// Readers ([`status`](Self::status), [`container`](Self::container), [`logs`](Self::logs)) answer from a
/// snapshot and never wait on a writer; [`apply`](Self::apply) and [`shutdown`](Self::shutdown) take turns;
/// [`stop`](Self::stop) and [`restart`](Self::restart) wait for their container only, and only so long.
pub struct SupervisorHandle {
    shared: Arc<Shared>,
    /// The worker threads, to join once stopped. Held by `apply` and `shutdown` for their whole run, which
    /// serialises them; readers never take it.
    threads: Mutex<BTreeMap<String, JoinHandle<()>>>,
    /// `[host] shutdown_timeout` of the last config applied.
    shutdown_timeout: Mutex<Duration>,
    state_dir: PathBuf,
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
        let containers_dir = options.state_dir.join("containers");
        let log_files = match JsonFileSink::start(&containers_dir, LogLimits::default()) {
            Ok(sink) => {
                let sink = Arc::new(sink);
                sinks.push(Arc::clone(&sink) as Arc<dyn LogSink>);
                Some(sink)
            }
            Err(error) => {
                log::warn!("container log files: cannot start their writer: {}", error_chain(&error));
                None
            }
        };
        let dirs = RuntimeDirs {
            layers_root: options.layers_root.clone(),
            containers_dir,
            volumes_dir: options.state_dir.join("volumes"),
            cgroup_root: options.cgroup_root.clone(),
            container_init: options.container_init.clone(),
            host_etc: PathBuf::from("/etc"),
        };
        let shared = Arc::new(Shared {
            dirs,
            store: Arc::new(store),
            reaper,
            sinks: Arc::new(sinks),
            log_files,
            registry: RwLock::new(Arc::new(RegistryClient::with_timeouts(HashMap::new(), options.registry_timeouts))),
            registry_timeouts: options.registry_timeouts,
            containers: Containers::default(),
            events: events::EventLog::default(),
        });
        let handle = SupervisorHandle {
            shared,
            threads: Mutex::new(BTreeMap::new()),
            shutdown_timeout: Mutex::new(Duration::from_secs(u64::from(user_data.host.shutdown_timeout))),
            state_dir: options.state_dir.clone(),
        };
        handle.apply(user_data)?;
        Ok(handle)
    }
}

impl SupervisorHandle {
    /// Reconciles with `user_data`: removed containers are stopped (reverse order) and deleted, changed ones
    /// (config or image digest) recreated, new ones started in dependency order, the rest left running. A second
    /// `apply` (or `shutdown`) waits for this one; readers do not.
    pub fn apply(&self, user_data: &UserData) -> Result<ReconcilePlan, SupervisorError> {
        let mut threads = lock(&self.threads);
        *lock(&self.shutdown_timeout) = Duration::from_secs(u64::from(user_data.host.shutdown_timeout));
        // Every container's, also those kept running: a changed `[logs]` applies from their next line on.
        if let Some(sink) = &self.shared.log_files {
            for (name, config) in &user_data.containers {
                let max_size = config.log_max_size.unwrap_or(user_data.logs.max_size);
                let max_files = config.log_max_files.unwrap_or(user_data.logs.max_files);
                sink.set_limits(name, LogLimits { max_size, max_files });
            }
        }
        self.shared.set_registries(user_data);
        let registry = self.shared.containers.snapshot();
        let current: BTreeMap<String, Definition> = registry
            .by_name
            .iter()
            .map(|(name, entry)| {
                let mut definition = entry.definition.clone();
                if let Some(digest) = lock(&entry.status).image_digest.clone() {
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
        let mut leaving = Vec::new();
        for name in registry.names() {
            let removed = plan.remove.contains(&name);
            if removed || plan.recreate.contains(&name) {
                log::info!("{name}: {}", if removed { "removed from the config" } else { "changed; recreating" });
                leaving.push(name);
            }
        }
        self.retire(&leaving, &mut threads, true, None);
        let order = user_data.start_order();
        self.shared.containers.update(|registry| registry.order.clone_from(&order));
        for name in &order {
            if !(plan.create.contains(name) || plan.recreate.contains(name)) {
                continue;
            }
            let Some(definition) = desired.get(name) else { continue };
            let thread = self.spawn_worker(name, definition.clone())?;
            threads.insert(name.clone(), thread);
        }
        Ok(plan)
    }

    fn spawn_worker(&self, name: &str, definition: Definition) -> Result<JoinHandle<()>, SupervisorError> {
        let config = &definition.config;
        let status = Arc::new(Mutex::new(ContainerStatus::new(name, &config.image, config.restart, config.required)));
        let (worker, sender) = Worker::new(name, config.clone(), Arc::clone(&self.shared), Arc::clone(&status));
        // In the registry before its thread runs, so that no readiness change of a dependency can pass unseen:
        // the dependency either finds this worker to tell, or was ready before the worker first looked.
        let entry = Arc::new(Entry { sender, status, definition });
        self.shared.containers.update(|registry| {
            registry.by_name.insert(name.to_owned(), entry);
        });
        thread::Builder::new().name(format!("container-{name}")).spawn(move || worker.run()).map_err(|source| {
            self.shared.containers.update(|registry| {
                registry.by_name.remove(name);
            });
            SupervisorError::SpawnWorker { name: name.to_owned(), source }
        })
    }

    /// Stops the containers `names` for good (deleting their files with `remove`) and forgets them: in levels
    /// of their dependencies (a container before those it depends on), every container of a level at once, each
    /// with its stop signal and timeout but killed at `deadline` at the latest. Each wait is bounded (its stop
    /// timeout plus a margin, or the deadline plus a smaller one); a worker that does not answer is left to
    /// finish on its own. Readers see the containers stopping meanwhile.
    fn retire(
        &self,
        names: &[String],
        threads: &mut BTreeMap<String, JoinHandle<()>>,
        remove: bool,
        deadline: Option<Instant>,
    ) {
        let entries: Vec<(String, Arc<Entry>)> =
            names.iter().filter_map(|name| Some((name.clone(), self.shared.containers.get(name)?))).collect();
        let graph: Vec<(&str, &[String])> =
            entries.iter().map(|(name, entry)| (name.as_str(), &entry.definition.config.depends_on[..])).collect();
        for level in stop_levels(&graph) {
            let started = Instant::now();
            let mut waiting = Vec::new();
            for name in level {
                let Some((_, entry)) = entries.iter().find(|(other, _)| *other == name) else { continue };
                let (done, finished) = channel();
                let sent = entry.sender.send(Message::Shutdown { remove, deadline, done }).is_ok();
                let mut bound = started + stop_bound(&entry.definition.config);
                if let Some(deadline) = deadline {
                    bound = bound.min(deadline + KILL_MARGIN);
                }
                waiting.push((name, sent.then_some(finished), bound));
            }
            for (name, finished, bound) in waiting {
                let stopped = match finished {
                    Some(finished) => {
                        match finished.recv_timeout(bound.saturating_duration_since(Instant::now())) {
                            Err(RecvTimeoutError::Timeout) => {
                                // Left to finish on its own: joining would wait without bound.
                                log::warn!(
                                    "{name}: did not stop within {:?}",
                                    bound.saturating_duration_since(started)
                                );
                                false
                            }
                            Ok(()) | Err(RecvTimeoutError::Disconnected) => true,
                        }
                    }
                    None => true,
                };
                if let Some(thread) = threads.remove(&name).filter(|_| stopped) {
                    let _ = thread.join();
                }
                self.shared.containers.update(|registry| {
                    registry.by_name.remove(&name);
                    registry.order.retain(|other| *other != name);
                });
            }
        }
    }

    /// Every container's status, in start order.
    pub fn status(&self) -> Vec<ContainerStatus> {
        let registry = self.shared.containers.snapshot();
        registry
            .names()
            .iter()
            .filter_map(|name| registry.by_name.get(name))
            .map(|entry| lock(&entry.status).clone())
            .collect()
    }

    /// One container's status.
    pub fn container(&self, name: &str) -> Option<ContainerStatus> {
        self.shared.containers.get(name).map(|entry| lock(&entry.status).clone())
    }

    /// A container's output in its log files, oldest first (what was read before the call included).
    pub fn logs(&self, name: &str) -> Option<Vec<LogRecord>> {
        Some(self.log_files(name)?.read(&LogQuery::all()).0)
    }

    /// A container's log files to read (`docker logs`), once the lines read before the call are written to them
    /// (waiting for that at most [`LOG_FLUSH_BOUND`]); `None` for a container not in the config.
    pub fn log_files(&self, name: &str) -> Option<LogFiles> {
        self.shared.containers.get(name)?;
        if let Some(sink) = &self.shared.log_files {
            sink.flush(LOG_FLUSH_BOUND);
        }
        Some(LogFiles::new(&self.shared.dirs.containers_dir, name))
    }

    /// Lines written to the log files and lines dropped (a full queue or a failed write) since the start.
    pub fn log_counters(&self) -> keel_logs::json_file::WriterCounters {
        self.shared.log_files.as_ref().map(|sink| sink.counters()).unwrap_or_default()
    }

    fn entry(&self, name: &str) -> Result<Arc<Entry>, SupervisorError> {
        self.shared.containers.get(name).ok_or_else(|| SupervisorError::UnknownContainer { name: name.to_owned() })
    }

    fn send(&self, name: &str, entry: &Entry, message: Message) -> Result<(), SupervisorError> {
        entry.sender.send(message).map_err(|_| SupervisorError::WorkerGone { name: name.to_owned() })
    }

    /// `docker stop`: stop signal, stop timeout (or `timeout`, as `docker stop -t`), SIGKILL; remembered as a
    /// manual stop (no restart; an `unless-stopped` container stays stopped across supervisor restarts). Returns
    /// when it has stopped, or [`SupervisorError::StopTimedOut`] after the timeout plus a margin.
    pub fn stop(&self, name: &str, timeout: Option<Duration>) -> Result<(), SupervisorError> {
        let entry = self.entry(name)?;
        let (done, stopped) = channel();
        self.send(name, &entry, Message::Stop { by_user: true, timeout, done })?;
        let bound = timeout.map_or_else(|| stop_bound(&entry.definition.config), |timeout| timeout + STOP_MARGIN);
        stopped.recv_timeout(bound).map_err(|error| match error {
            RecvTimeoutError::Timeout => SupervisorError::StopTimedOut { name: name.to_owned(), bound },
            RecvTimeoutError::Disconnected => SupervisorError::WorkerGone { name: name.to_owned() },
        })
    }

    /// `docker start`: starts it again, resetting the restart count and the manual stop.
    pub fn start(&self, name: &str) -> Result<(), SupervisorError> {
        let entry = self.entry(name)?;
        self.send(name, &entry, Message::Start { manual: true })
    }

    /// `docker restart`: stop (as above, but not a manual stop), then start. Returns once started, or
    /// [`SupervisorError::RestartTimedOut`] after the stop timeout plus a margin.
    pub fn restart(&self, name: &str, timeout: Option<Duration>) -> Result<(), SupervisorError> {
        let entry = self.entry(name)?;
        let (done, restarted) = channel();
        self.send(name, &entry, Message::Restart { timeout, done })?;
        let bound = timeout.map_or_else(|| stop_bound(&entry.definition.config), |timeout| timeout + STOP_MARGIN);
        restarted.recv_timeout(bound).map_err(|error| match error {
            RecvTimeoutError::Timeout => SupervisorError::RestartTimedOut { name: name.to_owned(), bound },
            RecvTimeoutError::Disconnected => SupervisorError::WorkerGone { name: name.to_owned() },
        })
    }

    /// The store's images: name, manifest digest, config digest and size (config and layers, compressed).
    pub fn images(&self) -> Vec<StoredImageSummary> {
        let store = &self.shared.store;
        let listed = store.list().unwrap_or_default();
        listed
            .into_iter()
            .map(|(name, manifest_digest)| {
                let manifest = store.read_manifest(&manifest_digest).ok();
                let size = manifest.as_ref().map_or(0, |manifest| {
                    manifest.layers.iter().fold(manifest.config.size, |total, layer| total.saturating_add(layer.size))
                });
                StoredImageSummary {
                    name,
                    manifest_digest: manifest_digest.to_string(),
                    config_digest: manifest.map(|manifest| manifest.config.digest.to_string()).unwrap_or_default(),
                    size,
                }
            })
            .collect()
    }

    /// Pulls `reference` (as `docker pull` names it) from its registry (with the config's registry settings),
    /// reporting to `progress`; whether the store already had that manifest under that name.
    pub fn pull(&self, reference: &str, progress: &dyn ProgressSink) -> Result<PullOutcome, images::PullImageError> {
        let parsed: ImageReference = reference
            .parse()
            .map_err(|source| images::PullImageError::Reference { reference: reference.to_owned(), source })?;
        let name = parsed.to_string();
        let before = self.shared.store.lookup(&name).ok().flatten().map(|descriptor| descriptor.digest);
        let pulled = images::pull(&self.shared, &parsed, progress)
            .map_err(|source| images::PullImageError::Pull { reference: name.clone(), source })?;
        Ok(PullOutcome {
            up_to_date: before.as_ref() == Some(&pulled.manifest_digest),
            manifest_digest: pulled.manifest_digest.to_string(),
            reference: name,
        })
    }

    /// The config blob (Docker's image JSON) of the image tagged `name` in the store.
    pub fn image_config(&self, name: &str) -> Option<Vec<u8>> {
        let store = &self.shared.store;
        let descriptor = store.lookup(name).ok().flatten()?;
        let manifest = store.read_manifest(&descriptor.digest).ok()?;
        store.read_blob(&manifest.config.digest).ok()
    }

    /// The writable layer of container `name` (its overlay's upper directory).
    pub fn writable_layer(&self, name: &str) -> PathBuf {
        keel_runtime::ContainerPaths::new(&self.shared.dirs.containers_dir, name).upper
    }

    /// The cgroup of container `name`, where the host has cgroup2.
    pub fn cgroup_dir(&self, name: &str) -> Option<PathBuf> {
        self.shared.dirs.cgroup_root.as_ref().map(|root| root.join("keel").join(name))
    }

    /// Where named volumes live.
    pub fn volumes_dir(&self) -> &std::path::Path {
        &self.shared.dirs.volumes_dir
    }

    /// How many images the store holds (tagged names).
    pub fn image_count(&self) -> usize {
        self.shared.store.list().map(|images| images.len()).unwrap_or(0)
    }

    /// Where the supervisor keeps containers, images and volumes.
    pub fn state_dir(&self) -> &std::path::Path {
        &self.state_dir
    }

    /// `docker kill`: sends `signal` to a running container (see the worker's `Kill`); answers once it is sent.
    pub fn kill(&self, name: &str, signal: i32) -> Result<(), SupervisorError> {
        let entry = self.entry(name)?;
        let (done, sent) = channel();
        self.send(name, &entry, Message::Kill { signal, done })?;
        match sent.recv_timeout(STOP_MARGIN) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(SupervisorError::Refused { name: name.to_owned(), message }),
            Err(_) => Err(SupervisorError::WorkerGone { name: name.to_owned() }),
        }
    }

    /// The declared config of container `name` (what `docker inspect` shows as its Config and HostConfig).
    pub fn config(&self, name: &str) -> Option<ContainerConfig> {
        self.shared.containers.get(name).map(|entry| entry.definition.config.clone())
    }

    /// The containers' and images' events, for `docker events`.
    pub fn events(&self) -> &events::EventLog {
        &self.shared.events
    }

    /// Stops every container, as Docker's daemon does at shutdown: all at once, but a container before those it
    /// depends on, each with its stop signal and timeout, and whatever still runs when `[host] shutdown_timeout`
    /// has passed is killed. Not a manual stop: containers start again with the next supervisor. Readers see them
    /// stopping, then none.
    pub fn shutdown(&self) {
        let mut threads = lock(&self.threads);
        let deadline = Instant::now() + *lock(&self.shutdown_timeout);
        let names = self.shared.containers.snapshot().names();
        self.retire(&names, &mut threads, false, Some(deadline));
        // The containers' last lines into their files before the host unmounts `/var` (bounded: a full or slow
        // disk does not hold the shutdown up).
        if let Some(sink) = &self.shared.log_files {
            if !sink.flush(LOG_SHUTDOWN_FLUSH) {
                log::warn!("container log files: not all lines written within {LOG_SHUTDOWN_FLUSH:?}");
            }
        }
    }
}
