//! Images as the supervision sees them: makes a container's image available (already in the store, or pulled
//! from its registry) and reads the image's defaults for the runtime, which does not know the store.

use std::collections::BTreeMap;
use std::time::SystemTime;

use keel_images::{
    pull_image, ImageReference, ImageStore, NoProgress, ProgressSink, PullError, PullOptions, PulledImage,
    ReferenceError, StoreError, StoredImage,
};
use keel_runtime::ImageRunConfig;
use serde::Deserialize;

use super::events::{EventType, SupervisorEvent};
use super::Shared;

/// The image is neither in the store nor pullable.
#[derive(Debug, thiserror::Error)]
pub enum EnsureImageError {
    #[error("image {reference}: not a valid reference")]
    Reference {
        reference: String,
        #[source]
        source: ReferenceError,
    },
    #[error("image {reference}: not in the store and the pull failed")]
    Pull {
        reference: String,
        #[source]
        source: Box<PullError>,
    },
}

/// A pull asked for through the API failed.
#[derive(Debug, thiserror::Error)]
pub enum PullImageError {
    #[error("invalid reference format: {reference}")]
    Reference {
        reference: String,
        #[source]
        source: ReferenceError,
    },
    #[error("pulling {reference}")]
    Pull {
        reference: String,
        #[source]
        source: Box<PullError>,
    },
}

/// Pulls `reference` unless the store has it complete.
pub(crate) fn ensure_image(shared: &Shared, reference: &str) -> Result<(), EnsureImageError> {
    let parsed: ImageReference =
        reference.parse().map_err(|source| EnsureImageError::Reference { reference: reference.to_owned(), source })?;
    if shared.store.is_complete(&parsed) {
        return Ok(());
    }
    log::info!("pulling {parsed}");
    pull(shared, &parsed, &NoProgress)
        .map(drop)
        .map_err(|source| EnsureImageError::Pull { reference: reference.to_owned(), source })
}

/// Pulls `reference` from its registry into the store, reporting to `progress`, and announces it (`docker events`).
pub(crate) fn pull(
    shared: &Shared,
    reference: &ImageReference,
    progress: &dyn ProgressSink,
) -> Result<PulledImage, Box<PullError>> {
    let registry = shared.registry();
    let pulled =
        pull_image(&registry, &shared.store, reference, &PullOptions::default(), progress).map_err(Box::new)?;
    let name = reference.to_string();
    let repository =
        name.rsplit_once(':').filter(|(_, tag)| !tag.contains('/')).map_or(name.as_str(), |(repo, _)| repo);
    shared.events.publish(SupervisorEvent {
        kind: EventType::Image,
        action: "pull".to_owned(),
        actor: name.clone(),
        attributes: BTreeMap::from([("name".to_owned(), repository.to_owned())]),
        time: SystemTime::now(),
    });
    Ok(pulled)
}

/// Why an image's run-time defaults could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ImageConfigError {
    #[error("image {reference}: reading its config blob")]
    ReadBlob {
        reference: String,
        #[source]
        source: StoreError,
    },
    #[error("image {reference}: parsing its config blob")]
    Parse {
        reference: String,
        #[source]
        source: serde_json::Error,
    },
}

/// Reads `image`'s config blob from `store` into the defaults the runtime takes (`Env`, `Cmd`, `User`, …).
pub fn image_run_config(store: &ImageStore, image: &StoredImage) -> Result<ImageRunConfig, ImageConfigError> {
    let bytes = store
        .read_blob(&image.manifest.config.digest)
        .map_err(|source| ImageConfigError::ReadBlob { reference: image.reference.clone(), source })?;
    parse_run_config(&bytes).map_err(|source| ImageConfigError::Parse { reference: image.reference.clone(), source })
}

#[derive(Deserialize)]
struct ConfigBlob {
    #[serde(default)]
    config: Option<ImageRunConfig>,
}

/// Parses a config blob; an image without a `config` object has empty defaults.
fn parse_run_config(bytes: &[u8]) -> Result<ImageRunConfig, serde_json::Error> {
    let blob: ConfigBlob = serde_json::from_slice(bytes)?;
    Ok(blob.config.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_docker_style_config() {
        let json = br#"{"architecture":"amd64","config":{"Env":["PATH=/bin","A=1"],"Cmd":["sh"],
            "WorkingDir":"/srv","User":"nobody","Healthcheck":{"Test":["CMD","true"],"Interval":1000000000},
            "Volumes":{"/var/lib/db":{},"/data":{}}},
            "rootfs":{"diff_ids":[]}}"#;
        let config = parse_run_config(json).unwrap();
        assert_eq!(config.env.unwrap(), ["PATH=/bin", "A=1"]);
        assert_eq!(config.cmd.unwrap(), ["sh"]);
        assert_eq!(config.entrypoint, None);
        assert_eq!(config.working_dir, "/srv");
        assert_eq!(config.healthcheck.unwrap().interval, 1_000_000_000);
        assert_eq!(config.volumes, ["/data", "/var/lib/db"]);
        let null_volumes = parse_run_config(br#"{"config":{"Volumes":null}}"#).unwrap();
        assert!(null_volumes.volumes.is_empty());
        assert_eq!(parse_run_config(b"{}").unwrap(), ImageRunConfig::default());
    }
}
