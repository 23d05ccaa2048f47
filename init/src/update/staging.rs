//! Where the root image waits while its hash is checked, so that nothing of the inactive slot changes before every
//! byte of the bundle verified: an unlinked file (`O_TMPFILE`) on the data partition with its space reserved up
//! front, or, when that partition has no room, one on the `/run` tmpfs if the image fits in half of the memory
//! available. Either disappears with its descriptor: a failure or a power cut leaves nothing behind.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{fallocate, FallocateFlags};

/// On the data partition, beside the last install's record.
pub const DISK_STAGING_DIR: &str = "/var/lib/keel/update";
/// Memory: the tmpfs PID 1 mounts on `/run`.
pub const MEMORY_STAGING_DIR: &str = "/run/keel";
const MEMINFO: &str = "/proc/meminfo";

/// A place a root image may wait in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StagingPlace {
    /// A directory on a disk: used when the space can be reserved.
    Disk(PathBuf),
    /// A directory on a tmpfs: used when the image fits in half of `MemAvailable`.
    Memory(PathBuf),
}

impl StagingPlace {
    /// PID 1's: the data partition, then memory.
    pub fn on_host() -> Vec<StagingPlace> {
        vec![StagingPlace::Disk(DISK_STAGING_DIR.into()), StagingPlace::Memory(MEMORY_STAGING_DIR.into())]
    }

    fn dir(&self) -> &Path {
        match self {
            StagingPlace::Disk(dir) | StagingPlace::Memory(dir) => dir,
        }
    }
}

/// No place could take the image; names every place tried and why not.
#[derive(Debug, thiserror::Error)]
#[error("no room to hold the {size}-byte root image while its hash is checked: {tried}")]
pub struct StagingError {
    pub size: u64,
    /// `<dir>: <why>` for each place, `; `-separated.
    pub tried: String,
}

/// An unlinked file of `size` bytes' room in the first of `places` that takes it.
pub fn create(places: &[StagingPlace], size: u64) -> Result<File, StagingError> {
    let mut tried = Vec::new();
    for place in places {
        match create_in(place, size) {
            Ok(file) => return Ok(file),
            Err(why) => tried.push(format!("{}: {why}", place.dir().display())),
        }
    }
    Err(StagingError { size, tried: tried.join("; ") })
}

fn create_in(place: &StagingPlace, size: u64) -> Result<File, String> {
    if let StagingPlace::Memory(_) = place {
        let available = memory_available().map_err(|error| format!("cannot read {MEMINFO}: {error}"))?;
        if size > available / 2 {
            return Err(format!("more than half of the {available} bytes of memory available"));
        }
    }
    let dir = place.dir();
    std::fs::create_dir_all(dir).map_err(|error| error.to_string())?;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_TMPFILE)
        .open(dir)
        .map_err(|error| format!("cannot make an unlinked file: {error}"))?;
    let length = i64::try_from(size).map_err(|_| "the size does not fit a file offset".to_owned())?;
    if length > 0 {
        // Reserving the room first turns a full disk into this refusal rather than a failed write half way.
        fallocate(&file, FallocateFlags::empty(), 0, length)
            .map_err(|errno| format!("cannot reserve the room: {}", io::Error::from(errno)))?;
    }
    Ok(file)
}

/// `MemAvailable` of `/proc/meminfo`, in bytes.
fn memory_available() -> io::Result<u64> {
    let text = std::fs::read_to_string(MEMINFO)?;
    parse_memory_available(&text).ok_or_else(|| io::Error::other("no MemAvailable line"))
}

fn parse_memory_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find_map(|line| line.strip_prefix("MemAvailable:"))?;
    let kib: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    kib.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::update::test_support::names;

    use std::io::{Read, Seek, SeekFrom, Write};

    #[test]
    fn the_staged_file_has_no_name_and_holds_what_was_written() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = create(&[StagingPlace::Disk(dir.path().to_path_buf())], 4096).unwrap();
        file.write_all(b"root image").unwrap();
        file.seek(SeekFrom::Start(0)).unwrap();
        let mut read = [0u8; 10];
        file.read_exact(&mut read).unwrap();
        assert_eq!(&read, b"root image");
        assert!(names(dir.path()).is_empty());
    }

    #[test]
    fn a_place_without_room_is_named_and_the_next_one_tried() {
        let dir = tempfile::tempdir().unwrap();
        let places = [StagingPlace::Disk("/proc/no-such-dir".into()), StagingPlace::Disk(dir.path().to_path_buf())];
        assert!(create(&places, 16).is_ok());
        let error = create(&places[..1], 16).unwrap_err();
        assert!(error.to_string().starts_with("no room to hold the 16-byte root image"), "{error}");
        assert!(error.tried.starts_with("/proc/no-such-dir: "), "{error}");
        let huge = create(&[StagingPlace::Memory(dir.path().to_path_buf())], u64::MAX / 2).unwrap_err();
        assert!(huge.tried.contains("more than half of the"), "{huge}");
    }

    #[test]
    fn reads_memory_available() {
        let meminfo = "MemTotal:       16384 kB\nMemFree:         1024 kB\nMemAvailable:    2048 kB\n";
        assert_eq!(parse_memory_available(meminfo), Some(2048 * 1024));
        assert_eq!(parse_memory_available("MemTotal: 1 kB\n"), None);
    }
}
