//! Makes the read-only root filesystem of a slot: an lz4hc-compressed erofs image of a staged tree, reproducible
//! (all files owned by root, fixed build time and UUID).

use std::path::{Path, PathBuf};

use crate::command::{CommandError, Tool};

#[derive(Debug, thiserror::Error)]
pub enum ErofsError {
    #[error("making the erofs image {image} failed")]
    Mkfs {
        image: PathBuf,
        #[source]
        source: CommandError,
    },
    #[error("cannot read the size of {image}")]
    Stat {
        image: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the root filesystem {image} is {size} bytes, more than the root slot's {limit} bytes")]
    TooBig { image: PathBuf, size: u64, limit: u64 },
}

/// Writes `image` from `tree`; fails if it would not fit in `limit` bytes. Returns its size.
pub fn make(tree: &Path, image: &Path, uuid: &str, epoch: u64, limit: u64) -> Result<u64, ErofsError> {
    Tool::new("mkfs.erofs")
        .args(["--quiet", "--all-root", "-zlz4hc"])
        .arg(format!("-T{epoch}"))
        .args(["-U", uuid])
        .arg(image)
        .arg(tree)
        .env("SOURCE_DATE_EPOCH", epoch)
        .run()
        .map_err(|source| ErofsError::Mkfs { image: image.into(), source })?;
    let size = std::fs::metadata(image).map_err(|source| ErofsError::Stat { image: image.into(), source })?.len();
    if size > limit {
        return Err(ErofsError::TooBig { image: image.into(), size, limit });
    }
    Ok(size)
}
