//! `keel run`: one fresh container from an image in the store, run to its exit and removed, like
//! `docker run --rm` without a terminal.
//!
//! ```text
//! keel run [--state-dir DIR] [--cgroup-root DIR] [--name NAME] [--network host|none] [--read-only] [--init]
//!          IMAGE [COMMAND [ARG...]]
//! ```
//!
//! The image must be in the store under DIR (`images/`, its layers unpacked in `layers/`; default
//! `/var/lib/keel`, PID 1's). The container (`containers/<NAME>/`, cgroup `<cgroup root>/keel/<NAME>`, default
//! name `run-<pid>`) is created with the same runtime `keel supervise` uses, writes straight to this process's
//! stdout and stderr, and is removed when it exits: its overlay lives in its own mount namespace and goes with
//! it, its directory and cgroup are deleted. SIGINT and SIGTERM are passed on to the container's PID 1.
//!
//! Exit codes, as `docker run`'s: the container's (128 + N when signal N killed it); 125 `keel run` itself
//! failed (usage, image missing, a setup step); 126 the command cannot be executed; 127 it was not found.

use std::io;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc::TryRecvError;

use keel_config::containers::mounts::is_docker_name;
use keel_config::containers::process::CommandLine;
use keel_config::{ContainerConfig, NetworkMode};
use keel_images::{ImageReference, ImageStore, StoreError};
use keel_logs::error_chain;
use keel_runtime::{kill_container, remove_container, Container, CreateError, RemoveError, RuntimeDirs, StartError};
use keel_runtime::{ExitStatus, Reaper};
use keel_supervision::{image_run_config, ImageConfigError};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

/// `docker run`'s status for a failure of its own, before or after the container ran.
const EXIT_RUN_FAILED: u8 = 125;
/// PID 1's state directory: `keel run` on a keel host finds the images the host pulled.
const DEFAULT_STATE_DIR: &str = "/var/lib/keel";

const USAGE: &str = "usage: keel run [--state-dir DIR] [--cgroup-root DIR] [--name NAME] [--network host|none] \
                     [--read-only] [--init] IMAGE [COMMAND [ARG...]]";

/// The parsed command line.
#[derive(Debug, PartialEq)]
struct Arguments {
    state_dir: PathBuf,
    cgroup_root: Option<PathBuf>,
    name: Option<String>,
    network: NetworkMode,
    read_only: bool,
    init: bool,
    image: String,
    /// Empty: the image's command.
    command: Vec<String>,
}

/// Flags come before IMAGE; everything after IMAGE is the container's command, flags included.
fn parse_arguments(args: &[String]) -> Result<Arguments, String> {
    let mut state_dir = PathBuf::from(DEFAULT_STATE_DIR);
    let (mut cgroup_root, mut name, mut network, mut read_only, mut init) =
        (None, None, NetworkMode::Host, false, false);
    let mut iter = args.iter();
    let image = loop {
        let Some(flag) = iter.next() else { return Err("IMAGE is required".into()) };
        let mut value = |name: &str| iter.next().cloned().ok_or_else(|| format!("{name} needs a value"));
        match flag.as_str() {
            "--state-dir" => state_dir = PathBuf::from(value(flag)?),
            "--cgroup-root" => cgroup_root = Some(PathBuf::from(value(flag)?)),
            "--name" => {
                let given = value(flag)?;
                if !is_docker_name(&given) {
                    return Err(format!("{given:?} is not a container name; names are [a-zA-Z0-9][a-zA-Z0-9_.-]*"));
                }
                name = Some(given);
            }
            "--network" => {
                network = match value(flag)?.as_str() {
                    "host" => NetworkMode::Host,
                    "none" => NetworkMode::None,
                    other => return Err(format!("--network {other:?}: expected host or none")),
                }
            }
            "--read-only" => read_only = true,
            "--init" => init = true,
            other if other.starts_with('-') => return Err(format!("unknown argument {other:?}")),
            image => break image.to_owned(),
        }
    };
    Ok(Arguments { state_dir, cgroup_root, name, network, read_only, init, image, command: iter.cloned().collect() })
}

