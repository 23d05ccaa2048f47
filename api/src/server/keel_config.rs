//! `/keel/v1/config`: GET the user-data in force (TOML), POST a body to validate it, PUT a body to validate it,
//! keep it as the next generation and reconcile the containers without a reboot. An invalid body changes nothing
//! and gets every error with its line and column. Only the containers are reconciled: the host's own sections
//! (`[network]`, `[syslog]`, `[api]`) take effect at the next boot.

use std::sync::Arc;

use hyper::{Response, StatusCode};
use keel_config::{ConfigErrors, UserData};
use serde_json::{json, Value};

use super::body::read_bounded;
use super::{error_reply, json, reply, ApiRequest, Body, Context};

/// The largest user-data a client may send: the bound PID 1 puts on the config drive's files.
pub const MAX_CONFIG_BYTES: usize = keel_config::bounded_file::MAX_OUTSIDE_FILE as usize;

/// The file name errors are reported against.
const FILE_NAME: &str = "user-data";

/// `GET /keel/v1/config`.
pub fn get(context: &Context) -> Response<Body> {
    let Some(host) = &context.hooks.host else { return no_host() };
    reply(StatusCode::OK, "text/plain; charset=utf-8", host.config().text.into_bytes())
}

/// `POST /keel/v1/config`: 200 `{"valid": true}` or 400 with every error.
pub async fn validate(request: ApiRequest) -> Response<Body> {
    match parse(request).await {
        Ok(_) => json(StatusCode::OK, &json!({ "valid": true })),
        Err(response) => response,
    }
}

/// `PUT /keel/v1/config`: 200 `{"generation": N, "changed": [names]}` once the containers are reconciled.
pub async fn put(context: &Context, request: ApiRequest) -> Response<Body> {
    let Some(host) = context.hooks.host.clone() else { return no_host() };
    let (text, user_data) = match parse(request).await {
        Ok(parsed) => parsed,
        Err(response) => return response,
    };
    // One PUT at a time, so that generations and reconciliations happen in the same order.
    let _one_at_a_time = context.config_lock.lock().await;
    let supervisor = Arc::clone(&context.supervisor);
    let applied = tokio::task::spawn_blocking(move || {
        let generation = host.store_config(&text).map_err(|error| keel_logs::error_chain(&error))?;
        log::info!("API: user-data generation {generation} accepted; reconciling");
        let plan = supervisor.apply(&user_data).map_err(|error| keel_logs::error_chain(&error))?;
        let mut changed: Vec<String> = plan.create.into_iter().chain(plan.recreate).chain(plan.remove).collect();
        changed.sort();
        Ok::<_, String>((generation, changed))
    })
    .await;
    match applied {
        Ok(Ok((generation, changed))) => json(StatusCode::OK, &json!({ "generation": generation, "changed": changed })),
        Ok(Err(message)) => error_reply(StatusCode::INTERNAL_SERVER_ERROR, &message),
        Err(error) => error_reply(StatusCode::INTERNAL_SERVER_ERROR, &format!("the reconciliation failed: {error}")),
    }
}

/// The body as text and as user-data, or the reply to give instead.
async fn parse(request: ApiRequest) -> Result<(String, UserData), Response<Body>> {
    let bytes = read_bounded(request, MAX_CONFIG_BYTES).await.map_err(|refusal| refusal.reply())?;
    let text = String::from_utf8(bytes).map_err(|error| {
        error_reply(
            StatusCode::BAD_REQUEST,
            &format!("the user-data is not UTF-8 (byte {})", error.utf8_error().valid_up_to()),
        )
    })?;
    match UserData::parse(FILE_NAME, &text) {
        Ok(user_data) => Ok((text, user_data)),
        Err(errors) => Err(invalid(&errors)),
    }
}

/// 400 with every error, each with its line and column.
fn invalid(errors: &ConfigErrors) -> Response<Body> {
    let message = format!("the user-data is invalid ({} errors):\n{errors}", errors.len());
    json(StatusCode::BAD_REQUEST, &json!({ "message": message, "errors": error_list(errors.iter()) }))
}

/// `[{"line", "column", "message"}]`, the message with the key path it concerns.
pub fn error_list<'a>(errors: impl Iterator<Item = &'a keel_config::ConfigError>) -> Vec<Value> {
    errors
        .map(|error| {
            let message = if error.path.is_empty() {
                error.message.clone()
            } else {
                format!("{}: {}", error.path, error.message)
            };
            json!({ "line": error.line, "column": error.column, "message": message })
        })
        .collect()
}

fn no_host() -> Response<Body> {
    error_reply(StatusCode::SERVICE_UNAVAILABLE, "this API has no host config to show or change")
}
