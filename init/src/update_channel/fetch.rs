//! Fetches a channel document over http(s): bounded in time (connect, whole response) and in size (the reader
//! stops one byte past [`MAX_CHANNEL_LEN`]), so a hostile or stuck server costs the poller one interval at most.

use std::io::Read;
use std::time::Duration;

use keel_os_image::channel::MAX_CHANNEL_LEN;

/// How long a connection to the channel's server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The whole request and response: a channel is one small file.
const RESPONSE_DEADLINE: Duration = Duration::from_secs(30);

/// A channel that could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("cannot fetch the channel {url}")]
    Request {
        url: String,
        #[source]
        source: Box<ureq::Error>,
    },
    #[error("cannot fetch the channel {url}: the server answered {status}")]
    Status { url: String, status: u16 },
    #[error("cannot read the channel {url}")]
    Read {
        url: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the channel {url} is more than {MAX_CHANNEL_LEN} bytes")]
    TooLarge { url: String },
}

/// The channel file at `url`, at most [`MAX_CHANNEL_LEN`] bytes.
pub fn fetch_channel(url: &str) -> Result<Vec<u8>, FetchError> {
    let agent = ureq::Agent::config_builder()
        .timeout_connect(Some(CONNECT_TIMEOUT))
        .timeout_global(Some(RESPONSE_DEADLINE))
        .http_status_as_error(false)
        .build()
        .new_agent();
    let response = agent
        .get(url)
        .call()
        .map_err(|source| FetchError::Request { url: url.to_owned(), source: Box::new(source) })?;
    let status = response.status().as_u16();
    if status != 200 {
        return Err(FetchError::Status { url: url.to_owned(), status });
    }
    // One byte more than allowed tells a file at the limit from a larger one; ureq's own body limit is lifted so
    // that this bound, not ureq's error, speaks.
    let bound = MAX_CHANNEL_LEN as u64 + 1;
    let mut reader = response.into_body().into_with_config().limit(u64::MAX).reader().take(bound);
    let mut file = Vec::new();
    reader.read_to_end(&mut file).map_err(|source| FetchError::Read { url: url.to_owned(), source })?;
    if file.len() > MAX_CHANNEL_LEN {
        return Err(FetchError::TooLarge { url: url.to_owned() });
    }
    Ok(file)
}