/// What stopped `keel run` from running the container to its end.
#[derive(Debug, thiserror::Error)]
enum RunError {
    #[error("{0:?} is not an image reference")]
    Reference(String),
    #[error("opening the image store")]
    Store(#[source] StoreError),
    #[error("image {0} is not in the store with its layers unpacked (pull it first)")]
    NotInStore(String),
    #[error("reading the image")]
    Image(#[source] StoreError),
    #[error(transparent)]
    ImageConfig(#[from] ImageConfigError),
    #[error("container {0} exists already")]
    Exists(String),
    #[error("container {name}'s cgroup {} holds running processes (a supervised container of that name?)", path.display())]
    CgroupInUse { name: String, path: PathBuf },
    #[error("{0}")]
    Signals(&'static str, #[source] nix::Error),
    #[error("becoming a subreaper")]
    Subreaper(#[source] io::Error),
    #[error(transparent)]
    Create(#[from] CreateError),
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("the container's exit was lost")]
    ExitLost,
    #[error(transparent)]
    Remove(#[from] RemoveError),
}

impl RunError {
    fn exit_code(&self) -> u8 {
        match self {
            RunError::Start(error) => u8::try_from(error.exit_code()).unwrap_or(EXIT_RUN_FAILED),
            _ => EXIT_RUN_FAILED,
        }
    }
}

/// Runs `keel run` with the arguments after the subcommand.
pub fn main(args: &[String]) -> ExitCode {
    let arguments = match parse_arguments(args) {
        Ok(arguments) => arguments,
        Err(message) => {
            eprintln!("keel run: {message}\n{USAGE}");
            return ExitCode::from(EXIT_RUN_FAILED);
        }
    };
    match run(arguments) {
        Ok(status) => ExitCode::from(u8::try_from(status.code()).unwrap_or(EXIT_RUN_FAILED)),
        Err(error) => {
            eprintln!("keel run: {}", error_chain(&error));
            ExitCode::from(error.exit_code())
        }
    }
}

fn run(arguments: Arguments) -> Result<ExitStatus, RunError> {
    // Before anything is cloned: the container's exit and our SIGINT/SIGTERM arrive through the signalfd.
    let mut mask = SigSet::empty();
    for signal in [Signal::SIGCHLD, Signal::SIGTERM, Signal::SIGINT] {
        mask.add(signal);
    }
    mask.thread_block().map_err(|error| RunError::Signals("blocking signals", error))?;
    let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC)
        .map_err(|error| RunError::Signals("opening a signalfd", error))?;
    keel_runtime::become_subreaper().map_err(RunError::Subreaper)?;

    let reference: ImageReference =
        arguments.image.parse().map_err(|_| RunError::Reference(arguments.image.clone()))?;
    let state_dir = &arguments.state_dir;
    let store = ImageStore::open(&state_dir.join("images"), &state_dir.join("layers")).map_err(RunError::Store)?;
    if !store.is_complete(&reference) {
        return Err(RunError::NotInStore(reference.to_string()));
    }
    let image = store.image(&reference).map_err(RunError::Image)?;
    let image_config = image_run_config(&store, &image)?;
    let dirs = RuntimeDirs {
        layers_root: state_dir.join("layers"),
        containers_dir: state_dir.join("containers"),
        volumes_dir: state_dir.join("volumes"),
        cgroup_root: arguments.cgroup_root.clone().or_else(keel_runtime::cgroup::detect_mount),
        container_init: keel_runtime::container_init::beside_current_exe(),
        host_etc: PathBuf::from("/etc"),
    };
    let name = arguments.name.clone().unwrap_or_else(|| format!("run-{}", std::process::id()));
    // A supervised container of that name may be running: its directory is not ours to reuse or remove, and its
    // cgroup (a supervisor with another state dir on the same cgroup root) not ours to join or empty.
    if dirs.containers_dir.join(&name).exists() {
        return Err(RunError::Exists(name));
    }
    if let Some(root) = dirs.cgroup_root.as_deref().filter(|root| keel_runtime::cgroup::is_populated(root, &name)) {
        let path = root.join("keel").join(&name);
        return Err(RunError::CgroupInUse { name, path });
    }
    let config = container_config(&arguments);
    let reaper = Reaper::new();
    let outcome = Container::create(&name, &config, &image.layer_dirs, &image_config, &dirs)
        .map_err(RunError::from)
        .and_then(|container| run_to_exit(&container, &reaper, &signals));
    // A child that failed before exec may still be a zombie: collect it, then the cgroup is empty.
    reaper.reap_all();
    let removed = remove_container(&dirs.containers_dir, &name, dirs.cgroup_root.as_deref());
    let status = outcome?;
    removed?;
    Ok(status)
}

/// `docker run`'s defaults, with what the command line set.
fn container_config(arguments: &Arguments) -> ContainerConfig {
    ContainerConfig {
        image: arguments.image.clone(),
        entrypoint: None,
        command: (!arguments.command.is_empty()).then(|| CommandLine::Exec(arguments.command.clone())),
        env: Vec::new(),
        workdir: None,
        user: None,
        hostname: None,
        restart: Default::default(),
        resources: Default::default(),
        network: arguments.network,
        volumes: Vec::new(),
        tmpfs: Vec::new(),
        read_only: arguments.read_only,
        cap_add: Vec::new(),
        cap_drop: Vec::new(),
        privileged: false,
        no_new_privileges: false,
        seccomp: Default::default(),
        devices: Vec::new(),
        labels: Default::default(),
        depends_on: Vec::new(),
        dependency_conditions: Default::default(),
        healthcheck: None,
        stop_signal: None,
        stop_timeout: 10,
        init: arguments.init,
        required: false,
        log_max_size: None,
        log_max_files: None,
        // `keel run` removes the container when it exits: nothing is kept to match a definition against.
        definition_digest: String::new(),
    }
}

/// Starts the container on this process's stdout and stderr and reaps until its PID 1 has exited.
fn run_to_exit(container: &Container, reaper: &Reaper, signals: &SignalFd) -> Result<ExitStatus, RunError> {
    let (process, exit) = container.start_attached(reaper, io::stdout().as_fd(), io::stderr().as_fd())?;
    loop {
        match exit.try_recv() {
            Ok(status) => return Ok(status),
            Err(TryRecvError::Disconnected) => return Err(RunError::ExitLost),
            Err(TryRecvError::Empty) => {}
        }
        let info = match signals.read_signal() {
            Ok(Some(info)) => info,
            Ok(None) | Err(nix::errno::Errno::EINTR) => continue,
            Err(error) => return Err(RunError::Signals("reading the signalfd", error)),
        };
        match Signal::try_from(info.ssi_signo as i32) {
            Ok(Signal::SIGCHLD) => {
                reaper.reap_all();
            }
            Ok(signal @ (Signal::SIGTERM | Signal::SIGINT)) => {
                // As `docker run` does: the container decides what the signal means (PID 1 of its namespace
                // ignores it without a handler).
                if let Err(error) = kill_container(&container.name, &process, signal as i32) {
                    eprintln!("keel run: {}", error_chain(&error));
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn flags_before_the_image_command_after_it() {
        let parsed =
            parse_arguments(&args("--state-dir /s --network none --read-only --name t1 busybox sh -c --read-only"))
                .unwrap();
        assert_eq!(parsed.state_dir, PathBuf::from("/s"));
        assert_eq!(parsed.network, NetworkMode::None);
        assert!(parsed.read_only);
        assert_eq!(parsed.name.as_deref(), Some("t1"));
        assert_eq!(parsed.image, "busybox");
        assert_eq!(parsed.command, ["sh", "-c", "--read-only"]);
        let defaults = parse_arguments(&args("busybox")).unwrap();
        assert_eq!(defaults.state_dir, PathBuf::from(DEFAULT_STATE_DIR));
        assert_eq!(defaults.network, NetworkMode::Host);
        assert!(defaults.command.is_empty());
    }

    #[test]
    fn refuses_bad_usage() {
        assert!(parse_arguments(&args("")).is_err());
        assert!(parse_arguments(&args("--network bridge busybox")).is_err());
        assert!(parse_arguments(&args("--name ../x busybox")).is_err());
        assert!(parse_arguments(&args("--bogus busybox")).is_err());
        assert!(parse_arguments(&args("--state-dir")).is_err());
    }
}
