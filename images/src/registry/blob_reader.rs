//! A blob body that outlives a stalled or broken connection: the failed read is retried with backoff from the
//! byte it stopped at (`Range`; a registry that ignores it sends the blob again and the start is skipped), up to
//! the configured attempts per blob.

use std::io::{self, Read};
use std::thread;
use std::time::Duration;

use ureq::http::Response;
use ureq::{Body, BodyReader};

use super::client::{header, RegistryClient, RegistryError, RequestSpec};
use crate::digest::Digest;
use crate::reference::ImageReference;

/// Why reading a blob's body failed for good; each variant names the registry, the blob and how far it got.
/// It reaches the pull inside an `io::Error`, whose `Display` and `source` are this error's.
#[derive(Debug, thiserror::Error)]
pub enum BlobReadError {
    #[error("blob {digest} from {registry}: no data for {idle:?} at byte {offset} of {size} ({tries} tries)")]
    Stalled {
        registry: String,
        digest: Digest,
        idle: Duration,
        offset: u64,
        size: u64,
        tries: u32,
        #[source]
        source: io::Error,
    },
    #[error(
        "blob {digest} from {registry}: not complete within the request's deadline of {deadline:?} at byte \
         {offset} of {size} ({tries} tries)"
    )]
    Deadline {
        registry: String,
        digest: Digest,
        deadline: Duration,
        offset: u64,
        size: u64,
        tries: u32,
        #[source]
        source: io::Error,
    },
    #[error("blob {digest} from {registry}: reading failed at byte {offset} of {size} ({tries} tries)")]
    Read {
        registry: String,
        digest: Digest,
        offset: u64,
        size: u64,
        tries: u32,
        #[source]
        source: io::Error,
    },
    #[error("blob {digest} from {registry}: asking again from byte {offset}")]
    Resume {
        registry: String,
        digest: Digest,
        offset: u64,
        #[source]
        source: RegistryError,
    },
    #[error("blob {digest} from {registry}: asked for the bytes from {offset}, got the range {content_range:?}")]
    WrongRange { registry: String, digest: Digest, offset: u64, content_range: Option<String> },
}

/// The body of one blob, resumed on failure. Counts every request for it, the first included, against the
/// client's attempts.
pub(crate) struct ResumingBlob<'a> {
    client: &'a RegistryClient,
    reference: &'a ImageReference,
    digest: Digest,
    url: String,
    size: u64,
    body: Option<BodyReader<'static>>,
    /// The deadline of the request `body` comes from.
    deadline: Duration,
    /// Bytes handed to the caller so far: where a resumed request starts.
    offset: u64,
    /// Bytes of a resent whole body to drop before handing any out (the registry ignored `Range`).
    skip: u64,
    tries: u32,
}

impl<'a> ResumingBlob<'a> {
    /// Wraps the first response for `digest` (`size` bytes by its descriptor), already asked for at `url`.
    pub(crate) fn new(
        client: &'a RegistryClient,
        reference: &'a ImageReference,
        digest: Digest,
        url: String,
        size: u64,
        first: Response<Body>,
    ) -> ResumingBlob<'a> {
        let body = Some(first.into_body().into_reader());
        let deadline = client.timeouts().request_deadline(size);
        ResumingBlob { client, reference, digest, url, size, body, deadline, offset: 0, skip: 0, tries: 1 }
    }

    /// Asks for the rest of the blob from `offset`.
    fn reopen(&mut self) -> io::Result<()> {
        self.tries += 1;
        self.deadline = self.client.timeouts().request_deadline(self.size.saturating_sub(self.offset));
        let spec = RequestSpec { accept: None, range_from: Some(self.offset), deadline: self.deadline };
        let response = self.client.get(self.reference, &self.url, spec).map_err(|source| {
            self.failed(|registry, digest| BlobReadError::Resume { registry, digest, offset: self.offset, source })
        })?;
        match response.status().as_u16() {
            206 => {
                let content_range = header(&response, "content-range");
                let expected = format!("bytes {}-", self.offset);
                if !content_range.as_deref().is_some_and(|range| range.starts_with(&expected)) {
                    return Err(self.failed(|registry, digest| BlobReadError::WrongRange {
                        registry,
                        digest,
                        offset: self.offset,
                        content_range,
                    }));
                }
                self.skip = 0;
            }
            // The whole blob again: the bytes already handed out are dropped as they come.
            _ => self.skip = self.offset,
        }
        self.body = Some(response.into_body().into_reader());
        Ok(())
    }

    /// Reads into `buf` from the current body, dropping what `skip` says was handed out already.
    fn read_body(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(body) = self.body.as_mut() else { return Ok(0) };
        while self.skip > 0 {
            let mut scratch = [0u8; 8192];
            let want = scratch.len().min(usize::try_from(self.skip).unwrap_or(usize::MAX));
            let count = body.read(&mut scratch[..want])?;
            if count == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the blob sent again is shorter than before"));
            }
            self.skip -= count as u64;
        }
        body.read(buf)
    }

    /// The final error, as an `io::Error` for the reader's caller.
    fn failed(&self, make: impl FnOnce(String, Digest) -> BlobReadError) -> io::Error {
        io::Error::other(make(self.reference.registry().to_string(), self.digest.clone()))
    }

    /// The final error for a read that failed with `source` on the last try.
    fn read_failed(&self, source: io::Error) -> io::Error {
        let (offset, size, tries, deadline) = (self.offset, self.size, self.tries, self.deadline);
        let timeout =
            source.get_ref().and_then(|inner| inner.downcast_ref::<ureq::Error>()).and_then(|error| match error {
                ureq::Error::Timeout(timeout) => Some(*timeout),
                _ => None,
            });
        let timeouts = self.client.timeouts();
        self.failed(|registry, digest| match timeout {
            Some(ureq::Timeout::PerRead) => {
                BlobReadError::Stalled { registry, digest, idle: timeouts.idle, offset, size, tries, source }
            }
            Some(ureq::Timeout::Global) => {
                BlobReadError::Deadline { registry, digest, deadline, offset, size, tries, source }
            }
            _ => BlobReadError::Read { registry, digest, offset, size, tries, source },
        })
    }
}

impl Read for ResumingBlob<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.body.is_none() {
                self.reopen()?;
            }
            match self.read_body(buf) {
                Ok(count) => {
                    self.offset += count as u64;
                    return Ok(count);
                }
                Err(error) => {
                    self.body = None;
                    if self.tries >= self.client.timeouts().attempts {
                        return Err(self.read_failed(error));
                    }
                    let wait = self.client.timeouts().backoff(self.tries);
                    log::warn!(
                        "{}: blob {} at byte {} of {}: {error}; asking again in {wait:?}",
                        self.reference.registry(),
                        self.digest,
                        self.offset,
                        self.size
                    );
                    thread::sleep(wait);
                }
            }
        }
    }
}
