//! The HTTP/1.1 server on the API socket: hyper on a single-threaded tokio runtime of its own thread, answering
//! from the supervisor's snapshots ([`keel_supervision::SupervisorHandle`] reads never wait on writers).
//!
//! Bounds, because every client is treated as hostile: at most [`MAX_CONNECTIONS`] at once (a newcomer takes the
//! place of the longest idle one, see `connections.rs`), idle connections closed after [`IDLE_TIMEOUT`], request
//! headers within [`MAX_HEADER_BYTES`] and [`HEADER_TIMEOUT`], request bodies read only within a bound per
//! endpoint (`body.rs`). Calls that wait on a container (stop, restart) run on the runtime's blocking pool, each
//! bounded by the supervisor.

mod body;
mod connections;
mod containers;
mod disk_usage;
mod events;
mod filters;
pub mod host;
mod image_inspect;
mod images;
mod keel_config;
mod logs;
mod power;
mod pull;
mod query;
mod routes;
mod stats;
mod system;
mod top;
mod update;

pub use update::{StartedInstall, UpdateControl, UpdateRefusal};

use std::convert::Infallible;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use keel_supervision::SupervisorHandle;
use tokio::sync::watch;

use crate::docker::ErrorMessage;
use connections::{Connections, GuardedBody};

pub use connections::{IDLE_TIMEOUT, MAX_CONNECTIONS};
/// The most a request's line and headers may take (hyper's buffer).
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// How long a client has to send its request's headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Who may use the socket: its mode and, if set, its group.
#[derive(Debug, Clone, Copy)]
pub struct SocketAccess {
    pub mode: u32,
    pub group: Option<u32>,
}

/// What the API reaches of the host besides the supervisor; `Default` is nothing (keel's host endpoints answer
/// that there is no host).
#[derive(Default, Clone)]
pub struct ApiHooks {
    /// PID 1 or `keel supervise`: config, power, the relay's counters.
    pub host: Option<Arc<dyn host::HostControl>>,
    /// PID 1's updates; `None` under `keel supervise` (no slots).
    pub update: Option<Arc<dyn UpdateControl>>,
}

