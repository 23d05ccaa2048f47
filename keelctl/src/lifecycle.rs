//! `keelctl start|stop|restart|kill NAME…`: one request per container, its name printed when done (as `docker
//! stop` does), each failure reported and the others still tried.

use std::time::Duration;

use hyper::{Method, StatusCode};

use crate::client::{path_escape, query_escape, Client, ClientError, READ_TIMEOUT};
use crate::output;
use crate::CommandError;

/// How long a stop without `-t` may take: the container's own stop timeout applies, which the client does not
/// know (at most a day); an hour bounds the wait for a server that never answers.
const STOP_WAIT_WITHOUT_TIMEOUT: Duration = Duration::from_secs(3600);

#[derive(clap::Args)]
pub struct StartArgs {
    /// Containers: names, ids or unique id prefixes.
    #[arg(required = true)]
    names: Vec<String>,
}

#[derive(clap::Args)]
pub struct StopArgs {
    /// Seconds to wait after the stop signal before SIGKILL (default: the container's `stop_timeout`).
    #[arg(short = 't', long = "time")]
    time: Option<u32>,
    #[arg(required = true)]
    names: Vec<String>,
}

#[derive(clap::Args)]
pub struct KillArgs {
    /// The signal: a name (`SIGHUP`, `HUP`) or a number.
    #[arg(short, long, default_value = "SIGKILL")]
    signal: String,
    #[arg(required = true)]
    names: Vec<String>,
}

pub fn start(client: &Client, args: &StartArgs, json: bool) -> Result<(), CommandError> {
    each(&args.names, json, "start", |name| {
        client.checked(Method::POST, &format!("/containers/{}/start", path_escape(name)), None, READ_TIMEOUT)
    })
}

pub fn stop(client: &Client, args: &StopArgs, json: bool) -> Result<(), CommandError> {
    stop_or_restart(client, args, json, "stop")
}

pub fn restart(client: &Client, args: &StopArgs, json: bool) -> Result<(), CommandError> {
    stop_or_restart(client, args, json, "restart")
}

fn stop_or_restart(client: &Client, args: &StopArgs, json: bool, action: &str) -> Result<(), CommandError> {
    let query = args.time.map_or(String::new(), |seconds| format!("?t={seconds}"));
    // The reply comes once the container stopped: allow its stop timeout on top of the usual wait.
    let wait =
        READ_TIMEOUT + args.time.map_or(STOP_WAIT_WITHOUT_TIMEOUT, |seconds| Duration::from_secs(seconds.into()));
    each(&args.names, json, action, |name| {
        client.checked(Method::POST, &format!("/containers/{}/{action}{query}", path_escape(name)), None, wait)
    })
}

pub fn kill(client: &Client, args: &KillArgs, json: bool) -> Result<(), CommandError> {
    let signal = query_escape(&args.signal);
    each(&args.names, json, "kill", |name| {
        client.checked(
            Method::POST,
            &format!("/containers/{}/kill?signal={signal}", path_escape(name)),
            None,
            READ_TIMEOUT,
        )
    })
}

/// Runs `request` for each name: prints the name (or a JSON line) on success, the error on stderr otherwise.
/// With one name its error is the command's (so that an unreachable host exits 3).
fn each(
    names: &[String],
    json: bool,
    action: &str,
    request: impl Fn(&str) -> Result<crate::client::Reply, ClientError>,
) -> Result<(), CommandError> {
    let mut failed = 0;
    for name in names {
        match request(name) {
            Ok(reply) => {
                // 304: already in the state asked for, which Docker's CLI reports as success too.
                let changed = reply.status != StatusCode::NOT_MODIFIED;
                if json {
                    output::json_line(&serde_json::json!({"name": name, "action": action, "changed": changed}))?;
                } else {
                    output::print(&format!("{name}\n"))?;
                }
            }
            Err(error) if names.len() == 1 => return Err(error.into()),
            Err(error) if error.is_unreachable() => return Err(error.into()),
            Err(error) => {
                eprintln!("keelctl: {action} {name}: {error}");
                failed += 1;
            }
        }
    }
    match failed {
        0 => Ok(()),
        _ => Err(CommandError::Failed(format!("{action}: {failed} of {} containers failed", names.len()))),
    }
}
