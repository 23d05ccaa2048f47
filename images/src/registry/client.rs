//! HTTP client for the registry API v2 on ureq: URLs, authentication retries, deadlines, transient-error backoff.

use std::collections::HashMap;
use std::io::Read;
use std::sync::{Mutex, PoisonError};
use std::thread;
use std::time::Duration;

use ureq::http::Response;
use ureq::{Agent, Body};

use super::auth::{basic_header, parse_challenge, Challenge, TokenResponse};
use super::blob_reader::ResumingBlob;
use super::manifest::MANIFEST_ACCEPT;
use super::timeouts::RegistryTimeouts;
use crate::digest::Digest;
use crate::reference::ImageReference;

/// Manifests larger than this are not manifests (the distribution spec suggests 4 MiB).
const MANIFEST_LIMIT_BYTES: u64 = 4 << 20;

/// One registry's settings from the user-data's `[registries."HOST[:PORT]"]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistrySettings {
    /// Talk plain HTTP to this registry; never assumed for registries not listed.
    pub insecure: bool,
    pub username: Option<String>,
    pub password: Option<String>,
}

/// What went wrong talking to a registry; each variant names the URL or registry involved.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("GET {url}: request failed after {attempts} attempt(s)")]
    Request {
        url: String,
        attempts: u32,
        #[source]
        source: Box<ureq::Error>,
    },
    #[error("GET {url}: HTTP {status}: {body}")]
    Status { url: String, status: u16, body: String },
    #[error("GET {url}: HTTP 401 and no usable challenge ({challenge:?})")]
    Unauthorized { url: String, challenge: Option<String> },
    #[error("GET {url}: HTTP 401: {registry} needs credentials and none are configured ([registries.\"{registry}\"])")]
    CredentialsRequired { url: String, registry: String },
    #[error("GET {url}: HTTP 401: the registry refused the credentials of user {username:?}")]
    CredentialsRefused { url: String, username: String },
    /// The URL is left out to keep the error small: the realm and registry name the requests well enough.
    #[error(
        "HTTP {status}: the credentials for {registry} were withheld from the token realm {realm} ({reason}) and \
         the anonymous request was refused"
    )]
    CredentialsWithheld { status: u16, registry: String, realm: String, reason: WithheldReason },
    #[error("token from {realm}: response has neither `token` nor `access_token`")]
    TokenMissing { realm: String },
    #[error("GET {url}: reading the response body failed")]
    ReadBody {
        url: String,
        #[source]
        source: Box<ureq::Error>,
    },
    #[error("token from {realm}: response is not JSON")]
    TokenJson {
        realm: String,
        #[source]
        source: serde_json::Error,
    },
}

/// Why Basic credentials were not sent to a token realm: a 401 may name any URL as its realm, and a registry
/// reached over plain HTTP (or a spoofed answer) must not be able to collect the password that way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WithheldReason {
    /// The realm is plain HTTP on a host or port other than the registry's own.
    PlainHttpOtherHost,
    /// The realm is not an `http://` or `https://` URL at all.
    NotHttp,
}

impl std::fmt::Display for WithheldReason {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            WithheldReason::PlainHttpOtherHost => "plain HTTP to a host other than the registry's own",
            WithheldReason::NotHttp => "not an http:// or https:// URL",
        })
    }
}

/// A manifest as fetched: its bytes, the content type the registry announced, and the digest of the bytes.
pub struct FetchedManifest {
    pub bytes: Vec<u8>,
    pub content_type: Option<String>,
    pub digest: Digest,
}

/// A blob body being streamed, with the size the server announced (if any). A read that stalls or breaks is
/// retried from where it stopped; the error of the last try names the registry and the blob.
pub struct BlobStream<'a> {
    pub reader: Box<dyn Read + Send + 'a>,
    pub content_length: Option<u64>,
}