/// What the handlers share.
pub(crate) struct Context {
    pub supervisor: Arc<SupervisorHandle>,
    /// keel's version, for `/version` and `/info`.
    pub version: String,
    pub hooks: ApiHooks,
    /// Held by a config PUT from storing the generation to the end of its reconciliation.
    pub config_lock: tokio::sync::Mutex<()>,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ApiServerError {
    #[error("cannot listen on the API socket {path}")]
    Bind {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot set the owner or mode of the API socket {path}")]
    Access {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot listen on tcp://{address} for the API")]
    BindTcp {
        address: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the API thread")]
    Thread(#[source] std::io::Error),
}

/// The running server; [`ApiServer::stop`] (or dropping it) closes the socket and every connection.
pub struct ApiServer {
    stop: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
    path: PathBuf,
}

impl ApiServer {
    /// Listens on `path` (a stale socket there is replaced), and on `tcp` when given, and serves on a thread of
    /// its own.
    pub fn start(
        path: &Path,
        access: SocketAccess,
        tcp: Option<std::net::SocketAddr>,
        supervisor: Arc<SupervisorHandle>,
        version: &str,
        hooks: ApiHooks,
    ) -> Result<ApiServer, ApiServerError> {
        let bind_error = |source| ApiServerError::Bind { path: path.to_owned(), source };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(bind_error)?;
        }
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(bind_error(error)),
        }
        let listener = std::os::unix::net::UnixListener::bind(path).map_err(bind_error)?;
        listener.set_nonblocking(true).map_err(bind_error)?;
        let access_error = |source| ApiServerError::Access { path: path.to_owned(), source };
        if let Some(group) = access.group {
            nix::unistd::chown(path, None, Some(nix::unistd::Gid::from_raw(group)))
                .map_err(|errno| access_error(std::io::Error::from(errno)))?;
        }
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(access.mode)).map_err(access_error)?;
        let tcp = match tcp {
            Some(address) => {
                let listener = std::net::TcpListener::bind(address)
                    .map_err(|source| ApiServerError::BindTcp { address, source })?;
                listener.set_nonblocking(true).map_err(|source| ApiServerError::BindTcp { address, source })?;
                // As dockerd's 2375: anyone who reaches it controls the host's containers.
                log::warn!("API on tcp://{address} too: plain HTTP without authentication, for trusted networks only");
                Some(listener)
            }
            None => None,
        };
        let context = Arc::new(Context {
            supervisor,
            version: version.to_owned(),
            hooks,
            config_lock: tokio::sync::Mutex::new(()),
        });
        let (stop, stopped) = watch::channel(false);
        let listeners = Listeners { unix: listener, tcp };
        let thread = std::thread::Builder::new()
            .name("api".into())
            .spawn(move || serve(listeners, context, stopped))
            .map_err(ApiServerError::Thread)?;
        Ok(ApiServer { stop, thread: Some(thread), path: path.to_owned() })
    }

    /// Closes the socket and every connection, and waits for the server's thread.
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        let _ = self.stop.send(true);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.shut_down();
    }
}

fn serve(listeners: Listeners, context: Arc<Context>, stopped: watch::Receiver<bool>) {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().max_blocking_threads(16).build() {
        Ok(runtime) => runtime,
        Err(error) => {
            log::error!("API: cannot start its runtime: {error}");
            return;
        }
    };
    runtime.block_on(async move {
        let slots = Arc::new(Connections::default());
        let unix = match tokio::net::UnixListener::from_std(listeners.unix) {
            Ok(listener) => listener,
            Err(error) => {
                log::error!("API: cannot use the socket: {error}");
                return;
            }
        };
        if let Some(tcp) = listeners.tcp {
            match tokio::net::TcpListener::from_std(tcp) {
                Ok(tcp) => {
                    let (context, slots, stopped) = (Arc::clone(&context), Arc::clone(&slots), stopped.clone());
                    tokio::spawn(async move {
                        accept_loop(|| async { tcp.accept().await.map(|(stream, _)| stream) }, context, slots, stopped)
                            .await
                    });
                }
                Err(error) => log::error!("API: cannot use the TCP listener: {error}"),
            }
        }
        accept_loop(|| async { unix.accept().await.map(|(stream, _)| stream) }, context, slots, stopped).await;
    });
}

/// Accepts connections from `accept` and serves each on a task of its own, within the shared connection slots,
/// until the server stops.
async fn accept_loop<S, F, Fut>(
    accept: F,
    context: Arc<Context>,
    slots: Arc<Connections>,
    mut stopped: watch::Receiver<bool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = std::io::Result<S>>,
{
    loop {
        let accepted = tokio::select! {
            accepted = accept() => accepted,
            _ = stopped.changed() => return,
        };
        let stream = match accepted {
            Ok(stream) => stream,
            Err(error) => {
                log::warn!("API: accept: {error}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Every place busy with a request: closed at once (dropping the stream).
        let Some(place) = slots.admit() else { continue };
        let context = Arc::clone(&context);
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            let activity = Arc::clone(&place.activity);
            let service = hyper::service::service_fn(move |request| {
                let context = Arc::clone(&context);
                let guard = activity.begin();
                async move {
                    let response = routes::handle(&context, request).await;
                    Ok::<_, Infallible>(response.map(|body| GuardedBody::new(body, guard)))
                }
            });
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT).max_buf_size(MAX_HEADER_BYTES);
            let connection = http.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = stopped.changed() => {}
                _ = place.activity.closing() => {}
            }
            drop(place);
        });
    }
}

/// The sockets the server listens on.
struct Listeners {
    unix: std::os::unix::net::UnixListener,
    tcp: Option<std::net::TcpListener>,
}

/// A reply's body: whole, or a stream (`logs -f`) fed through a small bounded channel, so that a slow client
/// holds back only its own producer.
pub(crate) type Body = BoxBody<Bytes, Infallible>;

/// A streamed reply's body, and the sender that feeds it (dropping the sender ends the body). At most
/// [`STREAM_CHUNKS`] chunks wait for a slow client.
pub(crate) fn stream_body() -> (tokio::sync::mpsc::Sender<Bytes>, Body) {
    let (sender, receiver) = tokio::sync::mpsc::channel::<Bytes>(STREAM_CHUNKS);
    let frames = futures_util::stream::unfold(receiver, |mut receiver| async move {
        let chunk = receiver.recv().await?;
        Some((Ok::<_, Infallible>(Frame::data(chunk)), receiver))
    });
    (sender, StreamBody::new(frames).boxed())
}

/// Chunks a streamed reply may have waiting for its client.
const STREAM_CHUNKS: usize = 8;

/// A JSON reply.
pub(crate) fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(bytes) => reply(status, "application/json", bytes),
        Err(error) => error_reply(StatusCode::INTERNAL_SERVER_ERROR, &format!("encoding the reply: {error}")),
    }
}

/// A refusal: the status and message of an error reply.
pub(crate) struct Refusal {
    pub status: StatusCode,
    pub message: String,
}

impl Refusal {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Refusal {
        Refusal { status, message: message.into() }
    }

    pub fn reply(self) -> Response<Body> {
        error_reply(self.status, &self.message)
    }
}

/// Docker's error shape, `{"message": …}`.
pub(crate) fn error_reply(status: StatusCode, message: &str) -> Response<Body> {
    let body = serde_json::to_vec(&ErrorMessage { message: message.to_owned() }).unwrap_or_default();
    reply(status, "application/json", body)
}

pub(crate) fn reply(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body)).boxed());
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response.headers_mut().insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

/// 204 No Content.
pub(crate) fn no_content() -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::new()).boxed());
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

pub(crate) type ApiRequest = Request<Incoming>;
