//! [`LogFiles`]: a container's json-file logs read back with `docker logs` semantics, rotated files included.
//!
//! Every line read is treated as hostile: bounded to [`super::MAX_ENTRY`] before it is parsed, and a line that
//! is not a well-formed entry (a torn last line after a power cut) is skipped, not an error.

use std::collections::VecDeque;
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
        let mut paths: Vec<PathBuf> = self.newest_first().map(|(path, _)| path).collect();
        paths.reverse();
        paths
    }

    /// The files that exist with their inodes, newest first: the current file (if any), `.1`, `.2`, … up to the
    /// first missing one.
    fn newest_first(&self) -> impl Iterator<Item = (PathBuf, u64)> + '_ {
        (0..=MAX_ROTATED)
            .map(|index| (index, rotated_file(&self.containers_dir, &self.name, index)))
            .map(|(index, path)| (index, fs::symlink_metadata(&path).map(|metadata| metadata.ino()), path))
            .take_while(|(index, inode, _)| *index == 0 || inode.is_ok())
            .filter_map(|(_, inode, path)| Some((path, inode.ok()?)))
    }

    /// The inodes of the files newer than `known` (the newest file a follower knows of), oldest first. Without
    /// `known`, only the current file; when `known` is gone (rotated past `max_files`), every file.
    fn newer_than(&self, known: Option<u64>) -> Vec<u64> {
        let mut newer: Vec<u64> = Vec::new();
        for (_, inode) in self.newest_first() {
            if Some(inode) == known {
                break;
            }
            // A rotation while the names are looked at shows a file twice.
            if !newer.contains(&inode) {
                newer.push(inode);
            }
            if known.is_none() {
                break;
            }
        }
        newer.reverse();
        newer
    }

    /// The file with `inode` under whichever of the names it has now, if it still exists.
    fn open_inode(&self, inode: u64) -> Option<File> {
        self.newest_first().filter(|(_, found)| *found == inode).find_map(|(path, _)| {
            let file = File::open(path).ok()?;
            file.metadata().is_ok_and(|metadata| metadata.ino() == inode).then_some(file)
        })
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
        let query = LogQuery { since: None, tail: None, ..*query };
        let follower = Follower { files: self.clone(), file, inode, offset, newer: VecDeque::new(), query };
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

/// The lines written to a container's current file after a [`LogFiles::read`], across rotations, however many
/// happen between two polls (each file in between is read whole, in order), and truncation (`max_files = 1`).
pub struct Follower {
    files: LogFiles,
    /// The file being read, its inode and how far.
    file: Option<File>,
    inode: Option<u64>,
    offset: u64,
    /// Files newer than the one being read, by inode, oldest first: the ones rotated after it and the current file
    /// when they were looked for. Kept by inode, since every rotation renames them.
    newer: VecDeque<u64>,
    query: LogQuery,
}

impl Follower {
    /// The complete lines written since the last poll (up to about 4 MiB; the rest next time).
    pub fn poll(&mut self) -> Vec<LogRecord> {
        let mut records = Vec::new();
        // Looked for before the file is read to its end: a file with newer ones is final once read to its end.
        let known = self.newer.back().copied().or(self.inode);
        let found = self.files.newer_than(known);
        self.newer.extend(found);
        let mut bytes = 0;
        loop {
            let (read, whole) = self.read_into(&mut records, bytes);
            bytes += read;
            if !whole {
                break;
            }
            // A newer file that is gone was rotated past `max_files`: its lines are lost to every reader.
            let Some((inode, file)) = std::iter::from_fn(|| self.newer.pop_front())
                .find_map(|inode| Some((inode, self.files.open_inode(inode)?)))
            else {
                break;
            };
            self.file = Some(file);
            self.inode = Some(inode);
            self.offset = 0;
        }
        records
    }

    /// Reads the open file from the follower's offset on into `records`; returns the bytes read and whether every
    /// complete line was (rather than the poll's [`POLL_BYTES`] ending it). A torn last line stays unread.
    fn read_into(&mut self, records: &mut Vec<LogRecord>, already: usize) -> (usize, bool) {
        let Some(file) = &mut self.file else { return (0, true) };
        let length = file.metadata().map_or(0, |metadata| metadata.len());
        if length < self.offset {
            self.offset = 0;
        }
        let mut bytes = 0;
        let mut whole = true;
        let query = self.query;
        if let Ok(end) = forward(file, self.offset, length, |line| {
            bytes += line.len() + 1;
            if let Some(record) = decode(line).filter(|record| query.wants(record)) {
                records.push(record);
            }
            whole = already + bytes < POLL_BYTES;
            whole
        }) {
            self.offset = end;
        }
        (bytes, whole)
    }
}
