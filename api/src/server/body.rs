//! Request bodies, read only within a bound: a declared length over it is refused before a byte is read, and an
//! undeclared one (chunked) is cut off at the bound. Also the JSON decoding of a body, with a 400 naming what was
//! wrong.

use std::time::Duration;

use http_body_util::{BodyExt, Limited};
use hyper::StatusCode;

use super::{ApiRequest, Refusal};

/// How long a client has to send a body: a request in flight is never closed as idle, so a trickle must end.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// The body of `request`, at most `limit` bytes within [`BODY_TIMEOUT`]; 413 beyond the size, 408 beyond the
/// time, 400 when the client breaks off.
pub async fn read_bounded(request: ApiRequest, limit: usize) -> Result<Vec<u8>, Refusal> {
    let too_large =
        || Refusal::new(StatusCode::PAYLOAD_TOO_LARGE, format!("request body too large: at most {limit} bytes"));
    let declared = request.headers().get(hyper::header::CONTENT_LENGTH).and_then(|value| value.to_str().ok());
    if let Some(declared) = declared {
        match declared.trim().parse::<u64>() {
            Ok(length) if length > limit as u64 => return Err(too_large()),
            Ok(_) => {}
            Err(_) => return Err(Refusal::new(StatusCode::BAD_REQUEST, "Content-Length: not a number")),
        }
    }
    let reading = tokio::time::timeout(BODY_TIMEOUT, Limited::new(request.into_body(), limit).collect());
    match reading.await {
        Ok(Ok(collected)) => Ok(collected.to_bytes().to_vec()),
        Ok(Err(error)) if error.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Ok(Err(_)) => Err(Refusal::new(StatusCode::BAD_REQUEST, "the request body ended early")),
        Err(_) => {
            Err(Refusal::new(StatusCode::REQUEST_TIMEOUT, format!("the request body took over {BODY_TIMEOUT:?}")))
        }
    }
}

/// The body of `request` as JSON of type `T`, within `limit` bytes; 400 with the position of a syntax error.
pub async fn read_json<T: serde::de::DeserializeOwned>(request: ApiRequest, limit: usize) -> Result<T, Refusal> {
    let bytes = read_bounded(request, limit).await?;
    serde_json::from_slice(&bytes)
        .map_err(|error| Refusal::new(StatusCode::BAD_REQUEST, format!("invalid JSON body: {error}")))
}
