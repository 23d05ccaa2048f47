//! keel's container images: pulls them from registries, keeps them in an OCI image store, imports preloaded
//! archives, unpacks their layers and collects what no tag holds any more.
//!
//! # Background
//! A keel host runs images it pulled itself or found preloaded in its OS image. Nothing here knows about
//! containers or keel's other crates: the runtime gets layer directories, and the supervision crate turns an
//! image's config into the runtime's plain defaults. `docs/images.md` has the details.
//!
//! # Design
//! The store is an OCI image layout (`skopeo` and `umoci` read it) plus a directory of unpacked layers, one per
//! `diff_id`, named by its 64 hex digits. A pull streams each layer once: the compressed bytes are hashed
//! and written to a temp blob file while they are decompressed, hashed again (the `diff_id`) and extracted into a
//! temp layer directory; both only become visible (renamed) when both digests match. Manifests and configs are
//! written after all layers, and the tag last, so a failed pull never leaves a half image behind.
//!
//! # Current limitations
//! No pushing, no image signatures (cosign), no platform other than linux/amd64, and no
//! locking of the store across processes (`docs/images.md`, "Non-goals").

pub mod archive_import;
pub mod digest;
pub mod extract;
pub mod gc;
pub mod layout;
pub mod progress;
pub mod pull;
pub mod reference;
pub mod registry;
pub mod store;
mod unpack;

pub use archive_import::ImportError;
pub use digest::Digest;
pub use extract::{extract_layer, ExtractError, ExtractOptions, LayerBudget};
pub use gc::{GcError, GcReport};
pub use progress::{NoProgress, ProgressFn, ProgressSink, PullEvent};
pub use pull::{pull_image, PullError, PullOptions, PulledImage};
pub use reference::{ImageReference, ReferenceError};
pub use registry::{BlobReadError, RegistryClient, RegistryError, RegistrySettings, RegistryTimeouts, WithheldReason};
pub use store::{ImageStore, StoreError, StoredImage};
