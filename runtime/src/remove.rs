//! `Container::remove_files`: deletes a stopped container's directory (its writable layer) and its cgroup.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::cgroup::ContainerCgroup;

/// The container directory could not be removed.
#[derive(Debug, thiserror::Error)]
#[error("container {container}: removing {path}")]
pub struct RemoveError {
    pub container: String,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// Removes `<containers>/<name>` and, if given, the container's cgroup. Call only once its processes are gone.
pub fn remove_container(containers_dir: &Path, name: &str, cgroup_root: Option<&Path>) -> Result<(), RemoveError> {
    if let Some(root) = cgroup_root {
        ContainerCgroup { path: root.join("keel").join(name) }.remove();
    }
    let path = containers_dir.join(name);
    match fs::remove_dir_all(&path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(RemoveError { container: name.to_owned(), path, source }),
    }
}
