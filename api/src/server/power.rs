//! `POST /keel/v1/reboot` and `/keel/v1/poweroff`: 202 `{"message": "rebooting"}`, then the host goes down through
//! PID 1's one shutdown path; 409 where there is no host to take down (`keel supervise`).

use std::time::Duration;

use hyper::{Response, StatusCode};
use serde_json::json;

use super::host::{HostControlError, PowerAction};
use super::{error_reply, json, Body, Context};

/// How long the host waits before it acts, so that the 202 reaches the client before the shutdown closes the API.
const REPLY_GRACE: Duration = Duration::from_millis(300);

pub fn power(context: &Context, action: PowerAction) -> Response<Body> {
    let Some(host) = &context.hooks.host else {
        return error_reply(StatusCode::CONFLICT, "this API has no host to reboot or power off");
    };
    match host.power(action, REPLY_GRACE) {
        Ok(()) => {
            let message = match action {
                PowerAction::Reboot => "rebooting",
                PowerAction::PowerOff => "powering off",
            };
            log::info!("API: {message}, as a client asked");
            json(StatusCode::ACCEPTED, &json!({ "message": message }))
        }
        Err(HostControlError::Refused(message)) => error_reply(StatusCode::CONFLICT, &message),
        Err(error) => error_reply(StatusCode::INTERNAL_SERVER_ERROR, &keel_logs::error_chain(&error)),
    }
}
