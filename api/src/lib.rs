//! keel's API: what the server on the API socket (`/run/keel.sock` under PID 1, `DIR/keel.sock` under
//! `keel supervise`) and its clients share.
//!
//! [`docker`] holds the Docker Engine API's JSON shapes for the part of the API the stock `docker` CLI uses, so that
//! `docker ps`, `docker inspect` and `docker logs` work against a keel host; [`ids`] gives each declared container
//! the 64-hex id Docker clients expect. With the `server` feature, [`server`] is the HTTP/1.1 server itself
//! (hyper on a tokio runtime of its own), answering from the supervisor's snapshots so that a slow or hostile client
//! costs nothing but its own connection.

pub mod docker;
pub mod ids;
#[cfg(feature = "server")]
pub mod server;
pub mod update;

/// The Docker Engine API version the server speaks (the `docker` CLI 28 negotiates down to it; newer CLIs refuse
/// anything below 1.44).
pub const DOCKER_API_VERSION: &str = "1.44";
/// The oldest version a client may ask for in a `/v1.NN/` path.
pub const DOCKER_MIN_API_VERSION: &str = "1.24";
