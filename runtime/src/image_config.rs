//! Parses the run-time half of an image config blob (`Env`, `Entrypoint`, `Cmd`, `User`, `WorkingDir`, …).
//!
//! The image store's `ImageConfig` keeps only what layer verification needs; the container runtime reads the same
//! blob again for the defaults `docker run` takes from the image. Reading the blob out of the store is the
//! caller's job (`keel_supervision::image_run_config`): the runtime does not depend on the store.

use std::collections::BTreeMap;

use serde::Deserialize;

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
    pub retries: u32,
}

#[derive(Deserialize)]
struct ConfigBlob {
    #[serde(default)]
    config: Option<ImageRunConfig>,
}

impl ImageRunConfig {
    /// Parses a config blob; an image without a `config` object has empty defaults.
    pub fn parse(bytes: &[u8]) -> Result<ImageRunConfig, serde_json::Error> {
        let blob: ConfigBlob = serde_json::from_slice(bytes)?;
        Ok(blob.config.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_docker_style_config() {
        let json = br#"{"architecture":"amd64","config":{"Env":["PATH=/bin","A=1"],"Cmd":["sh"],
            "WorkingDir":"/srv","User":"nobody","Healthcheck":{"Test":["CMD","true"],"Interval":1000000000}},
            "rootfs":{"diff_ids":[]}}"#;
        let config = ImageRunConfig::parse(json).unwrap();
        assert_eq!(config.env.unwrap(), ["PATH=/bin", "A=1"]);
        assert_eq!(config.cmd.unwrap(), ["sh"]);
        assert_eq!(config.entrypoint, None);
        assert_eq!(config.working_dir, "/srv");
        assert_eq!(config.healthcheck.unwrap().interval, 1_000_000_000);
        assert_eq!(ImageRunConfig::parse(b"{}").unwrap(), ImageRunConfig::default());
    }
}
