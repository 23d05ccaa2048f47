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
    pub fn write(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        if self.direct && bytes.len() % ALIGN != 0 {
            self.use_cache()?;
        }
        while !bytes.is_empty() {
            match self.file.write(bytes) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(count) => bytes = &bytes[count..],
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                // A filesystem that takes O_DIRECT but asks for more alignment than ALIGN, or a short write that
                // left the rest unaligned: the cache takes it from here (a refused write moved nothing).
                Err(error) if self.direct && error.raw_os_error() == Some(libc::EINVAL) => self.use_cache()?,
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }

    fn use_cache(&mut self) -> io::Result<()> {
        set_direct(self.file, false)?;
        self.direct = false;
        Ok(())
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

/// Reads into `buffer` (on an [`ALIGN`] boundary, a multiple of it long) until it is full or `file` ends, with
/// `O_DIRECT` where the filesystem takes it (and left on); the count read. A read `O_DIRECT` refuses is made
/// through the cache.
pub fn read_direct(file: &mut File, buffer: &mut [u8]) -> io::Result<usize> {
    let mut direct = set_direct(file, true).is_ok();
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(count) => filled += count,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) if direct && error.raw_os_error() == Some(libc::EINVAL) => {
                set_direct(file, false)?;
                direct = false;
            }
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
    fn a_write_or_read_that_o_direct_refuses_goes_through_the_cache() {
        let mut file = tempfile::tempfile_in("/var/tmp").unwrap();
        let mut chunk = AlignedChunk::new();
        for (index, byte) in chunk.bytes_mut().iter_mut().enumerate() {
            *byte = (index % 249) as u8;
        }
        let expected = chunk.bytes()[1..2 * ALIGN + 1].to_vec();
        {
            let mut writer = DirectWriter::new(&mut file);
            // A whole number of blocks from an address off the alignment: O_DIRECT refuses it with EINVAL.
            writer.write(&chunk.bytes()[1..2 * ALIGN + 1]).unwrap();
        }
        file.seek(SeekFrom::Start(0)).unwrap();
        let mut read = AlignedChunk::new();
        // From an address off the alignment again, and past the end of the file.
        let count = read_direct(&mut file, &mut read.bytes_mut()[1..3 * ALIGN + 1]).unwrap();
        assert_eq!(count, 2 * ALIGN);
        assert!(read.bytes()[1..count + 1] == expected[..], "the bytes read back differ");
    }

    #[test]
    fn read_direct_reads_to_the_end() {
        let mut file = tempfile::tempfile_in("/dev/shm").unwrap();
        file.write_all(&[7u8; 100]).unwrap();
        file.seek(SeekFrom::Start(0)).unwrap();
        let mut chunk = AlignedChunk::new();
        assert_eq!(read_direct(&mut file, chunk.bytes_mut()).unwrap(), 100);
        assert_eq!(read_direct(&mut file, chunk.bytes_mut()).unwrap(), 0);
    }
}
