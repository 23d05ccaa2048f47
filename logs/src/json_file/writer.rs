//! [`JsonFileSink`]: the sink that appends container lines to their json-file logs on one writer thread.
//!
//! The reader threads only encode a line and push it on a queue bounded in lines and bytes; a full queue drops
//! the line and counts it, so a slow or full disk never holds a container back. The writer thread takes
//! everything queued at once, appends it to each container's file in one write where it fits, and rotates a file
//! before a line would take it past its size limit. A failed write (`ENOSPC` on a full `/var`) cuts the file back
//! to its last complete line and counts the lines lost.

use std::collections::{HashMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::entry::encode_line;
use super::{current_file, rotated_file};
use crate::batch::LogLines;
use crate::output::LogSink;
use crate::syslog::timestamp::SecondStamp;

/// At most this many lines wait for the writer…
const QUEUE_LINES: usize = 16_384;
/// …and at most this many bytes of them.
const QUEUE_BYTES: usize = 8 << 20;

/// How large a container's log file grows and how many are kept, the current one included (Docker's `max-size`
/// and `max-file`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLimits {
    pub max_size: u64,
    pub max_files: u32,
}

impl Default for LogLimits {
    /// `10m` and 3 files.
    fn default() -> LogLimits {
        LogLimits { max_size: 10 << 20, max_files: 3 }
    }
}

/// What the writer has done since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterCounters {
    /// Lines in the files.
    pub written: u64,
    /// Lines dropped because the queue was full.
    pub dropped_queue_full: u64,
    /// Lines dropped because a write failed (a full disk).
    pub dropped_write_failed: u64,
}

/// The json-file sink of every container under one `containers` directory.
pub struct JsonFileSink {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    containers_dir: PathBuf,
    queue: Mutex<Queue>,
    /// The writer waits on it for lines; [`JsonFileSink::flush`] for the writer to catch up.
    changed: Condvar,
    limits: Mutex<HashMap<String, LogLimits>>,
    default_limits: LogLimits,
    written: AtomicU64,
    dropped_queue_full: AtomicU64,
    dropped_write_failed: AtomicU64,
}

#[derive(Default)]
struct Queue {
    /// Encoded lines, several to an entry (what one read of a container's pipe brought).
    entries: VecDeque<Entry>,
    /// Lines and bytes in `entries`.
    lines: usize,
    bytes: usize,
    /// Lines ever queued, and lines the writer has finished with (written or dropped).
    queued: u64,
    done: u64,
    closed: bool,
    /// Whether the writer sleeps for lines: only then does a new line need to wake it (a wake is a syscall).
    writer_waiting: bool,
}

/// Complete json-file lines of one container, each ending with its `\n`.
struct Entry {
    container: Arc<str>,
    encoded: Vec<u8>,
    lines: usize,
}

impl JsonFileSink {
    /// Starts the writer thread for `<containers_dir>/<name>/<name>-json.log`, with `default_limits` for every
    /// container not given its own by [`set_limits`](Self::set_limits).
    pub fn start(containers_dir: impl Into<PathBuf>, default_limits: LogLimits) -> io::Result<JsonFileSink> {
        let shared = Arc::new(Shared {
            containers_dir: containers_dir.into(),
            queue: Mutex::new(Queue::default()),
            changed: Condvar::new(),
            limits: Mutex::new(HashMap::new()),
            default_limits,
            written: AtomicU64::new(0),
            dropped_queue_full: AtomicU64::new(0),
            dropped_write_failed: AtomicU64::new(0),
        });
        let writer = Arc::clone(&shared);
        let thread = thread::Builder::new().name("log-files".to_owned()).spawn(move || writer.run())?;
        Ok(JsonFileSink { shared, thread: Some(thread) })
    }

    /// `name`'s own limits; they apply from its next line on.
    pub fn set_limits(&self, name: &str, limits: LogLimits) {
        lock(&self.shared.limits).insert(name.to_owned(), limits);
    }

    pub fn counters(&self) -> WriterCounters {
        WriterCounters {
            written: self.shared.written.load(Ordering::Relaxed),
            dropped_queue_full: self.shared.dropped_queue_full.load(Ordering::Relaxed),
            dropped_write_failed: self.shared.dropped_write_failed.load(Ordering::Relaxed),
        }
    }

    /// Waits until every line queued before the call is in its file (or dropped), at most `timeout`; true if so.
    pub fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut queue = lock(&self.shared.queue);
        let target = queue.queued;
        while queue.done < target {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            queue = self.shared.changed.wait_timeout(queue, left).unwrap_or_else(PoisonError::into_inner).0;
        }
        true
    }

    pub fn containers_dir(&self) -> &std::path::Path {
        &self.shared.containers_dir
    }
}

