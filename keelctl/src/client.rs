//! keelctl's HTTP client: one request per connection to keel's API over its unix socket or TCP (hyper 1.x on a
//! current-thread tokio runtime), with connect and read deadlines, bounded bodies, and Docker's `{"message": …}`
//! error replies turned into [`ClientError::Refused`].

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};
use tokio::runtime::Runtime;

/// The address PID 1 serves its API on.
pub const DEFAULT_HOST: &str = "unix:///run/keel.sock";
/// How long a connection may take to open.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a reply (its headers, then each piece of its body) may take, unless a call says otherwise.
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest whole body read into memory (a listing or an inspect is a few KiB; a log without `-f` at most
/// the container's 1 MiB buffer in frames).
pub const MAX_BODY: usize = 16 << 20;

/// Where the API is: `unix:///PATH` or `tcp://HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Unix(PathBuf),
    Tcp(String),
}

#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not an API address: use unix:///PATH or tcp://HOST:PORT")]
pub struct HostParseError(String);

impl FromStr for Host {
    type Err = HostParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Some(path) = text.strip_prefix("unix://") {
            if path.starts_with('/') {
                return Ok(Host::Unix(PathBuf::from(path)));
            }
        } else if let Some(address) = text.strip_prefix("tcp://") {
            let address = address.trim_end_matches('/');
            let port = address.rsplit_once(':').map(|(host, port)| (host, port.parse::<u16>()));
            if let Some((host, Ok(_))) = port {
                if !host.is_empty() {
                    return Ok(Host::Tcp(address.to_owned()));
                }
            }
        }
        Err(HostParseError(text.to_owned()))
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Unix(path) => write!(f, "unix://{}", path.display()),
            Host::Tcp(address) => write!(f, "tcp://{address}"),
        }
    }
}

/// Why a request got no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot start the HTTP client's runtime")]
    Runtime(#[source] std::io::Error),
    #[error("cannot connect to keel at {host}")]
    Connect {
        host: Host,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot connect to keel at {host}: no answer within {}s", CONNECT_TIMEOUT.as_secs())]
    ConnectTimeout { host: Host },
    #[error("{what} to {host} failed")]
    Exchange {
        what: String,
        host: Host,
        #[source]
        source: hyper::Error,
    },
    #[error("{what} to {host}: no answer within {}s", after.as_secs())]
    ReadTimeout { what: String, host: Host, after: Duration },
    #[error("{what}: the reply is larger than {limit} bytes")]
    TooLarge { what: String, limit: usize },
    /// The server answered with an error: its `{"message"}`, or the status when it sent none.
    #[error("{message}")]
    Refused { status: StatusCode, message: String },
    #[error("{what}: the reply is not the JSON expected")]
    BadJson {
        what: String,
        #[source]
        source: serde_json::Error,
    },
}

impl ClientError {
    /// True when the host could not be reached at all (exit code 3).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, ClientError::Connect { .. } | ClientError::ConnectTimeout { .. })
    }
}

/// A whole reply.
pub struct Reply {
    pub status: StatusCode,
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON of type `T`.
    pub fn json<T: serde::de::DeserializeOwned>(&self, what: &str) -> Result<T, ClientError> {
        serde_json::from_slice(&self.body).map_err(|source| ClientError::BadJson { what: what.to_owned(), source })
    }
}

/// The API at one address.
pub struct Client {
    host: Host,
    runtime: Runtime,
}

/// A reply whose body is read piece by piece (logs, events, pull progress).
pub struct Stream<'a> {
    client: &'a Client,
    what: String,
    body: Incoming,
}

