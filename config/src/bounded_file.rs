//! Reads a file PID 1 takes from outside (a config drive, an image, a container's writable layer): regular files
//! only, at most a given size, else an error naming the file.
//!
//! PID 1 has no memory limit and the kernel never OOM-kills it, so a file anyone else wrote is never read whole
//! without a bound: a container can leave a sparse 20 GiB `/etc/passwd` behind in its writable layer at no cost,
//! and a FIFO or a device would block the reader or never end. The size is checked before anything is read and
//! again while reading (the file may grow in between).

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The most PID 1 reads of a file from outside: user-data, meta-data, an image's `/etc/passwd` and `/etc/group`
/// (tens of thousands of accounts), a seccomp profile.
pub const MAX_OUTSIDE_FILE: u64 = 1 << 20;

/// Why a bounded read failed; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum BoundedReadError {
    #[error("opening {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is not a regular file")]
    NotRegular { path: PathBuf },
    #[error("{path} is larger than {limit} bytes")]
    TooLarge { path: PathBuf, limit: u64 },
    #[error("reading {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is not UTF-8 text")]
    NotText { path: PathBuf },
}

impl BoundedReadError {
    /// The file does not exist (for optional files).
    pub fn is_not_found(&self) -> bool {
        matches!(self, BoundedReadError::Open { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}

/// Opens `path` and reads it with [`read_bounded`]. The open does not block on a FIFO (`O_NONBLOCK`), which is then
/// refused as not a regular file.
pub fn read_file_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, BoundedReadError> {
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|source| BoundedReadError::Open { path: path.to_owned(), source })?;
    read_bounded(file, path, limit)
}

/// [`read_file_bounded`] as UTF-8 text.
pub fn read_text_file_bounded(path: &Path, limit: u64) -> Result<String, BoundedReadError> {
    let bytes = read_file_bounded(path, limit)?;
    String::from_utf8(bytes).map_err(|_| BoundedReadError::NotText { path: path.to_owned() })
}

/// Reads the already opened `file` (opened by the caller, e.g. resolved inside a container's root), which must be
/// a regular file of at most `limit` bytes; `path` is how errors name it.
pub fn read_bounded(file: File, path: &Path, limit: u64) -> Result<Vec<u8>, BoundedReadError> {
    let read_error = |source| BoundedReadError::Read { path: path.to_owned(), source };
    let meta = file.metadata().map_err(read_error)?;
    if !meta.is_file() {
        return Err(BoundedReadError::NotRegular { path: path.to_owned() });
    }
    let too_large = || BoundedReadError::TooLarge { path: path.to_owned(), limit };
    if meta.len() > limit {
        return Err(too_large());
    }
    let capacity = usize::try_from(meta.len()).unwrap_or(0);
    let mut bytes = Vec::with_capacity(capacity);
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes).map_err(read_error)?;
    if bytes.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_regular_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("user-data");
        std::fs::write(&path, "[host]\n").unwrap();
        assert_eq!(read_text_file_bounded(&path, 16).unwrap(), "[host]\n");
        let error = read_file_bounded(&path, 4).unwrap_err();
        assert_eq!(error.to_string(), format!("{} is larger than 4 bytes", path.display()));
        assert!(read_file_bounded(&dir.path().join("missing"), 4).unwrap_err().is_not_found());
    }

    #[test]
    fn directories_fifos_and_devices_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix_mkfifo(&fifo);
        for path in [dir.path(), fifo.as_path(), Path::new("/dev/zero")] {
            let error = read_file_bounded(path, MAX_OUTSIDE_FILE).unwrap_err();
            assert!(matches!(error, BoundedReadError::NotRegular { .. }), "{path:?}: {error:?}");
        }
    }

    #[test]
    fn a_file_that_grows_after_the_check_is_still_bounded() {
        // /proc files report size 0 and have more: the read itself is bounded too.
        let error = read_file_bounded(Path::new("/proc/self/maps"), 8).unwrap_err();
        assert!(matches!(error, BoundedReadError::TooLarge { limit: 8, .. }), "{error:?}");
    }

    fn nix_mkfifo(path: &Path) {
        let path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: `path` is NUL-terminated and outlives the call.
        assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
    }
}
