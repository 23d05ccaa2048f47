//! The registry side of a pull: HTTP client, authentication and manifest types.

pub mod auth;
pub mod client;
pub mod manifest;

pub use client::{BlobStream, FetchedManifest, RegistryClient, RegistryError, RegistrySettings, WithheldReason};
