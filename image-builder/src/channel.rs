//! `keel-build channel`: writes the signed channel document that names a channel's latest bundle
//! ([`keel_os_image::channel`]), replacing the file in one rename so a host never fetches half of it.

use std::path::{Path, PathBuf};

use keel_os_image::channel::{ChannelDocument, ChannelError};

use crate::update_key::{self, UpdateKeyError};

/// What `keel-build channel` is asked for.
#[derive(Debug, Clone)]
pub struct ChannelRequest {
    /// The secret key file (keygen's `update.key`).
    pub key: PathBuf,
    pub version: String,
    pub compatible: String,
    /// The bundle's URL, absolute or relative to where the channel file will be served.
    pub bundle: String,
    pub out: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum ChannelBuildError {
    #[error("cannot read the signing key")]
    Key(#[source] UpdateKeyError),
    #[error("the channel document is refused")]
    Document(#[source] ChannelError),
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl ChannelBuildError {
    /// Whether the error is the user's to fix (exit code 100).
    pub fn is_usage(&self) -> bool {
        match self {
            ChannelBuildError::Key(error) => error.is_usage(),
            ChannelBuildError::Document(_) => true,
            ChannelBuildError::Write { .. } => false,
        }
    }
}

/// Signs the document and writes it to `request.out`; returns the document.
pub fn build(request: &ChannelRequest) -> Result<ChannelDocument, ChannelBuildError> {
    let key = update_key::read_secret(&request.key).map_err(ChannelBuildError::Key)?;
    let document = ChannelDocument::new(&request.compatible, &request.version, &request.bundle);
    let file = document.sign(&key).map_err(ChannelBuildError::Document)?;
    write_replacing(&request.out, &file)?;
    Ok(document)
}

/// Writes `bytes` beside `path` and renames it over `path`: a web server serving `path` hands out the old file
/// or the new one, never a mix.
fn write_replacing(path: &Path, bytes: &[u8]) -> Result<(), ChannelBuildError> {
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let error = |source| ChannelBuildError::Write { path: path.to_owned(), source };
    std::fs::write(&partial, bytes).map_err(error)?;
    std::fs::rename(&partial, path).map_err(error)
}
