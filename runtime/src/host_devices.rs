//! The host's device nodes, which a privileged container finds in its `/dev` as Docker gives them: each node
//! under the host's `/dev` is created again in the container's `/dev` tmpfs with the same type, numbers, mode
//! and owner (runc's host-device walk, as facts: the pts, shm, fd and mqueue directories and `/dev/console` are
//! the container's own and are left out; symlinks and other files are skipped).

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use super::child::Step;
use super::device_filter::split_device_number;
use super::mounts::{MountPlanner, PathNulError};

/// Directories under `/dev` that a container has its own of, or that hold no devices.
const SKIPPED_DIRECTORIES: [&str; 7] = ["pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"];

/// One device node of the host, with its path relative to `/dev`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostNode {
    pub relative: String,
    /// `st_mode`: the file type bits and the permissions.
    pub mode: u32,
    pub major: u32,
    pub minor: u32,
    pub uid: u32,
    pub gid: u32,
}

/// Every character and block device under `dev` (recursively), sorted by path. Unreadable directories are
/// skipped: what cannot be listed cannot be offered.
pub fn host_nodes(dev: &Path) -> Vec<HostNode> {
    let mut nodes = Vec::new();
    walk(dev, "", &mut nodes);
    nodes.sort_by(|a, b| a.relative.cmp(&b.relative));
    nodes
}

fn walk(dir: &Path, prefix: &str, nodes: &mut Vec<HostNode>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let relative = format!("{prefix}{name}");
        let Ok(metadata) = fs::symlink_metadata(entry.path()) else { continue };
        let kind = metadata.file_type();
        if kind.is_dir() {
            if !SKIPPED_DIRECTORIES.contains(&name.as_str()) {
                walk(&entry.path(), &format!("{relative}/"), nodes);
            }
        } else if (kind.is_char_device() || kind.is_block_device()) && relative != "console" {
            let (major, minor) = split_device_number(metadata.rdev());
            nodes.push(HostNode {
                relative,
                mode: metadata.mode(),
                major,
                minor,
                uid: metadata.uid(),
                gid: metadata.gid(),
            });
        }
    }
}

impl MountPlanner {
    /// Creates each of `nodes` under the container's `/dev` (after Docker's own nodes, which they may replace in
    /// kind only: an existing node is kept).
    pub fn host_devices(&mut self, nodes: &[HostNode]) -> Result<(), PathNulError> {
        for node in nodes {
            let path = format!("/dev/{}", node.relative);
            if let Some((parent, _)) = path.rsplit_once('/').filter(|(parent, _)| *parent != "/dev") {
                self.dir(parent, 0o755)?;
            }
            let path = std::ffi::CString::new(path.clone()).map_err(|_| PathNulError { path })?;
            self.steps.push(Step::Mknod {
                path,
                mode: node.mode,
                major: node.major,
                minor: node.minor,
                owner: Some((node.uid, node.gid)),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_hosts_nodes_but_not_the_containers_own() {
        let nodes = host_nodes(Path::new("/dev"));
        let null = nodes.iter().find(|node| node.relative == "null").expect("/dev/null on every host");
        assert_eq!((null.major, null.minor), (1, 3));
        assert_eq!(null.mode & libc::S_IFMT, libc::S_IFCHR);
        assert!(nodes.iter().all(|node| !node.relative.starts_with("pts/") && node.relative != "console"));
    }

    #[test]
    fn nodes_in_subdirectories_get_their_directory() {
        let mut planner = MountPlanner::default();
        let node =
            HostNode { relative: "net/tun".into(), mode: libc::S_IFCHR | 0o666, major: 10, minor: 200, uid: 0, gid: 0 };
        planner.host_devices(&[node]).unwrap();
        let steps: Vec<String> = planner.steps.iter().map(ToString::to_string).collect();
        assert_eq!(steps, ["creating directory /dev", "creating directory /dev/net", "creating device /dev/net/tun"]);
    }
}
