//! Parses image references and normalises them exactly as Docker does (`alpine` → `docker.io/library/alpine:latest`).

use std::fmt;
use std::str::FromStr;

use super::digest::{Digest, DigestError};

const DOCKER_HUB: &str = "docker.io";
/// Docker Hub's registry API lives on another host than the name people type.
const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";

/// Why a reference was not accepted; each variant carries the text as typed.
#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    #[error("image reference {reference:?} is empty")]
    Empty { reference: String },
    #[error("image reference {reference:?}: invalid repository path {path:?} (lowercase letters, digits, `.`, `_`, `-` and `/` only)")]
    InvalidRepository { reference: String, path: String },
    #[error("image reference {reference:?}: invalid tag {tag:?}")]
    InvalidTag { reference: String, tag: String },
    #[error("image reference {reference:?}: invalid registry host {host:?}")]
    InvalidHost { reference: String, host: String },
    #[error("image reference {reference:?}: invalid digest")]
    InvalidDigest {
        reference: String,
        #[source]
        source: DigestError,
    },
}

/// A fully normalised image reference: registry host, repository path, and a tag and/or a digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageReference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl ImageReference {
    /// The registry as people name it (`docker.io`, `localhost:5000`); the key for per-registry settings.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The host (and port) the registry API answers on: `registry-1.docker.io` for Docker Hub.
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API_HOST
        } else {
            &self.registry
        }
    }

    /// The repository path inside the registry (`library/alpine`).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// What to ask the registry's manifest endpoint for: the pinned digest if there is one, else the tag.
    pub fn manifest_selector(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(digest), _) => digest.to_string(),
            (None, Some(tag)) => tag.clone(),
            (None, None) => "latest".to_string(),
        }
    }

    /// The same image named by `name:tag` with another tag; used for preloaded archives that only carry a tag.
    pub fn with_tag(&self, tag: &str) -> Result<ImageReference, ReferenceError> {
        format!("{}/{}:{tag}", self.registry, self.repository).parse()
    }
}

impl FromStr for ImageReference {
    type Err = ReferenceError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.is_empty() {
            return Err(ReferenceError::Empty { reference: text.to_string() });
        }
        let (name_and_tag, digest) = match text.split_once('@') {
            Some((rest, digest)) => {
                let digest = digest
                    .parse::<Digest>()
                    .map_err(|source| ReferenceError::InvalidDigest { reference: text.to_string(), source })?;
                (rest, Some(digest))
            }
            None => (text, None),
        };
        // A colon after the last slash starts the tag; one before it belongs to a host:port.
        let last_slash = name_and_tag.rfind('/').map_or(0, |index| index + 1);
        let (name, tag) = match name_and_tag[last_slash..].find(':') {
            Some(colon) => {
                let split = last_slash + colon;
                (&name_and_tag[..split], Some(name_and_tag[split + 1..].to_string()))
            }
            None => (name_and_tag, None),
        };
        let (registry, mut repository) = match name.split_once('/') {
            Some((first, rest)) if looks_like_host(first) => (first.to_string(), rest.to_string()),
            _ => (DOCKER_HUB.to_string(), name.to_string()),
        };
        if registry == "index.docker.io" || registry == DOCKER_HUB_API_HOST {
            return format!("{DOCKER_HUB}/{}", &text[registry.len() + 1..]).parse();
        }
        if registry == DOCKER_HUB && !repository.contains('/') {
            repository = format!("library/{repository}");
        }
        if !valid_host(&registry) {
            return Err(ReferenceError::InvalidHost { reference: text.to_string(), host: registry });
        }
        if !valid_repository(&repository) {
            return Err(ReferenceError::InvalidRepository { reference: text.to_string(), path: repository });
        }
        if let Some(tag) = &tag {
            if !valid_tag(tag) {
                return Err(ReferenceError::InvalidTag { reference: text.to_string(), tag: tag.clone() });
            }
        }
        let tag = if tag.is_none() && digest.is_none() { Some("latest".to_string()) } else { tag };
        Ok(ImageReference { registry, repository, tag, digest })
    }
}

