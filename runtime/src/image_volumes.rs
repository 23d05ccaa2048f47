//! Names and places the anonymous volumes a container gets for its image's `VOLUME`s, as `docker run` does.
//!
//! Docker gives each image `VOLUME` without a mount of the container's own at that path a new volume, filled from
//! the image like a named one. Docker names it at random and keeps it with the container; keel names it after the
//! container and the path (`<container>-<hash of the path>` under the volumes directory), so the same container
//! finds the same volume again after its definition or its image changed and its writable layer was recreated.

/// An image `VOLUME` that gets an anonymous volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageVolume {
    /// The directory name under the volumes directory.
    pub name: String,
    /// The cleaned absolute path in the container.
    pub target: String,
}

/// The anonymous volumes for `image_volumes` (the image config's `Volumes` keys) of container `container`: each
/// path cleaned (a relative one is taken from the root, as Docker resolves it), without `/` itself, duplicates, and
/// the paths the config already mounts something on (`mounted`).
pub fn anonymous_volumes(container: &str, image_volumes: &[String], mounted: &[&str]) -> Vec<ImageVolume> {
    let mounted: Vec<String> = mounted.iter().map(|target| clean(target)).collect();
    let mut volumes: Vec<ImageVolume> = Vec::new();
    for path in image_volumes {
        let target = clean(path);
        if target == "/" || mounted.contains(&target) || volumes.iter().any(|volume| volume.target == target) {
            continue;
        }
        volumes.push(ImageVolume { name: anonymous_volume_name(container, &target), target });
    }
    volumes
}

/// `<container>-<16 hex digits>`: FNV-1a (64 bit) of the cleaned path. Fixed forever: another function would lose
/// every container's data on the update that brings it.
pub fn anonymous_volume_name(container: &str, target: &str) -> String {
    let hash = target
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3));
    format!("{container}-{hash:016x}")
}

/// `path` as an absolute path without `.`, `..` or empty components; `..` stops at the root.
pub fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Path components: how deep a mount is, to mount parents before what goes under them (as Docker sorts mounts).
pub fn depth(target: &str) -> usize {
    target.split('/').filter(|part| !part.is_empty()).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_cleaned_and_relative_ones_start_at_the_root() {
        assert_eq!(clean("/var/lib/db/"), "/var/lib/db");
        assert_eq!(clean("data"), "/data");
        assert_eq!(clean("/a/./b//../c"), "/a/c");
        assert_eq!(clean("/../../etc"), "/etc");
        assert_eq!(depth("/var/lib/db"), 3);
        assert_eq!(depth("/"), 0);
    }

    #[test]
    fn the_config_s_own_mounts_the_root_and_duplicates_get_no_volume() {
        let image = ["/data".to_owned(), "/var/lib/db/".to_owned(), "/".to_owned(), "/data/.".to_owned()];
        let volumes = anonymous_volumes("web", &image, &["/var/lib/db"]);
        assert_eq!(volumes, [ImageVolume { name: anonymous_volume_name("web", "/data"), target: "/data".into() }]);
    }

    /// The names of existing volumes: changing the function would orphan them.
    #[test]
    fn golden_anonymous_volume_names() {
        assert_eq!(anonymous_volume_name("db", "/var/lib/postgresql/data"), "db-a3513b7d9ea2477b");
        assert_ne!(anonymous_volume_name("db", "/data"), anonymous_volume_name("db2", "/data"));
    }
}