impl LogSink for JsonFileSink {
    fn lines(&self, container: &str, lines: &LogLines) {
        if lines.is_empty() {
            return;
        }
        let mut encoded = Vec::with_capacity(lines.text_len() + lines.len() * 80);
        let mut stamp = SecondStamp::default();
        for line in lines.iter() {
            encode_line(line, &mut stamp, &mut encoded);
        }
        let mut queue = lock(&self.shared.queue);
        // As many lines as there is room for, oldest first; the rest are dropped and counted.
        let room = if queue.closed {
            0
        } else if queue.lines + lines.len() <= QUEUE_LINES && queue.bytes + encoded.capacity() <= QUEUE_BYTES {
            lines.len()
        } else {
            fitting_lines(&encoded, QUEUE_LINES.saturating_sub(queue.lines), QUEUE_BYTES.saturating_sub(queue.bytes))
        };
        if room < lines.len() {
            self.shared.dropped_queue_full.fetch_add((lines.len() - room) as u64, Ordering::Relaxed);
            if room == 0 {
                return;
            }
            encoded.truncate(end_of_lines(&encoded, room));
        }
        if queue.bytes + encoded.capacity() > QUEUE_BYTES {
            // The lines fit; the room reserved for them beyond that does not.
            encoded.shrink_to_fit();
        }
        queue.lines += room;
        // What the entry holds, not only what it says: the bound is on memory.
        queue.bytes += encoded.capacity();
        queue.queued += room as u64;
        queue.entries.push_back(Entry { container: Arc::from(container), encoded, lines: room });
        let wake = queue.writer_waiting;
        drop(queue);
        if wake {
            self.shared.changed.notify_all();
        }
    }
}

/// How many of the first `max_lines` lines of `encoded` fit in `max_bytes`.
fn fitting_lines(encoded: &[u8], max_lines: usize, max_bytes: usize) -> usize {
    newline_ends(encoded).take(max_lines).take_while(|&end| end <= max_bytes).count()
}

/// The offsets just after each `\n` of `encoded`.
fn newline_ends(encoded: &[u8]) -> impl Iterator<Item = usize> + '_ {
    encoded.iter().enumerate().filter(|(_, &byte)| byte == b'\n').map(|(at, _)| at + 1)
}

/// The length of the first `lines` lines of `encoded`.
fn end_of_lines(encoded: &[u8], lines: usize) -> usize {
    lines.checked_sub(1).and_then(|last| newline_ends(encoded).nth(last)).unwrap_or(0)
}

