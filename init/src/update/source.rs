//! Where a bundle comes from: an absolute file path on the host or an http(s) URL, opened as one `Read` with the
//! length the source announces (a file's size, a response's `Content-Length`), so that a short bundle is refused
//! before anything is written.

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::PathBuf;
use std::time::Duration;

/// How long a connection to the update server may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a download may stall between two reads.
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// The whole download, however slow the link: a slot is a few tens of MiB.
pub const DOWNLOAD_DEADLINE: Duration = Duration::from_secs(3600);

/// A bundle's location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateSource {
    /// An absolute path on the host.
    File(PathBuf),
    /// An `http://` or `https://` URL.
    Url(String),
}

/// A source that is neither an absolute path nor an http(s) URL, or that cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("update source {source_text:?} is neither an absolute file path nor an http(s) URL")]
    Form { source_text: String },
    #[error("cannot open the bundle {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot download the bundle {url}")]
    Request {
        url: String,
        #[source]
        source: Box<ureq::Error>,
    },
    #[error("cannot download the bundle {url}: the server answered {status}")]
    Status { url: String, status: u16 },
}

impl UpdateSource {
    /// Reads `text` as an absolute path or an http(s) URL.
    pub fn parse(text: &str) -> Result<UpdateSource, SourceError> {
        let text = text.trim();
        if text.starts_with("http://") || text.starts_with("https://") {
            return Ok(UpdateSource::Url(text.to_owned()));
        }
        if text.starts_with('/') {
            return Ok(UpdateSource::File(PathBuf::from(text)));
        }
        Err(SourceError::Form { source_text: text.to_owned() })
    }

    /// Opens the bundle for one pass; the length is what the source announces, if it does.
    pub fn open(&self) -> Result<OpenSource, SourceError> {
        match self {
            UpdateSource::File(path) => {
                let open_error = |source| SourceError::Open { path: path.clone(), source };
                let file = File::open(path).map_err(open_error)?;
                let length = file.metadata().map_err(open_error)?.len();
                Ok(OpenSource { reader: Box::new(file), length: Some(length) })
            }
            UpdateSource::Url(url) => open_url(url),
        }
    }
}

impl fmt::Display for UpdateSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpdateSource::File(path) => write!(f, "{}", path.display()),
            UpdateSource::Url(url) => f.write_str(url),
        }
    }
}

/// An opened bundle.
pub struct OpenSource {
    pub reader: Box<dyn Read + Send>,
    /// Bytes the source announced; `None` when it did not (chunked HTTP).
    pub length: Option<u64>,
}

fn open_url(url: &str) -> Result<OpenSource, SourceError> {
    let request_error = |source| SourceError::Request { url: url.to_owned(), source: Box::new(source) };
    let agent = ureq::Agent::config_builder()
        .timeout_connect(Some(CONNECT_TIMEOUT))
        .timeout_per_read(Some(READ_TIMEOUT))
        .timeout_global(Some(DOWNLOAD_DEADLINE))
        .http_status_as_error(false)
        .build()
        .new_agent();
    let response = agent.get(url).call().map_err(request_error)?;
    let status = response.status().as_u16();
    if status != 200 {
        return Err(SourceError::Status { url: url.to_owned(), status });
    }
    let length = response
        .headers()
        .get("content-length")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse().ok());
    // No limit here: the bundle reader reads no more than the signed manifest's sizes, and one byte after them.
    let reader = response.into_body().into_with_config().limit(u64::MAX).reader();
    Ok(OpenSource { reader: Box::new(reader), length })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_absolute_paths_and_http_urls_only() {
        assert_eq!(UpdateSource::parse("/var/tmp/b.bundle").unwrap(), UpdateSource::File("/var/tmp/b.bundle".into()));
        assert_eq!(
            UpdateSource::parse("http://10.0.2.2:8000/b.bundle").unwrap(),
            UpdateSource::Url("http://10.0.2.2:8000/b.bundle".into())
        );
        for bad in ["b.bundle", "ftp://host/b", "", "file:///b"] {
            assert!(matches!(UpdateSource::parse(bad), Err(SourceError::Form { .. })), "{bad}");
        }
    }
}
