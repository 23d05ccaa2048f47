//! Copies a filesystem image into the disk image at a partition's offset, skipping all-zero blocks so the disk
//! file stays sparse.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Granularity of the zero check: the block size of the filesystems written and of the host filesystem.
const BLOCK: usize = 4096;
const BUFFER: usize = 256 * BLOCK;

#[derive(Debug, thiserror::Error)]
pub enum DiskWriteError {
    #[error("cannot read {source_path}")]
    Read {
        source_path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{source_path} is {size} bytes, more than its {limit}-byte partition")]
    TooBig { source_path: PathBuf, size: u64, limit: u64 },
    #[error("cannot write {disk}")]
    Write {
        disk: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Writes the file `image` into `disk` at `offset`. The disk region must read as zeros already (a fresh sparse
/// file), since zero blocks are skipped. Returns the bytes actually written.
pub fn write_at(disk: &File, disk_path: &Path, image: &Path, offset: u64, limit: u64) -> Result<u64, DiskWriteError> {
    let read_error = |source| DiskWriteError::Read { source_path: image.into(), source };
    let mut input = File::open(image).map_err(read_error)?;
    let size = input.metadata().map_err(read_error)?.len();
    if size > limit {
        return Err(DiskWriteError::TooBig { source_path: image.into(), size, limit });
    }
    let mut buffer = vec![0u8; BUFFER];
    let mut position = offset;
    let mut written = 0;
    loop {
        let filled = read_full(&mut input, &mut buffer).map_err(read_error)?;
        if filled == 0 {
            return Ok(written);
        }
        let mut block_start = 0;
        while block_start < filled {
            // Find the next run of non-zero blocks and write it in one call.
            let is_zero = |start: usize| buffer[start..(start + BLOCK).min(filled)].iter().all(|&byte| byte == 0);
            if is_zero(block_start) {
                block_start += BLOCK;
                continue;
            }
            let mut run_end = block_start;
            while run_end < filled && !is_zero(run_end) {
                run_end += BLOCK;
            }
            let run_end = run_end.min(filled);
            disk.write_all_at(&buffer[block_start..run_end], position + block_start as u64)
                .map_err(|source| DiskWriteError::Write { disk: disk_path.into(), source })?;
            written += (run_end - block_start) as u64;
            block_start = run_end;
        }
        position += filled as u64;
    }
}

fn read_full(input: &mut File, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match input.read(&mut buffer[filled..])? {
            0 => break,
            count => filled += count,
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    #[test]
    fn copies_data_and_keeps_holes() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("fs.img");
        let mut content = vec![0u8; 4 << 20];
        content[10] = 1;
        content[(3 << 20) + 5] = 2;
        content[(4 << 20) - 1] = 3;
        std::fs::write(&image, &content).unwrap();
        let disk_path = dir.path().join("disk.img");
        let disk = File::options().create(true).truncate(true).read(true).write(true).open(&disk_path).unwrap();
        disk.set_len(16 << 20).unwrap();
        let written = write_at(&disk, &disk_path, &image, 1 << 20, 8 << 20).unwrap();
        assert_eq!(written, 3 * BLOCK as u64);
        let disk_bytes = std::fs::read(&disk_path).unwrap();
        assert_eq!(&disk_bytes[1 << 20..5 << 20], content.as_slice());
        assert!(std::fs::metadata(&disk_path).unwrap().blocks() * 512 <= 64 * 1024);
        assert!(matches!(write_at(&disk, &disk_path, &image, 0, 1 << 20), Err(DiskWriteError::TooBig { .. })));
    }
}
