//! Images: registry pulls, the OCI image store, preloaded archives, layer unpacking and garbage collection.
//!
//! # Design
//! The store is an OCI image layout (`skopeo` and `umoci` read it) plus a directory of unpacked layers, one per
//! `diff_id`, named by its first 12 hex digits. A pull streams each layer once: the compressed bytes are hashed
//! and written to a temp blob file while they are decompressed, hashed again (the `diff_id`) and extracted into a
//! temp layer directory; both only become visible (renamed) when both digests match. Manifests and configs are
//! written after all layers, and the tag last, so a failed pull never leaves a half image behind.

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
pub use extract::{extract_layer, ExtractError, ExtractOptions};
pub use gc::{GcError, GcReport};
pub use progress::{NoProgress, ProgressFn, ProgressSink, PullEvent};
pub use pull::{pull_image, PullError, PullOptions, PulledImage};
pub use reference::{ImageReference, ReferenceError};
pub use registry::{RegistryClient, RegistryError, RegistrySettings};
pub use store::{ImageStore, StoreError, StoredImage};
