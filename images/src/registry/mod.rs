//! The registry side of a pull: HTTP client, deadlines and retries, authentication and manifest types.

pub mod auth;
pub mod blob_reader;
pub mod client;
pub mod manifest;
pub mod timeouts;

pub use blob_reader::BlobReadError;
pub use client::{BlobStream, FetchedManifest, RegistryClient, RegistryError, RegistrySettings, WithheldReason};
pub use timeouts::RegistryTimeouts;
