//! `keel supervise`: the container supervisor on an ordinary Linux host (not PID 1), for development and tests.
//!
//! ```text
//! keel supervise --config FILE --state-dir DIR [--api-socket PATH] [--cgroup-root DIR]
//!                [--preloaded-images DIR] [--echo-logs] [--debug]
//! ```
//!
//! It logs and relays as PID 1 does, through the same `LogRouter`: keel's lines on stderr, and with a `[syslog]
//! target` keel's lines (APP-NAME `keel`) and every container's (APP-NAME the container's name, stdout as info,
//! stderr as err) to that receiver; `--echo-logs` shows container lines on stderr too, as `<name> | <line>`.
//!
//! Everything it keeps lives under DIR: `images/`, `layers/`, `containers/<name>/`, `volumes/`, and `config/`, the
//! generations of its config (the `--config` file's at start, then each one `PUT /keel/v1/config` applies; the next
//! start takes the `--config` file again). The API refuses reboot and poweroff (409): the host is not keel's. The main thread
//! does what PID 1's does: it blocks SIGCHLD, SIGTERM and SIGINT, reads them from a signalfd, and is the only
//! caller of `waitpid` (through the reaper). SIGTERM or SIGINT stops every container in reverse dependency order
//! on a helper thread (the main thread keeps reaping meanwhile), then the process exits.
//!
//! One `keel supervise` at a time per state dir, and per cgroup root (its containers go to `<root>/keel/<name>`):
//! each takes an exclusive `flock` on both directories for as long as it runs, and a second one is refused,
//! naming the directory, before it touches anything.
//!
//! Exit codes: 0 stopped by SIGTERM/SIGINT; 1 the config is invalid (every error printed); 100 usage;
//! 111 a system error (the message says which).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use keel_api::server::host::{ConfigSnapshot, HostControl};
use keel_api::server::ApiHooks;
use keel_config::generations::GenerationStore;
use keel_config::UserData;
use keel_logs::error_chain;
use keel_logs::syslog::SyslogRelay;
use keel_runtime::Reaper;
use keel_supervision::{Supervisor, SupervisorOptions};

use crate::host_control::{KeelHost, PowerTarget};
use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

/// How long the syslog relay gets to send what it holds at the end, as under PID 1.
const SYSLOG_FLUSH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

const EXIT_INVALID_CONFIG: u8 = 1;
const EXIT_USAGE: u8 = 100;
const EXIT_SYSTEM: u8 = 111;

const USAGE: &str = "usage: keel supervise --config FILE --state-dir DIR [--api-socket PATH] [--cgroup-root DIR] \
                     [--preloaded-images DIR] [--echo-logs] [--debug]";

/// The parsed command line.
#[derive(Debug, Default, PartialEq)]
struct Arguments {
    config: PathBuf,
    state_dir: PathBuf,
    api_socket: Option<PathBuf>,
    cgroup_root: Option<PathBuf>,
    preloaded_images: Option<PathBuf>,
    echo_logs: bool,
    debug: bool,
}