/// What one request asks for beyond its URL.
#[derive(Clone, Copy)]
pub(super) struct RequestSpec<'a> {
    pub accept: Option<&'a str>,
    /// `Range: bytes=N-`: the rest of a blob from byte N.
    pub range_from: Option<u64>,
    /// The whole request's deadline, body included.
    pub deadline: Duration,
}

/// Talks to any number of registries; keeps one Authorization header per registry and repository.
pub struct RegistryClient {
    agent: Agent,
    settings: HashMap<String, RegistrySettings>,
    authorizations: Mutex<HashMap<String, String>>,
    timeouts: RegistryTimeouts,
}

impl RegistryClient {
    /// `settings` is keyed by `HOST[:PORT]` as written in image references (`docker.io`, `localhost:5000`).
    pub fn new(settings: HashMap<String, RegistrySettings>) -> RegistryClient {
        RegistryClient::with_timeouts(settings, RegistryTimeouts::default())
    }

    /// [`RegistryClient::new`] with other deadlines and retries than the defaults (tests use short ones).
    pub fn with_timeouts(settings: HashMap<String, RegistrySettings>, timeouts: RegistryTimeouts) -> RegistryClient {
        let config = Agent::config_builder()
            // Errors must come back as responses: a 401 carries the `WWW-Authenticate` challenge (trap 10).
            .http_status_as_error(false)
            .timeout_connect(Some(timeouts.connect))
            // Every read, headers and body alike: a registry that stops sending fails the attempt.
            .timeout_per_read(Some(timeouts.idle))
            .user_agent(concat!("keel/", env!("CARGO_PKG_VERSION")))
            .build();
        RegistryClient { agent: config.new_agent(), settings, authorizations: Mutex::new(HashMap::new()), timeouts }
    }

    pub fn timeouts(&self) -> &RegistryTimeouts {
        &self.timeouts
    }

    fn settings_for(&self, reference: &ImageReference) -> RegistrySettings {
        self.settings.get(reference.registry()).cloned().unwrap_or_default()
    }

    fn url(&self, reference: &ImageReference, kind: &str, selector: &str) -> String {
        let scheme = if self.settings_for(reference).insecure { "http" } else { "https" };
        format!("{scheme}://{}/v2/{}/{kind}/{selector}", reference.api_host(), reference.repository())
    }

    /// Fetches a manifest by tag or digest (`selector`), reading at most 4 MiB; a body that stalls or breaks is
    /// asked for again, up to the configured attempts.
    pub fn fetch_manifest(&self, reference: &ImageReference, selector: &str) -> Result<FetchedManifest, RegistryError> {
        let url = self.url(reference, "manifests", selector);
        let spec = RequestSpec {
            accept: Some(MANIFEST_ACCEPT),
            range_from: None,
            deadline: self.timeouts.request_deadline(MANIFEST_LIMIT_BYTES),
        };
        let mut tries = 0;
        loop {
            tries += 1;
            let mut response = self.get(reference, &url, spec)?;
            let content_type = header(&response, "content-type");
            match response.body_mut().with_config().limit(MANIFEST_LIMIT_BYTES).read_to_vec() {
                Ok(bytes) => {
                    let digest = Digest::of_bytes(&bytes);
                    return Ok(FetchedManifest { bytes, content_type, digest });
                }
                Err(error) if is_transient(&error) && tries < self.timeouts.attempts => {
                    let wait = self.timeouts.backoff(tries);
                    log::warn!("GET {url}: reading the manifest: {error}, retrying in {wait:?}");
                    thread::sleep(wait);
                }
                Err(source) => return Err(RegistryError::ReadBody { url, source: Box::new(source) }),
            }
        }
    }

