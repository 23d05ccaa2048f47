//! Which handler answers a request: Docker's paths with or without their `/v1.NN` prefix, and keel's own under
//! `/keel/v1/`.

use hyper::{Method, Response, StatusCode};

use super::host::PowerAction;
use super::query;
use super::{containers, disk_usage, error_reply, events, images, keel_config, logs, power, stats, system, top};
use super::{image_inspect, pull, update, ApiRequest, Body, Context};

/// Answers `request`; never fails (errors are replies in Docker's shape).
pub async fn handle(context: &Context, request: ApiRequest) -> Response<Body> {
    let method = request.method().clone();
    let path = without_version(request.uri().path()).to_owned();
    let query = query::parse(request.uri().query());
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (&method, segments.as_slice()) {
        (&Method::GET | &Method::HEAD, ["_ping"]) => system::ping(&method),
        (&Method::GET, ["version"]) => system::version(context),
        (&Method::GET, ["info"]) => system::info(context),
        (&Method::GET, ["containers", "json"]) => containers::list(context, &query),
        (&Method::GET, ["containers", id, "json"]) => containers::inspect(context, id),
        (&Method::GET, ["containers", id, "logs"]) => logs::logs(context, id, &query),
        (&Method::GET, ["containers", id, "top"]) => top::top(context, id, &query),
        (&Method::GET, ["containers", id, "stats"]) => stats::stats(context, id, &query).await,
        (&Method::POST, ["containers", id, "start"]) => containers::start(context, id),
        (&Method::POST, ["containers", id, "stop"]) => containers::stop(context, id, &query).await,
        (&Method::POST, ["containers", id, "restart"]) => containers::restart(context, id, &query).await,
        (&Method::POST, ["containers", id, "kill"]) => containers::kill(context, id, &query).await,
        (&Method::POST, ["containers", id, "wait"]) => containers::wait(context, id, &query).await,
        (&Method::GET, ["events"]) => events::events(context, &query),
        (&Method::GET, ["images", "json"]) => images::list(context),
        (&Method::POST, ["images", "create"]) => pull::create(context, &query),
        // A name may hold slashes (`127.0.0.1:5000/team/app:1`): everything between `images/` and `/json`.
        (&Method::GET, ["images", .., "json"]) if segments.len() > 2 => {
            image_inspect::inspect(context, &segments[1..segments.len() - 1].join("/"))
        }
        (&Method::GET, ["system", "df"]) => disk_usage::df(context).await,
        (&Method::DELETE, ["containers", id]) => containers::remove(context, id),
        (&Method::POST, ["containers", "create"]) => containers::create(request).await,
        (_, ["keel", "v1", "status"]) if method == Method::GET => system::keel_status(context),
        (&Method::GET, ["keel", "v1", "config"]) => keel_config::get(context),
        (&Method::POST, ["keel", "v1", "config"]) => keel_config::validate(request).await,
        (&Method::PUT, ["keel", "v1", "config"]) => keel_config::put(context, request).await,
        (&Method::POST, ["keel", "v1", "reboot"]) => power::power(context, PowerAction::Reboot),
        (&Method::POST, ["keel", "v1", "poweroff"]) => power::power(context, PowerAction::PowerOff),
        (&Method::POST, ["keel", "v1", "update"]) => update::update(context, request, &query).await,
        (&Method::POST, ["keel", "v1", "rollback"]) => update::rollback(context).await,
        _ => error_reply(StatusCode::NOT_FOUND, &format!("page not found: {method} {path}")),
    }
}

/// `path` without a leading `/v1.NN` (Docker clients put the negotiated version there).
fn without_version(path: &str) -> &str {
    let Some(rest) = path.strip_prefix("/v") else { return path };
    let end = rest.find('/').unwrap_or(rest.len());
    let numeric = rest[..end].split_once('.').is_some_and(|(major, minor)| {
        !major.is_empty() && !minor.is_empty() && major.bytes().chain(minor.bytes()).all(|byte| byte.is_ascii_digit())
    });
    if numeric {
        &rest[end..]
    } else {
        path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_the_version_prefix_only() {
        assert_eq!(without_version("/v1.44/containers/json"), "/containers/json");
        assert_eq!(without_version("/containers/json"), "/containers/json");
        assert_eq!(without_version("/v1.44"), "");
        assert_eq!(without_version("/version"), "/version");
        assert_eq!(without_version("/vx.1/version"), "/vx.1/version");
    }
}