impl Client {
    pub fn new(host: Host) -> Result<Self, ClientError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(ClientError::Runtime)?;
        Ok(Client { host, runtime })
    }

    pub fn host(&self) -> &Host {
        &self.host
    }

    /// `GET path`, the reply's JSON.
    pub fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.checked(Method::GET, path, None, READ_TIMEOUT)?.json(&format!("GET {path}"))
    }

    /// Sends a request and reads the whole reply, whatever its status; `read_timeout` bounds the wait for the
    /// headers and for each piece of the body.
    pub fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
        read_timeout: Duration,
    ) -> Result<Reply, ClientError> {
        let what = format!("{method} {path}");
        self.runtime.block_on(async {
            let response = self.open(method, path, body, read_timeout).await?;
            let status = response.status();
            let body = read_bounded(&self.host, &what, response.into_body(), read_timeout).await?;
            Ok(Reply { status, body })
        })
    }

    /// As [`Client::send`], with an error status turned into [`ClientError::Refused`].
    pub fn checked(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
        read_timeout: Duration,
    ) -> Result<Reply, ClientError> {
        let reply = self.send(method, path, body, read_timeout)?;
        if reply.status.is_success() || reply.status == StatusCode::NOT_MODIFIED {
            Ok(reply)
        } else {
            Err(refusal(reply.status, &reply.body))
        }
    }

    /// Sends a request whose reply streams: an error status is read whole and returned as
    /// [`ClientError::Refused`]; a success is returned to be read with [`Stream::next_chunk`].
    pub fn stream(&self, method: Method, path: &str) -> Result<Stream<'_>, ClientError> {
        let what = format!("{method} {path}");
        self.runtime.block_on(async {
            let response = self.open(method, path, None, READ_TIMEOUT).await?;
            let status = response.status();
            if status.is_success() {
                return Ok(Stream { client: self, what, body: response.into_body() });
            }
            let body = read_bounded(&self.host, &what, response.into_body(), READ_TIMEOUT).await?;
            Err(refusal(status, &body))
        })
    }

    /// Connects, sends, and waits for the reply's headers.
    async fn open(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
        read_timeout: Duration,
    ) -> Result<hyper::Response<Incoming>, ClientError> {
        let what = format!("{method} {path}");
        let mut sender = match tokio::time::timeout(CONNECT_TIMEOUT, self.connect()).await {
            Ok(sender) => sender?,
            Err(_) => return Err(ClientError::ConnectTimeout { host: self.host.clone() }),
        };
        let mut request = Request::builder().method(method).uri(path).header(hyper::header::HOST, "keel");
        let body = match body {
            Some((content_type, bytes)) => {
                request = request.header(hyper::header::CONTENT_TYPE, content_type);
                Full::new(Bytes::from(bytes))
            }
            None => Full::new(Bytes::new()),
        };
        // Only a path with a character that is not allowed in a URI fails here; keelctl escapes what it puts in.
        let request = request.body(body).map_err(|_| ClientError::Refused {
            status: StatusCode::BAD_REQUEST,
            message: format!("{what}: not a valid request path"),
        })?;
        match tokio::time::timeout(read_timeout, sender.send_request(request)).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(source)) => Err(ClientError::Exchange { what, host: self.host.clone(), source }),
            Err(_) => Err(ClientError::ReadTimeout { what, host: self.host.clone(), after: read_timeout }),
        }
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, ClientError> {
        let connect_error = |source| ClientError::Connect { host: self.host.clone(), source };
        match &self.host {
            Host::Unix(path) => handshake(&self.host, UnixStream::connect(path).await.map_err(connect_error)?).await,
            Host::Tcp(address) => {
                handshake(&self.host, TcpStream::connect(address).await.map_err(connect_error)?).await
            }
        }
    }
}

impl Stream<'_> {
    /// The next piece of the body, `None` at its end; with `idle`, waiting longer than that for it is an error
    /// (a follower waits for as long as the server keeps the stream open).
    pub fn next_chunk(&mut self, idle: Option<Duration>) -> Result<Option<Bytes>, ClientError> {
        let host = &self.client.host;
        let what = &self.what;
        let body = &mut self.body;
        self.client.runtime.block_on(async {
            loop {
                let frame = match idle {
                    Some(after) => match tokio::time::timeout(after, body.frame()).await {
                        Ok(frame) => frame,
                        Err(_) => {
                            return Err(ClientError::ReadTimeout { what: what.clone(), host: host.clone(), after })
                        }
                    },
                    None => body.frame().await,
                };
                match frame {
                    None => return Ok(None),
                    Some(Err(source)) => {
                        return Err(ClientError::Exchange { what: what.clone(), host: host.clone(), source })
                    }
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data() {
                            if !data.is_empty() {
                                return Ok(Some(data));
                            }
                        }
                    }
                }
            }
        })
    }

    /// What was asked (`GET /events`), for messages.
    pub fn what(&self) -> &str {
        &self.what
    }
}

/// Splits a stream of JSON lines into lines of at most `limit` bytes each.
pub struct JsonLines<'a> {
    stream: Stream<'a>,
    pending: Vec<u8>,
    limit: usize,
    idle: Option<Duration>,
}

impl<'a> JsonLines<'a> {
    pub fn new(stream: Stream<'a>, limit: usize, idle: Option<Duration>) -> Self {
        JsonLines { stream, pending: Vec::new(), limit, idle }
    }