    /// Starts streaming a blob of `expected_size` bytes (from its descriptor; it scales the deadline); redirects
    /// to CDNs are followed without our `Authorization` (ureq's default).
    pub fn fetch_blob<'a>(
        &'a self,
        reference: &'a ImageReference,
        digest: &Digest,
        expected_size: u64,
    ) -> Result<BlobStream<'a>, RegistryError> {
        let url = self.url(reference, "blobs", &digest.to_string());
        let spec =
            RequestSpec { accept: None, range_from: None, deadline: self.timeouts.request_deadline(expected_size) };
        let response = self.get(reference, &url, spec)?;
        let content_length = header(&response, "content-length").and_then(|value| value.parse().ok());
        let reader = ResumingBlob::new(self, reference, digest.clone(), url, expected_size, response);
        Ok(BlobStream { reader: Box::new(reader), content_length })
    }

    /// GET with the cached authorization; on 401 answers the challenge once, on transient failures backs off.
    pub(super) fn get(
        &self,
        reference: &ImageReference,
        url: &str,
        spec: RequestSpec<'_>,
    ) -> Result<Response<Body>, RegistryError> {
        let auth_key = format!("{}/{}", reference.registry(), reference.repository());
        let mut answered_challenge = false;
        // Set when the Bearer flow got its token without the credentials: a 401 after that is not their refusal.
        let mut withheld: Option<(String, WithheldReason)> = None;
        loop {
            let authorization = self.cached_authorization(&auth_key);
            let response = self.get_with_retries(url, spec, authorization.as_deref())?;
            let status = response.status().as_u16();
            if status == 401 && !answered_challenge {
                answered_challenge = true;
                let challenge_text = header(&response, "www-authenticate");
                let challenge = challenge_text.as_deref().and_then(parse_challenge);
                let new_authorization = match challenge {
                    Some(Challenge::Basic) => {
                        Some(self.basic_authorization(reference).ok_or_else(|| self.unauthorized(reference, url))?)
                    }
                    Some(Challenge::Bearer { realm, service, scope }) => {
                        let scope = scope.unwrap_or_else(|| format!("repository:{}:pull", reference.repository()));
                        let (token, withheld_from) = self.fetch_token(reference, &realm, service.as_deref(), &scope)?;
                        withheld = withheld_from.map(|reason| (realm, reason));
                        Some(token)
                    }
                    None => None,
                };
                let Some(new_authorization) = new_authorization else {
                    return Err(RegistryError::Unauthorized { url: url.to_string(), challenge: challenge_text });
                };
                self.authorizations
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(auth_key.clone(), new_authorization);
                continue;
            }
            if status == 401 {
                if let Some((realm, reason)) = withheld {
                    return Err(RegistryError::CredentialsWithheld {
                        status,
                        registry: reference.registry().to_string(),
                        realm,
                        reason,
                    });
                }
                return Err(self.unauthorized(reference, url));
            }
            if !(200..300).contains(&status) {
                return Err(status_error(url, response));
            }
            return Ok(response);
        }
    }

    /// The error for a 401 that answering the challenge did not cure: refused credentials, or none to send.
    fn unauthorized(&self, reference: &ImageReference, url: &str) -> RegistryError {
        match self.settings_for(reference).username {
            Some(username) => RegistryError::CredentialsRefused { url: url.to_string(), username },
            None => {
                RegistryError::CredentialsRequired { url: url.to_string(), registry: reference.registry().to_string() }
            }
        }
    }

    fn cached_authorization(&self, key: &str) -> Option<String> {
        self.authorizations.lock().unwrap_or_else(PoisonError::into_inner).get(key).cloned()
    }

    fn basic_authorization(&self, reference: &ImageReference) -> Option<String> {
        let settings = self.settings_for(reference);
        Some(basic_header(settings.username.as_deref()?, settings.password.as_deref().unwrap_or_default()))
    }

    /// The Bearer flow: GET realm?service&scope → `Bearer <token>`, with the configured Basic credentials only
    /// where [`credentials_allowed`] lets them go; also returns why they were withheld, if they were.
    fn fetch_token(
        &self,
        reference: &ImageReference,
        realm: &str,
        service: Option<&str>,
        scope: &str,
    ) -> Result<(String, Option<WithheldReason>), RegistryError> {
        let mut url = format!("{realm}{}scope={}", if realm.contains('?') { '&' } else { '?' }, query_escape(scope));
        if let Some(service) = service {
            url.push_str(&format!("&service={}", query_escape(service)));
        }
        let mut basic = self.basic_authorization(reference);
        let mut withheld = None;
        if basic.is_some() {
            let registry_port = if self.settings_for(reference).insecure { 80 } else { 443 };
            if let Err(reason) = credentials_allowed(realm, reference.api_host(), registry_port) {
                log::warn!(
                    "not sending the credentials for {} to the token realm {realm}: {reason}; asking anonymously",
                    reference.registry()
                );
                basic = None;
                withheld = Some(reason);
            }
        }
        let spec = RequestSpec {
            accept: None,
            range_from: None,
            deadline: self.timeouts.request_deadline(MANIFEST_LIMIT_BYTES),
        };
        let mut response = self.get_with_retries(&url, spec, basic.as_deref())?;
        let status = response.status().as_u16();
        if let Some(reason) = withheld.filter(|_| !response.status().is_success()) {
            return Err(RegistryError::CredentialsWithheld {
                status,
                registry: reference.registry().to_string(),
                realm: realm.to_string(),
                reason,
            });
        }
        if status == 401 {
            return Err(self.unauthorized(reference, &url));
        }
        if !response.status().is_success() {
            return Err(status_error(&url, response));
        }
        let body = response
            .body_mut()
            .with_config()
            .limit(MANIFEST_LIMIT_BYTES)
            .read_to_vec()
            .map_err(|source| RegistryError::ReadBody { url: url.clone(), source: Box::new(source) })?;
        let token: TokenResponse = serde_json::from_slice(&body)
            .map_err(|source| RegistryError::TokenJson { realm: realm.to_string(), source })?;
        let token = token.into_token().ok_or_else(|| RegistryError::TokenMissing { realm: realm.to_string() })?;
        Ok((format!("Bearer {token}"), withheld))
    }

    /// Retries connection errors and 5xx with exponential backoff; 4xx are answers, not failures.
    fn get_with_retries(
        &self,
        url: &str,
        spec: RequestSpec<'_>,
        authorization: Option<&str>,
    ) -> Result<Response<Body>, RegistryError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut request = self.agent.get(url).header("Accept-Encoding", "identity");
            if let Some(accept) = spec.accept {
                request = request.header("Accept", accept);
            }
            if let Some(offset) = spec.range_from {
                request = request.header("Range", format!("bytes={offset}-"));
            }
            if let Some(authorization) = authorization {
                request = request.header("Authorization", authorization);
            }
            // Headers, body and redirects together: the per-read deadline alone lets a trickle go on for ever.
            let request = request.config().timeout_global(Some(spec.deadline)).build();
            let last_attempt = attempt >= self.timeouts.attempts;
            let backoff = self.timeouts.backoff(attempt);
            match request.call() {
                Ok(response) if response.status().is_server_error() && !last_attempt => {
                    log::warn!("GET {url}: HTTP {}, retrying in {backoff:?}", response.status().as_u16());
                }
                Ok(response) => return Ok(response),
                Err(error) if is_transient(&error) && !last_attempt => {
                    log::warn!("GET {url}: {error}, retrying in {backoff:?}");
                }
                Err(source) => {
                    return Err(RegistryError::Request {
                        url: url.to_string(),
                        attempts: attempt,
                        source: Box::new(source),
                    })
                }
            }
            thread::sleep(backoff);
        }
    }
}

