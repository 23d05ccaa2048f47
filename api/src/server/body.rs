//! Request bodies, read only within a bound: a declared length over it is refused before a byte is read, and an
//! undeclared one (chunked) is cut off at the bound. Also the JSON decoding of a body, with a 400 naming what was
//! wrong.

use http_body_util::{BodyExt, Limited};
use hyper::StatusCode;

use super::{ApiRequest, Refusal};

/// The body of `request`, at most `limit` bytes; 413 beyond it, 400 when the client breaks off.
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
    match Limited::new(request.into_body(), limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes().to_vec()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(_) => Err(Refusal::new(StatusCode::BAD_REQUEST, "the request body ended early")),
    }
}

/// The body of `request` as JSON of type `T`, within `limit` bytes; 400 with the position of a syntax error.
pub async fn read_json<T: serde::de::DeserializeOwned>(request: ApiRequest, limit: usize) -> Result<T, Refusal> {
    let bytes = read_bounded(request, limit).await?;
    serde_json::from_slice(&bytes)
        .map_err(|error| Refusal::new(StatusCode::BAD_REQUEST, format!("invalid JSON body: {error}")))
}
