//! Relays keel's own log lines, and containers' stdout and stderr lines, to a syslog receiver.
//!
//! # Background
//! Logs leave the host through syslog (`[syslog] target` in the config: one or several of `udp://`, `tcp://`,
//! `tls://` or `unix://`). The
//! `syslog` crate is not used: it never reconnects and fails when no daemon listens yet, and a receiver that is
//! slow, restarting or gone must never block a container or grow PID 1's memory.
//!
//! # Design
//! Each receiver has its own queue and thread, so one that is away holds back none of the others.
//! [`SyslogRelay::send`] puts a [`Record`] on each receiver's bounded queue (`[syslog] queue` records and at most
//! [`QUEUE_MAX_BYTES`]; when full the oldest record of the APP-NAME holding the most is dropped and counted, so a
//! flooding container loses its own lines, not the others') and returns. One thread per relay owns the socket:
//! it formats each record (RFC 5424, or RFC 3164 where `format` asks, over UDP, TCP and TLS, the streams with
//! octet-counting framing; the BSD local form that `/dev/log` readers parse on a unix socket), writes it (TLS:
//! rustls with ring, the certificate checked against `ca` or Mozilla's roots), and on a connect or write error keeps the record and
//! retries with backoff (100 ms doubling to 10 s, reset by a successful write). Once connected again it first
//! sends one line `keel: syslog relay dropped N messages` for the drops since the last report.
//!
//! # Current limitations
//! A line that a TCP receiver took into its socket buffer just before dying is lost (no application-level acks in
//! syslog). UDP loses silently whatever a dead receiver misses. Messages are cut at 8 KiB (2 KiB for UDP).
//!
//! # Example
//! ```no_run
//! use keel_config::{Facility, SyslogConfig, SyslogDestination, SyslogTarget};
//! use keel_logs::syslog::{Record, Severity, SyslogRelay};
//!
//! let config = SyslogConfig {
//!     targets: vec![SyslogDestination::new(SyslogTarget::Tcp { host: "10.0.0.1".into(), port: 601 })],
//!     facility: Facility(16),
//!     queue: 10_000,
//! };
//! if let Ok(Some(relay)) = SyslogRelay::start(&config, "node-1".into()) {
//!     relay.send(Record::now("web", Severity::Informational, "listening on :80"));
//!     relay.flush(std::time::Duration::from_secs(2));
//! }
//! ```

mod format;
mod queue;
mod relay;
pub(crate) mod timestamp;
mod tls;
mod transport;

pub use format::{structured_data, Record, Severity};
pub use relay::{RelayError, RelayStats, SyslogRelay, QUEUE_MAX_BYTES};
pub use timestamp::rfc3339_millis;
pub use tls::TlsConfigError;
