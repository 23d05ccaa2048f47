//! `GET /images/json`: the images in keel's store, as `docker images` lists them.

use hyper::{Response, StatusCode};
use serde_json::json;

use super::{json, Body, Context};

pub fn list(context: &Context) -> Response<Body> {
    let images: Vec<serde_json::Value> = context
        .supervisor
        .images()
        .into_iter()
        .map(|image| {
            let repository = image.name.rsplit_once('@').map_or(image.name.as_str(), |(name, _)| name);
            json!({
                "Id": image.config_digest,
                "ParentId": "",
                "RepoTags": [image.name],
                "RepoDigests": [format!("{}@{}", repository.rsplit_once(':').map_or(repository, |(name, _)| name), image.manifest_digest)],
                "Created": 0,
                "Size": image.size,
                "SharedSize": -1,
                "Labels": {},
                "Containers": -1,
            })
        })
        .collect();
    json(StatusCode::OK, &images)
}
