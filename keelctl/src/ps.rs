//! `keelctl ps [-a]`: the containers (`GET /containers/json`) in `docker ps`'s columns.

use keel_api::docker::ContainerSummary;

use crate::client::Client;
use crate::output;
use crate::CommandError;

#[derive(clap::Args)]
pub struct PsArgs {
    /// All containers, also those not running.
    #[arg(short, long)]
    all: bool,
}

pub fn run(client: &Client, args: &PsArgs, json: bool) -> Result<(), CommandError> {
    let path = if args.all { "/containers/json?all=1" } else { "/containers/json" };
    let value: serde_json::Value = client.get_json(path)?;
    if json {
        return Ok(output::json_line(&value)?);
    }
    let containers: Vec<ContainerSummary> = serde_json::from_value(value)
        .map_err(|source| crate::client::ClientError::BadJson { what: format!("GET {path}"), source })?;
    let rows: Vec<Vec<String>> = containers
        .iter()
        .map(|container| {
            let names: Vec<&str> = container.names.iter().map(|name| name.trim_start_matches('/')).collect();
            vec![
                container.id.chars().take(12).collect(),
                container.image.clone(),
                format!("\"{}\"", output::truncate(&container.command, 20)),
                output::ago(container.created),
                container.status.clone(),
                names.join(","),
            ]
        })
        .collect();
    let headers = ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "NAMES"];
    Ok(output::print(&output::table(&headers, &rows))?)
}
