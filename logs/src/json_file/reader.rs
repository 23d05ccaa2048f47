//! [`LogFiles`]: a container's json-file logs read back with `docker logs` semantics, rotated files included.
//!
//! Every line read is treated as hostile: bounded to [`super::MAX_ENTRY`] before it is parsed, and a line that
//! is not a well-formed entry (a torn last line after a power cut) is skipped, not an error.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::SystemTime;

use super::entry::decode;
use super::lines::{backward, forward};
use super::{current_file, rotated_file};
use crate::output::{LogRecord, LogStream};

/// Rotated files are looked for up to this index: more than any `max_files` accepted by the config.
const MAX_ROTATED: u32 = 1000;

/// What a follower hands over per poll, in bytes of lines: the rest comes with the next poll.
const POLL_BYTES: usize = 4 << 20;

/// What `docker logs` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogQuery {
    pub stdout: bool,
    pub stderr: bool,
    /// Only lines at or after this time…
    pub since: Option<SystemTime>,
    /// …and at or before this one.
    pub until: Option<SystemTime>,
    /// Only the last this many of the lines selected.
    pub tail: Option<usize>,
}

impl LogQuery {
    /// Everything, both streams.
    pub fn all() -> LogQuery {
        LogQuery { stdout: true, stderr: true, since: None, until: None, tail: None }
    }

    fn wants(&self, record: &LogRecord) -> bool {
        let stream = match record.stream {
            LogStream::Stdout => self.stdout,
            LogStream::Stderr => self.stderr,
        };
        stream
            && self.since.is_none_or(|since| record.time >= since)
            && self.until.is_none_or(|until| record.time <= until)
    }
}

/// One container's log files.
#[derive(Debug, Clone)]
pub struct LogFiles {
    pub containers_dir: PathBuf,
    pub name: String,
}

impl LogFiles {
    pub fn new(containers_dir: impl Into<PathBuf>, name: &str) -> LogFiles {
        LogFiles { containers_dir: containers_dir.into(), name: name.to_owned() }
    }

    /// The files that exist, oldest first (`…log.2`, `…log.1`, `…log`).
    pub fn paths(&self) -> Vec<PathBuf> {
        let mut paths = Vec::new();
        for index in 0..=MAX_ROTATED {
            let path = rotated_file(&self.containers_dir, &self.name, index);
            if fs::symlink_metadata(&path).is_err() {
                if index > 0 {
                    break;
                }
                continue;
            }
            paths.push(path);
        }
        paths.reverse();
        paths
    }

    /// The lines `query` selects, oldest first, and a [`Follower`] for the lines written after them. A file that
    /// cannot be read is skipped (it may have been rotated away meanwhile).
    pub fn read(&self, query: &LogQuery) -> (Vec<LogRecord>, Follower) {
        let current = current_file(&self.containers_dir, &self.name);
        // The current file as it is now: the follower takes over from its end.
        let opened = File::open(&current).and_then(|file| {
            let metadata = file.metadata()?;
            Ok((file, metadata.ino(), metadata.len()))
        });
        let end_of = |path: &PathBuf, file: &File| -> u64 {
            match &opened {
                Ok((_, inode, length)) if *path == current => {
                    if file.metadata().is_ok_and(|metadata| metadata.ino() == *inode) {
                        *length
                    } else {
                        0
                    }
                }
                _ => file.metadata().map_or(0, |metadata| metadata.len()),
            }
        };
        let mut records = Vec::new();
        let paths = self.paths();
        match query.tail {
            Some(0) => {}
            Some(tail) => {
                'files: for path in paths.iter().rev() {
                    let Ok(mut file) = File::open(path) else { continue };
                    let end = end_of(path, &file);
                    let _ = backward(&mut file, end, |line| {
                        if let Some(record) = decode(line).filter(|record| query.wants(record)) {
                            records.push(record);
                        }
                        records.len() < tail
                    });
                    if records.len() >= tail {
                        break 'files;
                    }
                }
                records.reverse();
            }
            None => {
                for path in &paths {
                    let Ok(mut file) = File::open(path) else { continue };
                    let end = end_of(path, &file);
                    let _ = forward(&mut file, 0, end, |line| {
                        if let Some(record) = decode(line).filter(|record| query.wants(record)) {
                            records.push(record);
                        }
                        true
                    });
                }
            }
        }
        let (file, inode, offset) = match opened {
            Ok((mut file, inode, length)) => {
                let offset = last_newline_end(&mut file, length).unwrap_or(length);
                (Some(file), Some(inode), offset)
            }
            Err(_) => (None, None, 0),
        };
        let follower =
            Follower { path: current, file, inode, offset, query: LogQuery { since: None, tail: None, ..*query } };
        (records, follower)
    }
}

/// The offset after the last complete line of the first `length` bytes of `file` (scanning at most
/// [`super::MAX_ENTRY`] bytes back): a follower starts there, so that a line half written when it looked is read
/// whole later.
fn last_newline_end(file: &mut File, length: u64) -> io::Result<u64> {
    use std::io::{Read, Seek, SeekFrom};
    let start = length.saturating_sub(super::MAX_ENTRY as u64 + 1);
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    file.take(length - start).read_to_end(&mut bytes)?;
    Ok(match bytes.iter().rposition(|&byte| byte == b'\n') {
        Some(newline) => start + newline as u64 + 1,
        None => start,
    })
}

/// The lines written to a container's current file after a [`LogFiles::read`], across rotations (the path
/// names a new inode: the old file is read to its end first) and truncation (`max_files = 1`).
pub struct Follower {
    path: PathBuf,
    file: Option<File>,
    inode: Option<u64>,
    offset: u64,
    query: LogQuery,
}

impl Follower {
    /// The complete lines written since the last poll (up to about 4 MiB; the rest next time).
    pub fn poll(&mut self) -> Vec<LogRecord> {
        let mut records = Vec::new();
        let mut bytes = 0;
        // Looked at before the old file is read to its end: if the path has moved on, the old file is final.
        let now = fs::metadata(&self.path).ok().map(|metadata| metadata.ino());
        bytes += self.read_into(&mut records, bytes);
        if bytes < POLL_BYTES && now.is_some() && now != self.inode {
            if let Ok(file) = File::open(&self.path) {
                self.inode = file.metadata().ok().map(|metadata| metadata.ino());
                self.file = Some(file);
                self.offset = 0;
                self.read_into(&mut records, bytes);
            }
        }
        records
    }

    /// Reads the open file from the follower's offset on into `records`; returns the bytes read.
    fn read_into(&mut self, records: &mut Vec<LogRecord>, already: usize) -> usize {
        let Some(file) = &mut self.file else { return 0 };
        let length = file.metadata().map_or(0, |metadata| metadata.len());
        if length < self.offset {
            self.offset = 0;
        }
        let mut bytes = 0;
        let query = self.query;
        if let Ok(end) = forward(file, self.offset, length, |line| {
            bytes += line.len() + 1;
            if let Some(record) = decode(line).filter(|record| query.wants(record)) {
                records.push(record);
            }
            already + bytes < POLL_BYTES
        }) {
            self.offset = end;
        }
        bytes
    }
}
