//! The root image's way to its staging file and to its partition around the page cache (`O_DIRECT`): through the
//! cache, an image of hundreds of MiB would push the running containers' cached files out and take the dirty-page
//! budget their own writes wait on, and every byte would be copied once more by the CPU. Where a filesystem does not
//! take `O_DIRECT` (tmpfs), and for a last piece that is not a whole block, the cache is used.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;

use nix::fcntl::{fcntl, FcntlArg, OFlag};

/// The alignment `O_DIRECT` asks of buffers, lengths and offsets: a whole page covers every logical block size.
pub const ALIGN: usize = 4096;
/// Bytes moved at a time: a multiple of [`ALIGN`].
pub const CHUNK: usize = 1 << 20;

/// A [`CHUNK`]-byte buffer that starts on an [`ALIGN`] boundary.
pub struct AlignedChunk {
    storage: Vec<u8>,
    start: usize,
}

impl AlignedChunk {
    pub fn new() -> AlignedChunk {
        // Over-allocated by one alignment, so that an aligned start with CHUNK bytes after it is inside.
        let storage = vec![0u8; CHUNK + ALIGN];
        let start = storage.as_ptr().align_offset(ALIGN).min(ALIGN);
        AlignedChunk { storage, start }
    }

    pub fn bytes(&self) -> &[u8] {
        &self.storage[self.start..self.start + CHUNK]
    }

    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.start + CHUNK]
    }
}

/// Turns `O_DIRECT` on or off for `file`; an error when its filesystem does not take it.
pub fn set_direct(file: &File, on: bool) -> io::Result<()> {
    let flags = OFlag::from_bits_truncate(fcntl(file.as_fd(), FcntlArg::F_GETFL).map_err(io::Error::from)?);
    let flags = if on { flags | OFlag::O_DIRECT } else { flags - OFlag::O_DIRECT };
    fcntl(file.as_fd(), FcntlArg::F_SETFL(flags)).map_err(io::Error::from)?;
    Ok(())
}

/// Writes whole chunks to a file with `O_DIRECT` where its filesystem takes it; the last, shorter write goes
/// through the page cache, so that it may end anywhere.
pub struct DirectWriter<'a> {
    file: &'a mut File,
    direct: bool,
}

impl<'a> DirectWriter<'a> {
    /// Writes at `file`'s offset, which must be a multiple of [`ALIGN`].
    pub fn new(file: &'a mut File) -> DirectWriter<'a> {
        let direct = set_direct(file, true).is_ok();
        DirectWriter { file, direct }
    }

    /// Writes `bytes`, which start on an [`ALIGN`] boundary; once a write's length is not a multiple of
    /// [`ALIGN`], this one and any later ones use the page cache.
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.direct && bytes.len() % ALIGN != 0 {
            set_direct(self.file, false)?;
            self.direct = false;
        }
        self.file.write_all(bytes)
    }
}

impl Drop for DirectWriter<'_> {
    /// The file goes back to the page cache for whoever uses it next.
    fn drop(&mut self) {
        if self.direct {
            let _ = set_direct(self.file, false);
        }
    }
}

/// Reads into `buffer` until it is full or `reader` ends; the count read.
pub fn read_full(reader: &mut impl Read, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(count) => filled += count,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::io::{Seek, SeekFrom};

    #[test]
    fn the_chunk_is_aligned_and_whole() {
        let mut chunk = AlignedChunk::new();
        assert_eq!(chunk.bytes().as_ptr() as usize % ALIGN, 0);
        assert_eq!(chunk.bytes_mut().len(), CHUNK);
    }

    #[test]
    fn whole_chunks_and_a_short_tail_land_exactly() {
        // /var/tmp is on a disk here (O_DIRECT is taken); /dev/shm is a tmpfs (it is not): both must work.
        for dir in ["/var/tmp", "/dev/shm"] {
            let mut file = tempfile::tempfile_in(dir).unwrap();
            let mut chunk = AlignedChunk::new();
            let pattern: Vec<u8> = (0..CHUNK + 100).map(|index| (index % 251) as u8).collect();
            {
                let mut writer = DirectWriter::new(&mut file);
                chunk.bytes_mut().copy_from_slice(&pattern[..CHUNK]);
                writer.write(chunk.bytes()).unwrap();
                chunk.bytes_mut()[..100].copy_from_slice(&pattern[CHUNK..]);
                writer.write(&chunk.bytes()[..100]).unwrap();
            }
            file.seek(SeekFrom::Start(0)).unwrap();
            let mut read = Vec::new();
            file.read_to_end(&mut read).unwrap();
            assert!(read == pattern, "{dir}: the bytes read back differ");
        }
    }

    #[test]
    fn read_full_fills_from_short_reads() {
        let mut reader = io::Cursor::new(vec![7u8; 10]).chain(io::Cursor::new(vec![8u8; 10]));
        let mut buffer = [0u8; 15];
        assert_eq!(read_full(&mut reader, &mut buffer).unwrap(), 15);
        assert_eq!(&buffer[9..11], &[7, 8]);
        assert_eq!(read_full(&mut reader, &mut buffer).unwrap(), 5);
    }
}
