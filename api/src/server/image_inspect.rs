//! `GET /images/{name}/json`: Docker's ImageInspect of an image in the store, found by its name (with or without
//! `:latest`), its id (the config digest) or a unique prefix of the id; the fields come from its config blob.

use hyper::{Response, StatusCode};
use keel_supervision::StoredImageSummary;
use serde_json::{json, Value};

use super::images::repository;
use super::{error_reply, json, Body, Context};

pub fn inspect(context: &Context, reference: &str) -> Response<Body> {
    let images = context.supervisor.images();
    let Some(image) = find(&images, reference) else {
        return error_reply(StatusCode::NOT_FOUND, &format!("No such image: {reference}"));
    };
    let Some(blob) = context.supervisor.image_config(&image.name) else {
        return error_reply(
            StatusCode::NOT_FOUND,
            &format!("No such image: {reference} (its config is not in the store)"),
        );
    };
    let config: Value = match serde_json::from_slice(&blob) {
        Ok(config) => config,
        Err(error) => {
            return error_reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("image {}: its config is not JSON: {error}", image.name),
            )
        }
    };
    // Every name the store gives this image.
    let same: Vec<&StoredImageSummary> =
        images.iter().filter(|other| other.config_digest == image.config_digest).collect();
    let field = |key: &str| config.get(key).cloned().unwrap_or(Value::Null);
    let text = |key: &str| config.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
    json(
        StatusCode::OK,
        &json!({
            "Id": image.config_digest,
            "RepoTags": same.iter().map(|image| image.name.clone()).collect::<Vec<_>>(),
            "RepoDigests": same
                .iter()
                .map(|image| format!("{}@{}", repository(&image.name), image.manifest_digest))
                .collect::<Vec<_>>(),
            "Parent": "",
            "Comment": text("comment"),
            "Created": text("created"),
            "Author": text("author"),
            "Config": field("config"),
            "Architecture": text("architecture"),
            "Variant": config.get("variant").cloned(),
            "Os": text("os"),
            "Size": image.size,
            "GraphDriver": { "Name": "overlay", "Data": {} },
            "RootFS": {
                "Type": "layers",
                "Layers": config.get("rootfs").and_then(|rootfs| rootfs.get("diff_ids")).cloned().unwrap_or(json!([])),
            },
            "Metadata": { "LastTagTime": "0001-01-01T00:00:00Z" },
        }),
    )
}

/// The image `reference` names: a name, an id, or a unique id prefix (at least 4 digits, as Docker asks).
fn find<'a>(images: &'a [StoredImageSummary], reference: &str) -> Option<&'a StoredImageSummary> {
    let latest = format!("{reference}:latest");
    if let Some(image) = images.iter().find(|image| image.name == reference || image.name == latest) {
        return Some(image);
    }
    let hex = reference.strip_prefix("sha256:").unwrap_or(reference).to_ascii_lowercase();
    if hex.len() < 4 || !hex.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return None;
    }
    let mut matching =
        images.iter().filter(|image| image.config_digest.trim_start_matches("sha256:").starts_with(&hex));
    let first = matching.next()?;
    matching.all(|other| other.config_digest == first.config_digest).then_some(first)
}
