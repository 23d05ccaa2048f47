//! `GET /images/json`: the images in keel's store, as `docker images` lists them.

use hyper::{Response, StatusCode};
use keel_supervision::StoredImageSummary;
use serde_json::{json, Value};

use super::{json, Body, Context};

pub fn list(context: &Context) -> Response<Body> {
    let images: Vec<Value> = context.supervisor.images().iter().map(|image| summary(image, -1)).collect();
    json(StatusCode::OK, &images)
}

/// Docker's ImageSummary of `image`; `containers` is how many use it (-1: not counted).
pub fn summary(image: &StoredImageSummary, containers: i64) -> Value {
    json!({
        "Id": image.config_digest,
        "ParentId": "",
        "RepoTags": [image.name],
        "RepoDigests": [format!("{}@{}", repository(&image.name), image.manifest_digest)],
        "Created": 0,
        "Size": image.size,
        "SharedSize": -1,
        "Labels": {},
        "Containers": containers,
    })
}

/// `name` without its tag or digest: the tag is what follows the last `:` after the last `/` (a registry's port
/// comes before it).
pub fn repository(name: &str) -> &str {
    let name = name.split_once('@').map_or(name, |(repository, _)| repository);
    let last_part = name.rfind('/').map_or(0, |slash| slash + 1);
    match name[last_part..].rfind(':') {
        Some(colon) => &name[..last_part + colon],
        None => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_drops_tag_and_digest_but_not_a_port() {
        assert_eq!(repository("keel-test/busybox:1"), "keel-test/busybox");
        assert_eq!(repository("localhost:5000/app"), "localhost:5000/app");
        assert_eq!(repository("localhost:5000/app:2@sha256:ab"), "localhost:5000/app");
    }
}