    /// The next non-empty line, `None` at the end of the stream.
    pub fn next_line(&mut self) -> Result<Option<Vec<u8>>, ClientError> {
        loop {
            if let Some(newline) = self.pending.iter().position(|&byte| byte == b'\n') {
                let mut line: Vec<u8> = self.pending.drain(..=newline).collect();
                line.pop();
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return Ok(Some(line));
            }
            if self.pending.len() > self.limit {
                return Err(ClientError::TooLarge {
                    what: format!("a line of {}", self.stream.what()),
                    limit: self.limit,
                });
            }
            match self.stream.next_chunk(self.idle)? {
                Some(chunk) => self.pending.extend_from_slice(&chunk),
                None if self.pending.iter().all(u8::is_ascii_whitespace) => return Ok(None),
                None => return Ok(Some(std::mem::take(&mut self.pending))),
            }
        }
    }
}

async fn handshake<T>(host: &Host, stream: T) -> Result<SendRequest<Full<Bytes>>, ClientError>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|source| {
        ClientError::Exchange { what: "the HTTP handshake".to_owned(), host: host.clone(), source }
    })?;
    // The connection's errors surface through the request and the body; the task ends with the connection.
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// The whole of `body`, at most [`MAX_BODY`] bytes, each piece within `read_timeout`.
async fn read_bounded(
    host: &Host,
    what: &str,
    mut body: Incoming,
    read_timeout: Duration,
) -> Result<Bytes, ClientError> {
    let mut collected = Vec::new();
    loop {
        let frame = match tokio::time::timeout(read_timeout, body.frame()).await {
            Ok(frame) => frame,
            Err(_) => {
                return Err(ClientError::ReadTimeout { what: what.to_owned(), host: host.clone(), after: read_timeout })
            }
        };
        match frame {
            None => return Ok(Bytes::from(collected)),
            Some(Err(source)) => {
                return Err(ClientError::Exchange { what: what.to_owned(), host: host.clone(), source })
            }
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    if collected.len() + data.len() > MAX_BODY {
                        return Err(ClientError::TooLarge { what: what.to_owned(), limit: MAX_BODY });
                    }
                    collected.extend_from_slice(&data);
                }
            }
        }
    }
}

/// Docker's error reply `{"message": …}` as [`ClientError::Refused`]; a body without one is named by its status.
pub fn refusal(status: StatusCode, body: &[u8]) -> ClientError {
    let message = serde_json::from_slice::<keel_api::docker::ErrorMessage>(body)
        .map(|error| error.message)
        .unwrap_or_else(|_| format!("the server answered {status}"));
    ClientError::Refused { status, message }
}

/// `text` escaped for a URL's query (everything but RFC 3986's unreserved characters).
pub fn query_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            escaped.push(char::from(byte));
        } else {
            escaped.push_str(&format!("%{byte:02X}"));
        }
    }
    escaped
}

/// A container or image reference as one path segment.
pub fn path_escape(text: &str) -> String {
    query_escape(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_address_forms_and_refuses_others() {
        assert_eq!("unix:///run/keel.sock".parse::<Host>().unwrap(), Host::Unix("/run/keel.sock".into()));
        assert_eq!("tcp://127.0.0.1:2375".parse::<Host>().unwrap(), Host::Tcp("127.0.0.1:2375".into()));
        assert_eq!("tcp://[::1]:2375/".parse::<Host>().unwrap(), Host::Tcp("[::1]:2375".into()));
        for bad in ["unix://run/keel.sock", "tcp://host", "tcp://:2375", "http://x:1", "/run/keel.sock"] {
            assert!(bad.parse::<Host>().is_err(), "{bad}");
        }
        assert_eq!(Host::Tcp("h:1".into()).to_string(), "tcp://h:1");
    }

    #[test]
    fn escapes_what_is_not_unreserved() {
        assert_eq!(query_escape("keel/busybox:1"), "keel%2Fbusybox%3A1");
        assert_eq!(query_escape("a-b_c.d~"), "a-b_c.d~");
    }

    #[test]
    fn docker_errors_become_their_message() {
        let error = refusal(StatusCode::NOT_FOUND, br#"{"message": "No such container: x"}"#);
        assert_eq!(error.to_string(), "No such container: x");
        let error = refusal(StatusCode::BAD_GATEWAY, b"<html>");
        assert_eq!(error.to_string(), "the server answered 502 Bad Gateway");
    }
}