/// Whether a registry's Basic credentials may go to the token realm a 401 named: over HTTPS anywhere (the realm
/// is then authenticated by its certificate, as Docker does for Docker Hub's `auth.docker.io`), over plain HTTP only
/// to the registry's own host and port (`api_host`, which already receives them for a Basic challenge;
/// `registry_port` is its port when `api_host` names none: 80 for an insecure registry, else 443).
fn credentials_allowed(realm: &str, api_host: &str, registry_port: u16) -> Result<(), WithheldReason> {
    let Some((scheme, rest)) = realm.split_once("://") else { return Err(WithheldReason::NotHttp) };
    if scheme.eq_ignore_ascii_case("https") {
        return Ok(());
    }
    if !scheme.eq_ignore_ascii_case("http") {
        return Err(WithheldReason::NotHttp);
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    // `user:pass@host` in a realm is not the host; only what follows the last `@` is.
    let authority = authority.rsplit('@').next().unwrap_or_default();
    if host_and_port(authority, 80) == host_and_port(api_host, registry_port) {
        Ok(())
    } else {
        Err(WithheldReason::PlainHttpOtherHost)
    }
}

/// `host[:port]` (or `[v6]:port`) split into a lowercase host and a port, `default_port` when none is written.
fn host_and_port(authority: &str, default_port: u16) -> (String, Option<u16>) {
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((host, rest)) => (host, rest.strip_prefix(':')),
            None => (v6, None),
        },
        None => match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    // An unparsable port compares as None, which no written port equals.
    let port = match port {
        Some(port) => port.parse().ok(),
        None => Some(default_port),
    };
    (host.to_ascii_lowercase(), port)
}

