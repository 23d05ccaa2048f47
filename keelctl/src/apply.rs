//! `keelctl apply FILE`: sends a user-data file to the host (`PUT /keel/v1/config`), which validates it, stores
//! it as a new generation and reconciles without a reboot; prints what changed, or every error with its line and
//! column.

use std::path::PathBuf;

use hyper::{Method, StatusCode};
use serde_json::Value;

use crate::client::{refusal, Client};
use crate::output;
use crate::status::text;
use crate::CommandError;

/// How long the host may take to answer: it reconciles before it replies, and a changed container is stopped
/// within its stop timeout.
const APPLY_WAIT: std::time::Duration = std::time::Duration::from_secs(300);

#[derive(clap::Args)]
pub struct ApplyArgs {
    /// The user-data file (TOML); `-` reads standard input.
    file: PathBuf,
}

pub fn run(client: &Client, args: &ApplyArgs, json: bool) -> Result<(), CommandError> {
    let name = args.file.display().to_string();
    let text_read =
        if name == "-" { std::io::read_to_string(std::io::stdin()) } else { std::fs::read_to_string(&args.file) };
    let body = text_read.map_err(|source| CommandError::ReadFile { path: name.clone(), source })?;
    let reply = client.send(Method::PUT, "/keel/v1/config", Some(("text/plain", body.into_bytes())), APPLY_WAIT)?;
    if reply.status == StatusCode::BAD_REQUEST {
        let value: Value = reply.json("PUT /keel/v1/config")?;
        let errors = value["errors"].as_array().cloned().unwrap_or_default();
        if json {
            output::json_line(&value)?;
        } else {
            for error in &errors {
                eprintln!("{name}:{}:{}: {}", text(&error["line"]), text(&error["column"]), text(&error["message"]));
            }
            if errors.is_empty() {
                eprintln!("{name}: {}", text(&value["message"]));
            }
        }
        return Err(CommandError::InvalidConfig { file: name, count: errors.len().max(1) });
    }
    if !reply.status.is_success() {
        return Err(refusal(reply.status, &reply.body).into());
    }
    let value: Value = reply.json("PUT /keel/v1/config")?;
    if json {
        return Ok(output::json_line(&value)?);
    }
    let changed: Vec<String> = value["changed"].as_array().into_iter().flatten().map(text).collect();
    let what =
        if changed.is_empty() { "no container changed".to_owned() } else { format!("changed: {}", changed.join(", ")) };
    Ok(output::print(&format!("{name}: applied as generation {}; {what}\n", text(&value["generation"])))?)
}