fn parse_arguments(args: &[String]) -> Result<Arguments, String> {
    let mut parsed = Arguments::default();
    let (mut config, mut state_dir) = (None, None);
    let mut iter = args.iter();
    while let Some(flag) = iter.next() {
        let mut value = |name: &str| iter.next().map(PathBuf::from).ok_or_else(|| format!("{name} needs a value"));
        match flag.as_str() {
            "--config" => config = Some(value(flag)?),
            "--state-dir" => state_dir = Some(value(flag)?),
            "--api-socket" => parsed.api_socket = Some(value(flag)?),
            "--cgroup-root" => parsed.cgroup_root = Some(value(flag)?),
            "--preloaded-images" => parsed.preloaded_images = Some(value(flag)?),
            "--echo-logs" => parsed.echo_logs = true,
            "--debug" => parsed.debug = true,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    parsed.config = config.ok_or("--config is required")?;
    parsed.state_dir = state_dir.ok_or("--state-dir is required")?;
    Ok(parsed)
}

/// Runs `keel supervise` with the arguments after the subcommand.
pub fn main(args: &[String]) -> ExitCode {
    let arguments = match parse_arguments(args) {
        Ok(arguments) => arguments,
        Err(message) => {
            eprintln!("keel supervise: {message}\n{USAGE}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    crate::logger::init(arguments.debug);
    crate::logger::router().set_containers_on_console(arguments.echo_logs);
    let text = match std::fs::read_to_string(&arguments.config) {
        Ok(text) => text,
        Err(error) => {
            eprintln!("keel supervise: reading {}: {}", arguments.config.display(), error_chain(&error));
            return ExitCode::from(EXIT_INVALID_CONFIG);
        }
    };
    let user_data = match UserData::parse(&arguments.config.display().to_string(), &text) {
        Ok(user_data) => user_data,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::from(EXIT_INVALID_CONFIG);
        }
    };
    match run(arguments, &user_data, &text) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            log::error!("{}", error_chain(&error));
            crate::logger::flush_console();
            ExitCode::from(EXIT_SYSTEM)
        }
    }
}

/// What stopped `keel supervise` (exit 111).
#[derive(Debug, thiserror::Error)]
enum SuperviseError {
    #[error("{0}")]
    Signals(&'static str, #[source] nix::Error),
    #[error("becoming a subreaper")]
    Subreaper(#[source] std::io::Error),
    #[error("starting the supervisor")]
    Start(#[source] keel_supervision::SupervisorError),
    #[error("the {what} {} is in use by another keel supervise; give this one its own", path.display())]
    InUse { what: &'static str, path: PathBuf },
    #[error("cannot lock the {what} {}", path.display())]
    Lock {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// An exclusive `flock` on `dir` (created if missing), held until it is dropped; [`SuperviseError::InUse`] when
/// another process holds it.
fn lock_dir(what: &'static str, dir: &Path) -> Result<Flock<std::fs::File>, SuperviseError> {
    let lock_error = |source| SuperviseError::Lock { what, path: dir.to_path_buf(), source };
    std::fs::create_dir_all(dir).map_err(lock_error)?;
    let file = std::fs::File::open(dir).map_err(lock_error)?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(locked) => Ok(locked),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Err(SuperviseError::InUse { what, path: dir.to_path_buf() }),
        Err((_, errno)) => Err(lock_error(std::io::Error::from(errno))),
    }
}

/// What the API reaches of `keel supervise`: its config, kept as generations under `DIR/config` so that a PUT
/// is kept as PID 1 keeps it (the `--config` file itself is the user's and stays as it is); no power actions.
fn supervise_host(state_dir: &Path, config_text: &str) -> Arc<dyn HostControl> {
    let generations = match GenerationStore::open(state_dir.join("config")) {
        Ok(store) => Some(store),
        Err(error) => {
            log::error!("config generations: {}; the API cannot change the config", error_chain(&error));
            None
        }
    };
    let generation = match generations.as_ref().map(|store| store.accept(config_text)) {
        Some(Ok(generation)) => generation.number,
        Some(Err(error)) => {
            log::error!("config generations: {}", error_chain(&error));
            0
        }
        None => 0,
    };
    let current = ConfigSnapshot { text: config_text.to_owned(), generation, rejected: Vec::new() };
    Arc::new(KeelHost::new(generations, current, PowerTarget::Refuse))
}

fn run(arguments: Arguments, user_data: &UserData, config_text: &str) -> Result<(), SuperviseError> {
    // Before any thread starts, so that every thread inherits the mask and these signals queue for the signalfd.
    let mut mask = SigSet::empty();
    for signal in [Signal::SIGCHLD, Signal::SIGTERM, Signal::SIGINT] {
        mask.add(signal);
    }
    mask.thread_block().map_err(|error| SuperviseError::Signals("blocking signals", error))?;
    let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC)
        .map_err(|error| SuperviseError::Signals("opening a signalfd", error))?;
    // Orphans of containers' helpers come back to us (and the reaper), not to the host's init.
    keel_runtime::become_subreaper().map_err(SuperviseError::Subreaper)?;

    let router = crate::logger::router();
    // After the signals are blocked: the relay's thread inherits the mask, as under PID 1.
    let hostname = match &user_data.host.hostname {
        Some(name) => name.clone(),
        None => nix::unistd::gethostname().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default(),
    };
    match SyslogRelay::start(&user_data.syslog, hostname) {
        Ok(relay) => {
            router.replace_relay(relay);
        }
        Err(error) => log::error!("syslog relay: {}", error_chain(&error)),
    }
    for warning in &user_data.warnings {
        log::warn!("{warning}");
    }

    let state_dir = arguments.state_dir;
    let api_socket = arguments.api_socket.unwrap_or_else(|| state_dir.join("keel.sock"));
    let mut options = SupervisorOptions::new(&state_dir);
    options.cgroup_root = arguments.cgroup_root.or_else(keel_runtime::cgroup::detect_mount);
    // Held until the process exits: two supervisors on one directory would stop, remove and recreate each other's
    // containers and cgroups.
    let _state_lock = lock_dir("state dir", &state_dir)?;
    let _cgroup_lock = match options.cgroup_root.as_ref().map(|root| lock_dir("cgroup root", &root.join("keel"))) {
        Some(Ok(lock)) => Some(lock),
        Some(Err(error @ SuperviseError::InUse { .. })) => return Err(error),
        // The supervisor says what it cannot do in a cgroup root it cannot write, container by container.
        Some(Err(error)) => {
            log::warn!("{}", error_chain(&error));
            None
        }
        None => None,
    };
    options.preloaded_images = arguments.preloaded_images;
    options.log_sinks.push(router.clone());
    match &options.cgroup_root {
        Some(root) => log::info!("containers go under {}/keel", root.display()),
        None => {
            log::warn!("no cgroup2 mount found; only privileged containers can run (the device filter needs a cgroup)")
        }
    }
    let reaper = Arc::new(Reaper::new());
    let handle = Arc::new(Supervisor::start(options, Arc::clone(&reaper), user_data).map_err(SuperviseError::Start)?);
    let hooks = ApiHooks { host: Some(supervise_host(&state_dir, config_text)), update: None };
    let api = crate::api::start(&api_socket, &user_data.api, Arc::clone(&handle), hooks);
    loop {
        let info = match signals.read_signal() {
            Ok(Some(info)) => info,
            Ok(None) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(error) => return Err(SuperviseError::Signals("reading the signalfd", error)),
        };
        match Signal::try_from(info.ssi_signo as i32) {
            Ok(Signal::SIGCHLD) => {
                reaper.reap_all();
            }
            Ok(Signal::SIGTERM | Signal::SIGINT) => {
                // No request may start what the shutdown stops.
                if let Some(api) = api {
                    api.stop();
                }
                log::info!("stopping every container");
                // Stopping waits for exits, which only this thread collects.
                reaper.reap_while("shutdown", move || handle.shutdown());
                log::info!("every container stopped");
                if !router.flush_relay(SYSLOG_FLUSH_TIMEOUT) {
                    log::warn!("syslog relay: not everything was sent within {SYSLOG_FLUSH_TIMEOUT:?}");
                }
                return Ok(());
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
    fn parses_the_documented_flags() {
        let parsed = parse_arguments(&args("--config c.toml --state-dir /s --api-socket /a.sock --echo-logs")).unwrap();
        assert_eq!(parsed.config, PathBuf::from("c.toml"));
        assert_eq!(parsed.state_dir, PathBuf::from("/s"));
        assert_eq!(parsed.api_socket, Some(PathBuf::from("/a.sock")));
        assert!(parsed.echo_logs);
        assert!(parse_arguments(&args("--state-dir /s")).is_err());
        assert!(parse_arguments(&args("--config c --state-dir")).is_err());
        assert!(parse_arguments(&args("--config c --state-dir /s --bogus")).is_err());
    }
}