pub(super) fn is_transient(error: &ureq::Error) -> bool {
    matches!(
        error,
        ureq::Error::Io(_) | ureq::Error::Timeout(_) | ureq::Error::ConnectionFailed | ureq::Error::Protocol(_)
    )
}

pub(super) fn header(response: &Response<Body>, name: &str) -> Option<String> {
    response.headers().get(name).and_then(|value| value.to_str().ok()).map(str::to_string)
}

fn status_error(url: &str, mut response: Response<Body>) -> RegistryError {
    let status = response.status().as_u16();
    let body = response.body_mut().with_config().limit(4096).read_to_string().unwrap_or_default();
    RegistryError::Status { url: url.to_string(), status, body: body.trim().to_string() }
}

/// Percent-encodes a query value (scopes contain `:` and `/`, which token servers accept either way).
fn query_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~' | b':' | b'/') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_go_to_https_anywhere_and_plain_http_only_on_the_registry_host() {
        assert_eq!(credentials_allowed("https://auth.docker.io/token", "registry-1.docker.io", 443), Ok(()));
        assert_eq!(credentials_allowed("http://127.0.0.1:5000/token", "127.0.0.1:5000", 80), Ok(()));
        assert_eq!(credentials_allowed("HTTP://Registry.Example/token", "registry.example:80", 443), Ok(()));
        assert_eq!(credentials_allowed("http://registry.example/token", "registry.example", 80), Ok(()));
        assert_eq!(credentials_allowed("http://[::1]:5000/t?x=1", "[::1]:5000", 80), Ok(()));
        for (realm, host) in [
            ("http://127.0.0.2:5000/token", "127.0.0.1:5000"),
            ("http://127.0.0.1:5001/token", "127.0.0.1:5000"),
            ("http://127.0.0.1/token", "127.0.0.1:5000"),
            ("http://127.0.0.1:5000@evil.example/token", "127.0.0.1:5000"),
            ("http://registry.example:x/token", "registry.example"),
            // An HTTPS registry's password does not go out in clear to port 80 of the same host.
            ("http://registry.example/token", "registry.example"),
        ] {
            assert_eq!(credentials_allowed(realm, host, 443), Err(WithheldReason::PlainHttpOtherHost), "{realm}");
        }
        assert_eq!(
            credentials_allowed("ftp://127.0.0.1:5000/token", "127.0.0.1:5000", 80),
            Err(WithheldReason::NotHttp)
        );
        assert_eq!(credentials_allowed("/token", "127.0.0.1:5000", 80), Err(WithheldReason::NotHttp));
    }
}
