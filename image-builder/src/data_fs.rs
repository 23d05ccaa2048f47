//! Makes the empty ext4 data partition image with mke2fs on a plain file, reproducibly (fixed UUID, hash seed and
//! time).

use std::path::{Path, PathBuf};

use crate::command::{CommandError, Tool};

/// keel's own mke2fs settings, so that the host's `/etc/mke2fs.conf` changes neither the filesystem nor its bytes.
const MKE2FS_CONFIG: &str = include_str!("mke2fs.conf");

#[derive(Debug, thiserror::Error)]
pub enum DataFsError {
    #[error("cannot create {image}")]
    Create {
        image: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("making the ext4 filesystem {image} failed")]
    Mkfs {
        image: PathBuf,
        #[source]
        source: CommandError,
    },
}

/// Writes an ext4 filesystem labelled `label` of `size_mib` MiB to `image`.
pub fn make(
    image: &Path,
    label: &str,
    size_mib: u64,
    uuid: &str,
    hash_seed: &str,
    epoch: u64,
) -> Result<(), DataFsError> {
    let create_error = |source| DataFsError::Create { image: image.into(), source };
    let file = std::fs::File::create(image).map_err(create_error)?;
    file.set_len(size_mib << 20).map_err(create_error)?;
    drop(file);
    let config = image.with_extension("mke2fs.conf");
    std::fs::write(&config, MKE2FS_CONFIG).map_err(|source| DataFsError::Create { image: config.clone(), source })?;
    Tool::new("mke2fs")
        .args(["-q", "-F", "-t", "ext4", "-L", label, "-U", uuid, "-E"])
        .arg(format!("hash_seed={hash_seed},root_owner=0:0,nodiscard"))
        .arg(image)
        // mke2fs reads the time from here instead of the clock (superblock, inodes, lost+found).
        .env("E2FSPROGS_FAKE_TIME", epoch)
        .env("MKE2FS_CONFIG", config.display())
        .run()
        .map_err(|source| DataFsError::Mkfs { image: image.into(), source })?;
    Ok(())
}
