//! `keelctl validate FILE`: parses a user-data file as PID 1 would and prints a summary or every error.

use std::path::PathBuf;

use keel_config::UserData;

use crate::output;
use crate::CommandError;

#[derive(clap::Args)]
pub struct ValidateArgs {
    /// The user-data file (TOML); `-` reads standard input.
    file: PathBuf,
}

pub fn run(args: &ValidateArgs, json: bool) -> Result<(), CommandError> {
    let name = args.file.display().to_string();
    let read =
        if name == "-" { std::io::read_to_string(std::io::stdin()) } else { std::fs::read_to_string(&args.file) };
    let text = read.map_err(|source| CommandError::ReadFile { path: name.clone(), source })?;
    match UserData::parse(&name, &text) {
        Ok(user_data) => {
            if json {
                let warnings: Vec<String> = user_data.warnings.iter().map(ToString::to_string).collect();
                let value = serde_json::json!({
                    "file": name, "valid": true, "warnings": warnings, "containers": user_data.container_order,
                });
                return Ok(output::json_line(&value)?);
            }
            for warning in &user_data.warnings {
                eprintln!("warning: {warning}");
            }
            Ok(output::print(&format!("{name}: ok{}\n", summary(&user_data)))?)
        }
        Err(errors) => {
            if json {
                let list: Vec<serde_json::Value> = errors
                    .iter()
                    .map(|error| {
                        let message = if error.path.is_empty() {
                            error.message.clone()
                        } else {
                            format!("{}: {}", error.path, error.message)
                        };
                        serde_json::json!({"line": error.line, "column": error.column, "message": message})
                    })
                    .collect();
                output::json_line(&serde_json::json!({"file": name, "valid": false, "errors": list}))?;
            } else {
                eprintln!("{errors}");
            }
            Err(CommandError::InvalidConfig { file: name, count: errors.len() })
        }
    }
}

/// ` (hostname web-1; network: 2 interfaces; containers: db, web)`, or nothing for an empty file.
fn summary(user_data: &UserData) -> String {
    let mut parts = Vec::new();
    if let Some(hostname) = &user_data.host.hostname {
        parts.push(format!("hostname {hostname}"));
    }
    match user_data.network.interfaces.len() {
        0 => parts.push("network: DHCP on every ethernet link".to_owned()),
        1 => parts.push("network: 1 interface".to_owned()),
        count => parts.push(format!("network: {count} interfaces")),
    }
    if !user_data.container_order.is_empty() {
        parts.push(format!("containers: {}", user_data.container_order.join(", ")));
    }
    format!(" ({})", parts.join("; "))
}
