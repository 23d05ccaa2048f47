//! Writes the files tests need to boot slot a directly (PVH), without firmware: `vmlinux`, `initrd.img` and
//! `cmdline`; and `kernel`, the kernel's description, for `make bench` to print.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum BootDirError {
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Writes `dir/vmlinux` (a copy of `vmlinux`), `dir/initrd.img`, `dir/cmdline` (one line) and `dir/kernel` (one
/// line: `linux-image-6.1.0-57-amd64 6.1.192-3 (6.1.0-57-amd64)`).
pub fn write(dir: &Path, vmlinux: &Path, initrd: &[u8], cmdline: &str, kernel: &str) -> Result<(), BootDirError> {
    let error = |path: PathBuf| move |source| BootDirError::Write { path, source };
    std::fs::create_dir_all(dir).map_err(error(dir.into()))?;
    let target = dir.join("vmlinux");
    std::fs::copy(vmlinux, &target).map_err(error(target))?;
    let target = dir.join("initrd.img");
    std::fs::write(&target, initrd).map_err(error(target))?;
    let target = dir.join("cmdline");
    std::fs::write(&target, format!("{cmdline}\n")).map_err(error(target))?;
    let target = dir.join("kernel");
    std::fs::write(&target, format!("{kernel}\n")).map_err(error(target))?;
    Ok(())
}
