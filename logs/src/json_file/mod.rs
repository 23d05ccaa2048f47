//! Per-container log files in Docker's `json-file` format: the sink that writes them and the reader that serves them.
//!
//! One file per container, `<containers>/<name>/<name>-json.log`, one JSON object a line
//! (`{"log":"hello\n","stream":"stdout","time":"2026-11-29T20:47:07.123456789Z"}`), rotated by size to
//! `<name>-json.log.1`, `.2`, … as Docker does. [`JsonFileSink`] writes them on one thread behind a bounded queue;
//! [`LogFiles`] reads them back with `docker logs` semantics (tail, since, until, streams, follow).

mod entry;
mod lines;
mod reader;
mod time;
mod writer;

use std::path::{Path, PathBuf};

pub use entry::{decode, encode, MAX_ENTRY};
pub use reader::{Follower, LogFiles, LogQuery};
pub use time::{parse_rfc3339, rfc3339_nanos};
pub use writer::{JsonFileSink, LogLimits, WriterCounters};

/// `<containers>/<name>/<name>-json.log`.
pub fn current_file(containers_dir: &Path, name: &str) -> PathBuf {
    containers_dir.join(name).join(format!("{name}-json.log"))
}

/// The `index`th rotated file (`index` ≥ 1): `<name>-json.log.<index>`; 0 is the current file.
pub fn rotated_file(containers_dir: &Path, name: &str, index: u32) -> PathBuf {
    if index == 0 {
        return current_file(containers_dir, name);
    }
    containers_dir.join(name).join(format!("{name}-json.log.{index}"))
}
