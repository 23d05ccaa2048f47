//! `keelctl reboot|poweroff`: asks PID 1 to take the host down through its one shutdown path.

use hyper::Method;
use serde_json::Value;

use crate::client::{Client, READ_TIMEOUT};
use crate::output;
use crate::status::text;
use crate::CommandError;

#[derive(Debug, Clone, Copy)]
pub enum Action {
    Reboot,
    Poweroff,
}

pub fn run(client: &Client, action: Action, json: bool) -> Result<(), CommandError> {
    let path = match action {
        Action::Reboot => "/keel/v1/reboot",
        Action::Poweroff => "/keel/v1/poweroff",
    };
    let reply = client.checked(Method::POST, path, None, READ_TIMEOUT)?;
    let value: Value = reply.json(&format!("POST {path}"))?;
    if json {
        return Ok(output::json_line(&value)?);
    }
    Ok(output::print(&format!("{}: {}\n", client.host(), text(&value["message"])))?)
}