impl fmt::Display for ImageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// Docker's rule: the first path component is a registry if it has a dot or a port, or is `localhost`.
fn looks_like_host(component: &str) -> bool {
    component.contains('.') || component.contains(':') || component == "localhost"
}

fn valid_host(host: &str) -> bool {
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    };
    let name_ok = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    let port_ok = port.is_none_or(|port| port.parse::<u16>().is_ok());
    name_ok && port_ok
}

/// Path components are lowercase alphanumerics joined by `.`, `_`, `__` or runs of `-`.
fn valid_repository(path: &str) -> bool {
    path.split('/').all(|component| {
        let bytes = component.as_bytes();
        let edge_ok = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        edge_ok(bytes.first())
            && edge_ok(bytes.last())
            && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'))
            && !component.contains("..")
            && !component.contains("___")
    })
}

fn valid_tag(tag: &str) -> bool {
    let bytes = tag.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normalised(text: &str) -> String {
        text.parse::<ImageReference>().unwrap().to_string()
    }

    const HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn bare_names_go_to_docker_hub_library_with_latest() {
        assert_eq!(normalised("alpine"), "docker.io/library/alpine:latest");
        assert_eq!(normalised("alpine:3.20"), "docker.io/library/alpine:3.20");
        assert_eq!(normalised("library/alpine"), "docker.io/library/alpine:latest");
        assert_eq!(normalised("docker.io/alpine"), "docker.io/library/alpine:latest");
        assert_eq!(normalised("index.docker.io/library/alpine:1"), "docker.io/library/alpine:1");
        assert_eq!(normalised("registry-1.docker.io/alpine"), "docker.io/library/alpine:latest");
    }

    #[test]
    fn user_repositories_on_docker_hub_keep_their_namespace() {
        assert_eq!(normalised("grafana/grafana:11.0.0"), "docker.io/grafana/grafana:11.0.0");
        assert_eq!(normalised("a/b/c"), "docker.io/a/b/c:latest");
    }

    #[test]
    fn hosts_are_recognised_by_dot_port_or_localhost() {
        assert_eq!(normalised("localhost:5000/x"), "localhost:5000/x:latest");
        assert_eq!(normalised("localhost/x:1"), "localhost/x:1");
        assert_eq!(normalised("ghcr.io/org/app:v1"), "ghcr.io/org/app:v1");
        assert_eq!(normalised("127.0.0.1:5000/a/b:t"), "127.0.0.1:5000/a/b:t");
        let reference: ImageReference = "quay.io/x/y".parse().unwrap();
        assert_eq!(reference.registry(), "quay.io");
        assert_eq!(reference.api_host(), "quay.io");
        assert_eq!(reference.repository(), "x/y");
    }

    #[test]
    fn docker_hub_talks_to_registry_1() {
        let reference: ImageReference = "alpine".parse().unwrap();
        assert_eq!(reference.registry(), "docker.io");
        assert_eq!(reference.api_host(), "registry-1.docker.io");
        assert_eq!(reference.repository(), "library/alpine");
        assert_eq!(reference.manifest_selector(), "latest");
    }

    #[test]
    fn digests_pin_and_suppress_the_default_tag() {
        let text = format!("alpine@sha256:{HEX}");
        let reference: ImageReference = text.parse().unwrap();
        assert_eq!(reference.tag(), None);
        assert_eq!(reference.manifest_selector(), format!("sha256:{HEX}"));
        assert_eq!(reference.to_string(), format!("docker.io/library/alpine@sha256:{HEX}"));
        let both: ImageReference = format!("localhost:5000/x:1@sha256:{HEX}").parse().unwrap();
        assert_eq!(both.tag(), Some("1"));
        assert_eq!(both.manifest_selector(), format!("sha256:{HEX}"));
    }

    #[test]
    fn invalid_references_are_refused() {
        for bad in
            ["", "Alpine", "alpine:", "alpine:-x", "a//b", "alpine@sha256:abc", "x@md5:00", "-a", "a-", "host:99999/x"]
        {
            assert!(bad.parse::<ImageReference>().is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn with_tag_replaces_the_tag() {
        let reference: ImageReference = "nginx".parse().unwrap();
        assert_eq!(reference.with_tag("1.27").unwrap().to_string(), "docker.io/library/nginx:1.27");
    }
}
