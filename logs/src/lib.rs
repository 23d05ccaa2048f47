//! keel's log plumbing: where container output lines and keel's own log lines go once they are read.
//!
//! # Background
//! A container's stdout and stderr are read line by line, kept in per-container files for `docker logs`, shown on
//! the console and relayed to syslog; PID 1's own lines take the same relay. Both PID 1 (`keel-init`) and the
//! supervision crate need this, and neither may depend on the other for it, so it is a crate of its own at the
//! bottom of the graph, next to `keel-config`.
//!
//! # Design
//! [`output`] turns a pipe into lines (cut at 16 KiB by [`pieces`] as they arrive) and hands what each read
//! brought, as one [`LogLines`] (one buffer, so a line costs no allocation on its way and a sink takes its lock
//! once per read), to every [`LogSink`]. [`json_file`] is the sink that keeps them in Docker's json-file format,
//! rotated by size, and the reader `docker logs` is served from. The [`LogRouter`] is the sink, and the `log`
//! logger, that PID 1 and `keel supervise` share: it sends keel's lines and containers' lines to the [`Console`]
//! (a bounded queue and a writer thread) and to [`syslog`], the relay (a bounded queue and one thread that owns
//! the socket), so neither a slow console nor a slow receiver ever blocks a container or PID 1.
//! [`error_chain()`] is the one-line form of an error and its causes that every log line and container state uses;
//! it lives here because every crate that logs depends on this one, and the crates that log nothing (images,
//! runtime) need not. [`kmsg`] reads the kernel's log records for PID 1 to relay.
//!
//! # Current limitations
//! No journald or other non-syslog transports; the json-file reader reads a whole non-`tail` answer into memory.

mod append;
pub mod batch;
pub mod console;
pub mod error_chain;
pub mod json_file;
pub mod kmsg;
pub mod output;
pub mod pieces;
pub mod router;
pub mod syslog;
pub mod timeline;

pub use batch::{LogLine, LogLines};
pub use console::Console;
pub use error_chain::error_chain;
pub use output::{console_line, console_line_within, spawn_reader, LogRecord, LogSink, LogStream};
pub use router::LogRouter;
