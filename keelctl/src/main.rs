//! `keelctl`: keel's command-line client; this file reads the command line, runs the subcommand and maps its
//! outcome to an exit code.
//!
//! # Usage
//! ```text
//! keelctl [--host unix:///run/keel.sock | tcp://HOST:PORT] [--json] COMMAND
//!   status                      the host: version, slot, boot, uptime, config generation, syslog, update
//!   ps [-a]                     containers (running ones; -a all)
//!   logs [-f] [--tail N] [-t] NAME
//!   inspect NAME                one container in detail
//!   start NAME…  stop [-t SECS] NAME…  restart [-t SECS] NAME…  kill [-s SIGNAL] NAME…
//!   events [--since T] [--until T]
//!   images  |  pull IMAGE       the image store; pull shows a progress bar on a terminal
//!   validate FILE               check a user-data file offline, with the same parser PID 1 uses
//!   apply FILE                  validate on the host, store as a new generation and reconcile
//!   reboot  |  poweroff
//!   update FILE|URL [--reboot]  install an update bundle into the inactive slot, showing its progress
//!   rollback                    boot the other slot's good entry (reboots)
//! ```
//! `--host` defaults to `KEEL_HOST`, else PID 1's socket. `--json` prints the server's JSON: one document, or one
//! line per item of a stream (logs, events, pull).
//!
//! # Exit codes
//! | Code | Meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | the server said no (its message is printed), or a local file could not be read |
//! | 2 | usage error: bad command line |
//! | 3 | the host cannot be reached at the address given (`--host`, `KEEL_HOST`) |
//! | 4 | `validate`, `apply`: the user-data is invalid; every error is printed with its line and column |

mod apply;
mod client;
mod events;
mod images;
mod inspect;
mod lifecycle;
mod logs;
mod output;
mod power;
mod ps;
mod pull;
mod status;
mod time;
mod update;
mod validate;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use client::{Client, ClientError, Host};

#[derive(Parser)]
#[command(name = "keelctl", version, about = "keel's command-line client")]
struct Cli {
    /// The API: unix:///PATH or tcp://HOST:PORT.
    #[arg(long, global = true, env = "KEEL_HOST", default_value = client::DEFAULT_HOST)]
    host: Host,
    /// Print the server's JSON (JSON lines for streams) instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The host: version, slot, boot state, uptime, config generation and errors, syslog relay, update.
    Status,
    /// List containers (running ones; -a for all).
    Ps(ps::PsArgs),
    /// A container's output (stdout to stdout, stderr to stderr).
    Logs(logs::LogsArgs),
    /// One container in detail.
    Inspect(inspect::InspectArgs),
    /// Start stopped containers.
    Start(lifecycle::StartArgs),
    /// Stop containers: the stop signal, then SIGKILL after the timeout.
    Stop(lifecycle::StopArgs),
    /// Restart containers.
    Restart(lifecycle::StopArgs),
    /// Send a signal to containers.
    Kill(lifecycle::KillArgs),
    /// The host's events as they happen (or those of a time window).
    Events(events::EventsArgs),
    /// The images in the store.
    Images,
    /// Pull an image into the store.
    Pull(pull::PullArgs),
    /// Check a user-data file offline: prints `FILE: ok` and a summary, or every error.
    Validate(validate::ValidateArgs),
    /// Send a user-data file to the host: validated, stored as a new generation and applied without a reboot.
    Apply(apply::ApplyArgs),
    /// Reboot the host.
    Reboot,
    /// Power the host off.
    Poweroff,
    /// Install an update bundle (an http(s) URL or a file on the host) into the inactive slot.
    Update(update::UpdateArgs),
    /// Make the other slot's good entry boot next, and reboot into it.
    Rollback,
}

/// The documented exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Success = 0,
    Failed = 1,
    Usage = 2,
    Unreachable = 3,
    InvalidConfig = 4,
}

/// Why a command did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("cannot read {path}")]
    ReadFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the output")]
    Write(#[from] std::io::Error),
    /// The user-data was invalid; its errors are printed already.
    #[error("{file}: {count} error{}", if *count == 1 { "" } else { "s" })]
    InvalidConfig { file: String, count: usize },
    /// The server reported a failure inside a stream (a pull's error), or some of several names failed.
    #[error("{0}")]
    Failed(String),
}

impl CommandError {
    fn exit(&self) -> Exit {
        match self {
            CommandError::Client(error) if error.is_unreachable() => Exit::Unreachable,
            CommandError::InvalidConfig { .. } => Exit::InvalidConfig,
            _ => Exit::Failed,
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let usage = error.use_stderr();
            let _ = error.print();
            return ExitCode::from(if usage { Exit::Usage as u8 } else { Exit::Success as u8 });
        }
    };
    let exit = match run(&cli) {
        Ok(()) => Exit::Success,
        Err(CommandError::Write(error)) if error.kind() == std::io::ErrorKind::BrokenPipe => Exit::Success,
        Err(error) => {
            eprintln!("keelctl: {}", error_chain(&error));
            if let CommandError::Client(client_error) = &error {
                if client_error.is_unreachable() {
                    eprintln!("keelctl: is keel running there? Name its API with --host unix:///PATH or --host tcp://HOST:PORT, or set KEEL_HOST");
                }
            }
            error.exit()
        }
    };
    ExitCode::from(exit as u8)
}

fn run(cli: &Cli) -> Result<(), CommandError> {
    let json = cli.json;
    if let Command::Validate(args) = &cli.command {
        return validate::run(args, json);
    }
    let client = Client::new(cli.host.clone())?;
    match &cli.command {
        Command::Status => status::run(&client, json),
        Command::Ps(args) => ps::run(&client, args, json),
        Command::Logs(args) => logs::run(&client, args, json),
        Command::Inspect(args) => inspect::run(&client, args, json),
        Command::Start(args) => lifecycle::start(&client, args, json),
        Command::Stop(args) => lifecycle::stop(&client, args, json),
        Command::Restart(args) => lifecycle::restart(&client, args, json),
        Command::Kill(args) => lifecycle::kill(&client, args, json),
        Command::Events(args) => events::run(&client, args, json),
        Command::Images => images::run(&client, json),
        Command::Pull(args) => pull::run(&client, args, json),
        Command::Validate(_) => Ok(()),
        Command::Apply(args) => apply::run(&client, args, json),
        Command::Reboot => power::run(&client, power::Action::Reboot, json),
        Command::Poweroff => power::run(&client, power::Action::Poweroff, json),
        Command::Update(args) => update::update(&client, args, json),
        Command::Rollback => update::rollback(&client, json),
    }
}

/// `error: cause: its cause`, as keel's logs print error chains.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
