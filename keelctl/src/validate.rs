//! `keelctl validate FILE`: parses a user-data file as PID 1 would and prints a summary or every error.

use std::path::PathBuf;

use keel_config::UserData;

use crate::Exit;

#[derive(clap::Args)]
pub struct ValidateArgs {
    /// The user-data file (TOML); `-` reads standard input.
    file: PathBuf,
}

pub fn run(args: &ValidateArgs) -> Exit {
    let name = args.file.display().to_string();
    let read =
        if name == "-" { std::io::read_to_string(std::io::stdin()) } else { std::fs::read_to_string(&args.file) };
    let text = match read {
        Ok(text) => text,
        Err(error) => {
            eprintln!("keelctl: cannot read {name}: {error}");
            return Exit::System;
        }
    };
    match UserData::parse(&name, &text) {
        Ok(user_data) => {
            for warning in &user_data.warnings {
                eprintln!("warning: {warning}");
            }
            println!("{name}: ok{}", summary(&user_data));
            Exit::Success
        }
        Err(errors) => {
            eprintln!("{errors}");
            let count = errors.len();
            eprintln!("{name}: {count} error{}", if count == 1 { "" } else { "s" });
            Exit::Invalid
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
