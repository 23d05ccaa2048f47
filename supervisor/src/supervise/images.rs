//! Makes a container's image available: already in the store, or pulled from its registry.

use crate::image::{pull_image, ImageReference, NoProgress, PullError, PullOptions, ReferenceError};

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

/// Pulls `reference` unless the store has it complete.
pub(crate) fn ensure_image(shared: &Shared, reference: &str) -> Result<(), EnsureImageError> {
    let parsed: ImageReference =
        reference.parse().map_err(|source| EnsureImageError::Reference { reference: reference.to_owned(), source })?;
    if shared.store.is_complete(&parsed) {
        return Ok(());
    }
    log::info!("pulling {parsed}");
    let registry = shared.registry();
    pull_image(&registry, &shared.store, &parsed, &PullOptions::default(), &NoProgress)
        .map(drop)
        .map_err(|source| EnsureImageError::Pull { reference: reference.to_owned(), source: Box::new(source) })
}
