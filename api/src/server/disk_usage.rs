//! `GET /system/df`: what images, containers' writable layers and named volumes take on disk, as `docker system df`
//! shows it. Directory trees are walked on the blocking pool, each within [`MAX_ENTRIES`] entries (a container's
//! writable layer is the container's to fill: past the bound the figure is a lower bound).

use std::path::Path;

use hyper::{Response, StatusCode};
use keel_supervision::machine::State;
use serde_json::json;

use super::{error_reply, json, Body, Context};
use crate::ids::container_id;

/// The most entries one tree walk visits.
const MAX_ENTRIES: u64 = 1_000_000;

pub async fn df(context: &Context) -> Response<Body> {
    let supervisor = std::sync::Arc::clone(&context.supervisor);
    let usage = tokio::task::spawn_blocking(move || {
        let statuses = supervisor.status();
        let images: Vec<serde_json::Value> = supervisor
            .images()
            .iter()
            .map(|image| {
                let users = statuses
                    .iter()
                    .filter(|status| status.image_digest.as_deref() == Some(&image.manifest_digest))
                    .count();
                super::images::summary(image, i64::try_from(users).unwrap_or(i64::MAX))
            })
            .collect();
        let layers_size: u64 = images.iter().filter_map(|image| image["Size"].as_u64()).sum();
        let containers: Vec<serde_json::Value> = statuses
            .iter()
            .map(|status| {
                json!({
                    "Id": container_id(&status.name), "Names": [format!("/{}", status.name)], "Image": status.image,
                    "ImageID": status.image_digest.clone().unwrap_or_default(), "Command": "", "Created": 0,
                    "State": status.status, "Status": status.status,
                    "SizeRw": tree_size(&supervisor.writable_layer(&status.name)), "SizeRootFs": 0,
                    "Labels": status.labels, "Mounts": [],
                    "Running": status.state == State::Running,
                })
            })
            .collect();
        let volumes: Vec<serde_json::Value> = std::fs::read_dir(supervisor.volumes_dir())
            .into_iter()
            .flatten()
            .flatten()
            .map(|entry| {
                let name = entry.file_name().to_string_lossy().into_owned();
                json!({
                    "Name": name, "Driver": "local", "Mountpoint": entry.path().display().to_string(), "Scope": "local",
                    "Labels": {}, "Options": {}, "UsageData": {"Size": tree_size(&entry.path()), "RefCount": -1},
                })
            })
            .collect();
        json!({"LayersSize": layers_size, "Images": images, "Containers": containers, "Volumes": volumes, "BuildCache": []})
    })
    .await;
    match usage {
        Ok(usage) => json(StatusCode::OK, &usage),
        Err(error) => error_reply(StatusCode::INTERNAL_SERVER_ERROR, &format!("measuring disk usage failed: {error}")),
    }
}

/// Bytes allocated to the regular files under `root` (hard links counted once per link), without following
/// symlinks or leaving the filesystem, within [`MAX_ENTRIES`].
fn tree_size(root: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(top) = std::fs::symlink_metadata(root) else { return 0 };
    let device = top.dev();
    let mut total = 0u64;
    let mut visited = 0u64;
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            visited += 1;
            if visited > MAX_ENTRIES {
                return total;
            }
            let Ok(metadata) = entry.metadata() else { continue };
            if metadata.is_dir() && metadata.dev() == device {
                pending.push(entry.path());
            } else if metadata.is_file() {
                total = total.saturating_add(metadata.len());
            }
        }
    }
    total
}
