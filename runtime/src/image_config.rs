//! The image's defaults a container starts from: the run-time half of an image config blob (`Env`,
//! `Entrypoint`, `Cmd`, `User`, `WorkingDir`, …), as plain data.
//!
//! The image store's `ImageConfig` keeps only what layer verification needs; the defaults `docker run` takes from
//! the image are read from the same blob by the caller (`keel_supervision::image_run_config`), so the runtime
//! depends neither on the store nor on a JSON parser. The field names are Docker's, for that caller to
//! deserialise into.

use std::collections::BTreeMap;

use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer};

/// The image's defaults for a container, as in the config blob's `config` object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageRunConfig {
    #[serde(default)]
    pub user: String,
    #[serde(default)]
    pub env: Option<Vec<String>>,
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    #[serde(default)]
    pub working_dir: String,
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub stop_signal: String,
    #[serde(default)]
    pub healthcheck: Option<ImageHealthcheck>,
    /// The `VOLUME` paths: the keys of the config's `Volumes` object (its values are always `{}`).
    #[serde(default, deserialize_with = "volume_paths")]
    pub volumes: Vec<String>,
}

/// `{"/data": {}, …}` (or `null`) as its keys.
fn volume_paths<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    let volumes: Option<BTreeMap<String, IgnoredAny>> = Option::deserialize(deserializer)?;
    Ok(volumes.map(|volumes| volumes.into_keys().collect()).unwrap_or_default())
}

/// The image's HEALTHCHECK; durations in nanoseconds, 0 meaning "Docker's default".
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageHealthcheck {
    #[serde(default)]
    pub test: Vec<String>,
    #[serde(default)]
    pub interval: u64,
    #[serde(default)]
    pub timeout: u64,
    #[serde(default)]
    pub start_period: u64,
    #[serde(default)]
    pub start_interval: u64,
    #[serde(default)]
    pub retries: u32,
}