impl Drop for JsonFileSink {
    /// Writes what is queued, then stops the writer.
    fn drop(&mut self) {
        lock(&self.shared.queue).closed = true;
        self.shared.changed.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Shared {
    fn run(&self) {
        let mut files: HashMap<Arc<str>, ContainerFile> = HashMap::new();
        loop {
            let (batch, count) = {
                let mut queue = lock(&self.queue);
                while queue.entries.is_empty() && !queue.closed {
                    queue.writer_waiting = true;
                    queue = self.changed.wait(queue).unwrap_or_else(PoisonError::into_inner);
                    queue.writer_waiting = false;
                }
                if queue.entries.is_empty() {
                    return;
                }
                queue.bytes = 0;
                (std::mem::take(&mut queue.entries), std::mem::take(&mut queue.lines))
            };
            self.write_batch(&mut files, batch);
            lock(&self.queue).done += count as u64;
            self.changed.notify_all();
        }
    }

    fn write_batch(&self, files: &mut HashMap<Arc<str>, ContainerFile>, batch: VecDeque<Entry>) {
        let mut by_container: Vec<(Arc<str>, Vec<Entry>)> = Vec::new();
        for entry in batch {
            match by_container.iter_mut().find(|(other, _)| *other == entry.container) {
                Some((_, entries)) => entries.push(entry),
                None => by_container.push((entry.container.clone(), vec![entry])),
            }
        }
        for (name, entries) in by_container {
            let limits = lock(&self.limits).get(&*name).copied().unwrap_or(self.default_limits);
            let file = match files.get_mut(&name) {
                Some(file) if file.still_linked() => file,
                _ => match ContainerFile::open(self.containers_dir.clone(), &name) {
                    Ok(file) => files.entry(name.clone()).insert_entry(file).into_mut(),
                    Err(_) => {
                        files.remove(&name);
                        let lines: usize = entries.iter().map(|entry| entry.lines).sum();
                        self.dropped_write_failed.fetch_add(lines as u64, Ordering::Relaxed);
                        continue;
                    }
                },
            };
            let (written, lost) = file.append(&entries, limits);
            self.written.fetch_add(written, Ordering::Relaxed);
            self.dropped_write_failed.fetch_add(lost, Ordering::Relaxed);
        }
    }
}

/// One container's current file, open for appending, and its size.
struct ContainerFile {
    containers_dir: PathBuf,
    name: String,
    file: File,
    size: u64,
}

impl ContainerFile {
    fn open(containers_dir: PathBuf, name: &str) -> io::Result<ContainerFile> {
        let path = current_file(&containers_dir, name);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let size = file.metadata()?.len();
        Ok(ContainerFile { containers_dir, name: name.to_owned(), file, size })
    }

    /// False once the container's directory was removed (the container was removed and may come back).
    fn still_linked(&self) -> bool {
        self.file.metadata().is_ok_and(|metadata| metadata.nlink() > 0)
    }

    /// Appends the entries' lines, rotating before a line that would pass `limits.max_size` (a line longer than
    /// that alone gets a file of its own). Returns (lines written, lines lost).
    fn append(&mut self, entries: &[Entry], limits: LogLimits) -> (u64, u64) {
        let (mut written, mut lost) = (0, 0);
        let mut pending: Vec<u8> = Vec::new();
        let mut pending_lines = 0u64;
        for entry in entries {
            if self.size + (pending.len() + entry.encoded.len()) as u64 <= limits.max_size {
                pending.extend_from_slice(&entry.encoded);
                pending_lines += entry.lines as u64;
                continue;
            }
            // A rotation falls inside this entry: line by line.
            for line in entry.encoded.split_inclusive(|&byte| byte == b'\n') {
                let after = self.size + pending.len() as u64 + line.len() as u64;
                if after > limits.max_size && self.size + pending.len() as u64 > 0 {
                    let (ok, failed) = self.write(&pending, pending_lines);
                    (written, lost) = (written + ok, lost + failed);
                    pending.clear();
                    pending_lines = 0;
                    if self.rotate(limits.max_files).is_err() {
                        // Keep appending to the file we have rather than lose lines.
                    }
                }
                pending.extend_from_slice(line);
                pending_lines += 1;
            }
        }
        let (ok, failed) = self.write(&pending, pending_lines);
        (written + ok, lost + failed)
    }

    /// Writes `bytes` (`lines` complete lines); on an error cuts the file back to its last complete line.
    fn write(&mut self, bytes: &[u8], lines: u64) -> (u64, u64) {
        let mut done = 0;
        while done < bytes.len() {
            match self.file.write(&bytes[done..]) {
                Ok(0) => break,
                Ok(count) => done += count,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        if done == bytes.len() {
            self.size += done as u64;
            return (lines, 0);
        }
        let complete = bytes[..done].iter().rposition(|&byte| byte == b'\n').map_or(0, |newline| newline + 1);
        let kept = bytes[..complete].iter().filter(|&&byte| byte == b'\n').count() as u64;
        self.size += complete as u64;
        let _ = self.file.set_len(self.size);
        (kept, lines - kept)
    }

    /// `<name>-json.log` → `.1` → `.2` …, the oldest beyond `max_files` removed; a fresh current file.
    fn rotate(&mut self, max_files: u32) -> io::Result<()> {
        if max_files <= 1 {
            self.file.set_len(0)?;
            self.size = 0;
            return Ok(());
        }
        let path = |index| rotated_file(&self.containers_dir, &self.name, index);
        match fs::remove_file(path(max_files - 1)) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(error),
            _ => {}
        }
        for index in (1..max_files - 1).rev() {
            match fs::rename(path(index), path(index + 1)) {
                Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(error),
                _ => {}
            }
        }
        fs::rename(path(0), path(1))?;
        *self = ContainerFile::open(self.containers_dir.clone(), &self.name)?;
        Ok(())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nearly_full_queue_takes_the_first_lines_that_fit() {
        let encoded = b"{1}\n{22}\n{333}\n";
        assert_eq!(fitting_lines(encoded, 3, 100), 3);
        assert_eq!(fitting_lines(encoded, 2, 100), 2);
        assert_eq!(fitting_lines(encoded, 3, 9), 2);
        assert_eq!(fitting_lines(encoded, 3, 8), 1);
        assert_eq!(fitting_lines(encoded, 3, 3), 0);
        assert_eq!(end_of_lines(encoded, 2), 9);
        assert_eq!(end_of_lines(encoded, 0), 0);
    }
}
