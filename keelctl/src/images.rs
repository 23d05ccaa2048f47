//! `keelctl images`: the image store (`GET /images/json`) in `docker images`' columns.

use serde_json::Value;

use crate::client::Client;
use crate::output;
use crate::status::text;
use crate::CommandError;

pub fn run(client: &Client, json: bool) -> Result<(), CommandError> {
    let images: Value = client.get_json("/images/json")?;
    if json {
        return Ok(output::json_line(&images)?);
    }
    let mut rows = Vec::new();
    for image in images.as_array().into_iter().flatten() {
        let id = text(&image["Id"]);
        let short_id: String = id.trim_start_matches("sha256:").chars().take(12).collect();
        let size = output::size(image["Size"].as_u64().unwrap_or(0));
        let tags: Vec<String> = image["RepoTags"].as_array().into_iter().flatten().map(text).collect::<Vec<_>>();
        let tags = if tags.is_empty() { vec!["<none>:<none>".to_owned()] } else { tags };
        for tag in tags {
            let (repository, tag) = split_tag(familiar(&tag));
            rows.push(vec![repository.to_owned(), tag.to_owned(), short_id.clone(), size.clone()]);
        }
    }
    Ok(output::print(&output::table(&["REPOSITORY", "TAG", "IMAGE ID", "SIZE"], &rows))?)
}

/// `docker.io/library/busybox` → `busybox`, `docker.io/keel/app` → `keel/app`: Docker Hub's names as people
/// write them (and `docker images` shows them).
fn familiar(reference: &str) -> &str {
    let without_hub = reference.strip_prefix("docker.io/").unwrap_or(reference);
    without_hub.strip_prefix("library/").unwrap_or(without_hub)
}

/// `localhost:5000/app:2` → (`localhost:5000/app`, `2`); no tag → `latest`.
pub fn split_tag(reference: &str) -> (&str, &str) {
    let last_part = reference.rfind('/').map_or(0, |slash| slash + 1);
    match reference[last_part..].rfind(':') {
        Some(colon) => (&reference[..last_part + colon], &reference[last_part + colon + 1..]),
        None => (reference, "latest"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_the_tag_but_not_a_port() {
        assert_eq!(split_tag("keel/busybox:latest"), ("keel/busybox", "latest"));
        assert_eq!(split_tag("localhost:5000/app"), ("localhost:5000/app", "latest"));
        assert_eq!(split_tag("localhost:5000/app:2"), ("localhost:5000/app", "2"));
        assert_eq!(familiar("docker.io/library/busybox:1"), "busybox:1");
        assert_eq!(familiar("docker.io/keel/busybox"), "keel/busybox");
        assert_eq!(familiar("localhost:5000/app"), "localhost:5000/app");
    }
}
