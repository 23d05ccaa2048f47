//! keel's layer extractor: reads a tar stream with the `tar` crate and writes each entry itself, confined to the
//! layer root by the kernel.
//!
//! # Design
//! The layer root is opened once as a directory fd. Every entry name is checked lexically first (no absolute
//! paths, no `..`: refused with the entry's name), then its parent directory is opened with `openat2` and
//! `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`, and the entry is created relative to that parent fd with a single
//! path component (`mkdirat`, `symlinkat`, `linkat`, `mknodat`, `openat(O_NOFOLLOW)`). `RESOLVE_BENEATH` (rather
//! than `RESOLVE_IN_ROOT`, which would silently re-root an escaping symlink inside the layer) makes any attempt
//! to resolve through a symlink that leads outside fail with `EXDEV`, which we report as
//! [`ExtractError::EscapesRoot`]. A tar made from a real filesystem never has entries below a symlink, so this
//! refuses only hand-made archives. Symlink targets themselves are data and are stored as they are.
//!
//! Nothing in a layer is trusted to be small before its `diff_id` is checked: the stream, each entry's headers,
//! the entries and the files they make are held to the layer's [`LayerBudget`] ([`budget`], [`guard`]), sparse
//! holes stay holes, and the list of directory times is kept once per directory and bounded.
//!
//! # Current limitations
//! A non-directory entry replacing a non-empty directory of the same layer is refused (Docker removes the tree).
//! Without root, device nodes, FIFOs, whiteouts, ownership and `trusted.*` xattrs are skipped with a warning.

pub mod budget;
mod entry;
mod guard;
pub mod sys;
pub mod whiteout;

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::io::{self, BufRead, Cursor, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use flate2::bufread::MultiGzDecoder;

pub use budget::LayerBudget;
use guard::{GuardHandle, Tripped};
use whiteout::WhiteoutKind;

/// The longest entry name or hard link target taken: the kernel resolves no longer path (`PATH_MAX`).
const MAX_PATH_BYTES: usize = 4096;

/// What the list of directory times may hold (paths plus bookkeeping). Past it, further directories keep the
/// time of their extraction, which is only cosmetic; a real layer's directories take a few hundred KiB.
const DIRECTORY_TIMES_BYTES: usize = 8 << 20;

/// What one recorded directory time costs besides its path: the map's slot, the CString's allocation header.
const DIRECTORY_TIME_OVERHEAD: usize = 64;

/// What failed while unpacking a layer; `entry` is the tar entry's name as it appears in the archive.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error("opening layer root {path}")]
    OpenRoot {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("reading the layer tar stream")]
    ReadArchive {
        #[source]
        source: io::Error,
    },
    #[error("entry {entry:?}: absolute paths are not allowed in a layer")]
    AbsolutePath { entry: String },
    #[error("entry {entry:?}: `..` is not allowed in a layer path")]
    DotDotPath { entry: String },
    #[error("entry {entry:?}: path contains a NUL byte")]
    NulInPath { entry: String },
    #[error("entry {entry:?}: its name is longer than {MAX_PATH_BYTES} bytes")]
    NameTooLong { entry: String },
    #[error("the entry after {after:?}: a PAX or GNU long-name header of {size} bytes, over the limit of {limit}")]
    ExtensionTooLarge { after: String, size: u64, limit: u64 },
    #[error(
        "the entry after {after:?}: its headers (PAX records, long names, sparse map) take more than {limit} bytes"
    )]
    HeadersTooLarge { after: String, limit: u64 },
    #[error("at entry {entry:?}: the layer unpacks to more than its budget of {limit} bytes")]
    OverByteBudget { entry: String, limit: u64 },
    #[error("at entry {entry:?}: the layer has more than its budget of {limit} entries")]
    OverEntryBudget { entry: String, limit: u64 },
    #[error("entry {entry:?}: its parent directory leads outside the layer root (through a symlink)")]
    EscapesRoot { entry: String },
    #[error("entry {entry:?}: hard link target {target:?} is outside the layer root")]
    HardlinkOutside { entry: String, target: String },
    #[error("entry {entry:?}: opening its parent directory")]
    ResolveParent {
        entry: String,
        #[source]
        source: io::Error,
    },
    #[error("entry {entry:?}: creating it")]
    Create {
        entry: String,
        #[source]
        source: io::Error,
    },
    #[error("entry {entry:?}: writing its content")]
    WriteContent {
        entry: String,
        #[source]
        source: io::Error,
    },
    #[error("entry {entry:?}: setting {what}")]
    SetMetadata {
        entry: String,
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("flushing layer {path} to disk")]
    Sync {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// How much the extractor may do; by default, everything if we run as root.
#[derive(Debug, Clone)]
pub struct ExtractOptions {
    /// Create device nodes and whiteouts, chown, set `trusted.*` xattrs. Without it they are skipped with a warning.
    pub privileged: bool,
}

impl Default for ExtractOptions {
    fn default() -> Self {
        ExtractOptions { privileged: sys::running_as_root() }
    }
}

/// Counts of what an extraction did, for logs and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ExtractStats {
    pub entries: u64,
    pub skipped: u64,
}

/// Wraps a layer stream in the right decompressor, told by magic bytes (gzip, zstd, else plain tar).
pub fn decompress<'a, R: BufRead + 'a>(mut reader: R) -> io::Result<Box<dyn Read + 'a>> {
    let mut magic = Vec::with_capacity(4);
    while magic.len() < 4 {
        let available = reader.fill_buf()?;
        if available.is_empty() {
            break;
        }
        let take = available.len().min(4 - magic.len());
        magic.extend_from_slice(&available[..take]);
        reader.consume(take);
    }
    let stream = Cursor::new(magic.clone()).chain(reader);
    if magic.starts_with(&[0x1f, 0x8b]) {
        // Layers may be concatenated gzip members (pigz, some builders): read them all.
        Ok(Box::new(MultiGzDecoder::new(stream)))
    } else if magic == [0x28, 0xb5, 0x2f, 0xfd] {
        Ok(Box::new(zstd::stream::read::Decoder::with_buffer(stream)?))
    } else {
        Ok(Box::new(stream))
    }
}

/// A validated entry path: its components, none empty, `.` or `..`.
pub(crate) struct EntryPath {
    components: Vec<CString>,
}

impl EntryPath {
    /// Refuses absolute paths and `..` with the entry's name; strips `./` and empty components.
    pub(crate) fn parse(raw: &[u8], entry: &str) -> Result<EntryPath, ExtractError> {
        if raw.first() == Some(&b'/') {
            return Err(ExtractError::AbsolutePath { entry: entry.to_string() });
        }
        if raw.len() > MAX_PATH_BYTES {
            return Err(ExtractError::NameTooLong { entry: entry.to_string() });
        }
        let mut components = Vec::new();
        for component in raw.split(|&b| b == b'/') {
            match component {
                b"" | b"." => continue,
                b".." => return Err(ExtractError::DotDotPath { entry: entry.to_string() }),
                _ => components
                    .push(CString::new(component).map_err(|_| ExtractError::NulInPath { entry: entry.to_string() })?),
            }
        }
        Ok(EntryPath { components })
    }

    pub(crate) fn file_name(&self) -> Option<&CStr> {
        self.components.last().map(CString::as_c_str)
    }

    /// The parent's path relative to the root, `.` for top-level entries.
    pub(crate) fn parent(&self) -> CString {
        let count = self.components.len().saturating_sub(1);
        join(&self.components[..count])
    }

    fn prefixes(&self) -> impl Iterator<Item = (CString, &CStr)> {
        (1..self.components.len()).map(|end| (join(&self.components[..end]), self.components[end - 1].as_c_str()))
    }
}

fn join(components: &[CString]) -> CString {
    if components.is_empty() {
        return c".".to_owned();
    }
    let mut joined = Vec::new();
    for (index, component) in components.iter().enumerate() {
        if index > 0 {
            joined.push(b'/');
        }
        joined.extend_from_slice(component.to_bytes());
    }
    // Components were NUL-free CStrings, so the join is too.
    CString::new(joined).unwrap_or_default()
}

/// Extracts one layer's (uncompressed) tar stream into `root`, which must exist and should be empty, within
/// `budget` ([`LayerBudget::for_compressed_size`] of the layer's blob).
pub fn extract_layer<R: Read>(
    tar_stream: R,
    root: &Path,
    options: &ExtractOptions,
    budget: &LayerBudget,
) -> Result<ExtractStats, ExtractError> {
    let root_path = CString::new(root.as_os_str().as_bytes()).map_err(|_| ExtractError::OpenRoot {
        path: root.to_path_buf(),
        source: io::Error::from_raw_os_error(libc::EINVAL),
    })?;
    let root_fd =
        sys::open_dir(&root_path).map_err(|source| ExtractError::OpenRoot { path: root.to_path_buf(), source })?;
    let mut extractor = Extractor {
        root: root_fd,
        options: options.clone(),
        stats: ExtractStats::default(),
        cached_parent: None,
        directory_times: HashMap::new(),
        directory_times_bytes: 0,
        content_bytes: 0,
        budget: *budget,
        buffer: vec![0; 256 * 1024],
    };
    let (stream, guard) = guard::guard(tar_stream, budget);
    let mut archive = tar::Archive::new(stream);
    let mut entries = archive.entries().map_err(|source| ExtractError::ReadArchive { source })?;
    let mut last_name = String::from("(start of the layer)");
    loop {
        guard.begin_headers();
        let Some(entry) = entries.next() else { break };
        let mut entry = entry.map_err(|source| stream_error(&guard, &last_name, budget, source))?;
        guard.begin_data();
        last_name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        extractor.charge(&entry, &last_name)?;
        let extracted = extractor.extract_entry(&mut entry).and_then(|()| {
            // What the entry did not read (data of a skipped entry) is read here, within the budget charged for
            // it, so that the next headers start at the next block.
            io::copy(&mut entry, &mut io::sink()).map(drop).map_err(|source| ExtractError::ReadArchive { source })
        });
        extracted.map_err(|error| match error {
            // A limit that stopped the stream shows up as a read error of the entry's data.
            ExtractError::ReadArchive { source } | ExtractError::WriteContent { source, .. }
                if guard.tripped().is_some() =>
            {
                stream_error(&guard, &last_name, budget, source)
            }
            other => other,
        })?;
    }
    extractor.finish(root)
}

/// Names the limit that stopped the stream, else the read error itself.
fn stream_error(guard: &GuardHandle, last_name: &str, budget: &LayerBudget, source: io::Error) -> ExtractError {
    let after = last_name.to_string();
    match guard.tripped() {
        Some(Tripped::ExtensionSize { size }) => {
            ExtractError::ExtensionTooLarge { after, size, limit: budget::MAX_ENTRY_HEADERS }
        }
        Some(Tripped::HeaderBytes { .. }) => ExtractError::HeadersTooLarge { after, limit: budget::MAX_ENTRY_HEADERS },
        Some(Tripped::StreamBytes) => ExtractError::OverByteBudget { entry: after, limit: budget.bytes },
        None => ExtractError::ReadArchive { source },
    }
}

struct Extractor {
    root: OwnedFd,
    options: ExtractOptions,
    stats: ExtractStats,
    /// The last parent directory opened, by its relative path: consecutive entries share a parent almost always.
    cached_parent: Option<(CString, OwnedFd)>,
    /// Directory mtimes are set at the end, since creating children changes them; one per directory (a layer
    /// may list the same directory many times), and at most [`DIRECTORY_TIMES_BYTES`] of them.
    directory_times: HashMap<CString, i64>,
    directory_times_bytes: usize,
    /// The sizes of all entries so far (a sparse file's whole size, holes included).
    content_bytes: u64,
    budget: LayerBudget,
    buffer: Vec<u8>,
}

impl Extractor {
    /// Counts the entry and its size against the budget before anything of it is written.
    fn charge<R: Read>(&mut self, entry: &tar::Entry<'_, R>, name: &str) -> Result<(), ExtractError> {
        self.stats.entries += 1;
        if self.stats.entries > self.budget.entries {
            return Err(ExtractError::OverEntryBudget { entry: name.to_string(), limit: self.budget.entries });
        }
        self.content_bytes = self.content_bytes.saturating_add(entry.size());
        if self.content_bytes > self.budget.bytes {
            return Err(ExtractError::OverByteBudget { entry: name.to_string(), limit: self.budget.bytes });
        }
        Ok(())
    }

    /// Remembers a directory's mtime for [`Extractor::finish`]; a directory seen again keeps its latest time.
    fn record_directory_time(&mut self, path: CString, mtime: i64) {
        if let Some(recorded) = self.directory_times.get_mut(&path) {
            *recorded = mtime;
            return;
        }
        let cost = path.as_bytes().len() + DIRECTORY_TIME_OVERHEAD;
        if self.directory_times_bytes + cost > DIRECTORY_TIMES_BYTES {
            if self.directory_times_bytes <= DIRECTORY_TIMES_BYTES {
                log::warn!(
                    "layer: too many directories to restore all their times; the rest keep their extraction time"
                );
                // Past the limit for good: warn once.
                self.directory_times_bytes = DIRECTORY_TIMES_BYTES + 1;
            }
            return;
        }
        self.directory_times_bytes += cost;
        self.directory_times.insert(path, mtime);
    }

    fn extract_entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), ExtractError> {
        let raw_path = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&raw_path).into_owned();
        let entry_type = entry.header().entry_type();
        if matches!(entry_type, tar::EntryType::XGlobalHeader | tar::EntryType::XHeader) {
            return Ok(());
        }
        let path = EntryPath::parse(&raw_path, &name)?;
        let Some(file_name) = path.file_name().map(CStr::to_owned) else {
            // `./` itself: the layer root keeps the mode we created it with.
            return Ok(());
        };
        // Anything but a regular file may change what a path resolves to; don't trust the cached parent after it.
        let keeps_paths = matches!(entry_type, tar::EntryType::Regular | tar::EntryType::Continuous);
        let parent = self.open_parent(&path, &name)?;
        let result = match whiteout::classify(file_name.to_bytes()) {
            WhiteoutKind::Opaque => self.opaque(&parent, &name),
            WhiteoutKind::Delete(deleted) => {
                let deleted = CString::new(deleted).map_err(|_| ExtractError::NulInPath { entry: name.clone() })?;
                self.whiteout(&parent, &deleted, entry, &name)
            }
            WhiteoutKind::Meta => Ok(()),
            WhiteoutKind::None => self.create(&parent, &path, &file_name, entry, &name),
        };
        if keeps_paths {
            self.cached_parent = Some((path.parent(), parent));
        } else {
            self.cached_parent = None;
        }
        result
    }

    fn opaque(&mut self, parent: &OwnedFd, name: &str) -> Result<(), ExtractError> {
        if !self.options.privileged {
            log::warn!("layer entry {name:?}: opaque directory needs root (trusted.* xattr), skipped");
            self.stats.skipped += 1;
            return Ok(());
        }
        whiteout::make_opaque(parent.as_fd()).map_err(|source| ExtractError::SetMetadata {
            entry: name.to_string(),
            what: "the opaque xattr",
            source,
        })
    }

    fn whiteout<R: Read>(
        &mut self,
        parent: &OwnedFd,
        deleted: &CStr,
        entry: &tar::Entry<'_, R>,
        name: &str,
    ) -> Result<(), ExtractError> {
        if !self.options.privileged {
            log::warn!("layer entry {name:?}: whiteouts need root (mknod), skipped");
            self.stats.skipped += 1;
            return Ok(());
        }
        entry::remove_existing(parent.as_fd(), deleted, name)?;
        whiteout::create_whiteout(parent.as_fd(), deleted)
            .map_err(|source| ExtractError::Create { entry: name.to_string(), source })?;
        let header = entry.header();
        let (uid, gid) = (header.uid().unwrap_or(0), header.gid().unwrap_or(0));
        sys::chown_nofollow(parent.as_fd(), deleted, uid as u32, gid as u32)
            .map_err(|source| ExtractError::SetMetadata { entry: name.to_string(), what: "owner", source })
    }

    /// Opens the entry's parent directory beneath the root, creating missing directories on the way (archives
    /// need not list every parent).
    fn open_parent(&mut self, path: &EntryPath, name: &str) -> Result<OwnedFd, ExtractError> {
        let parent_path = path.parent();
        if let Some((cached_path, fd)) = self.cached_parent.take() {
            if cached_path == parent_path {
                return Ok(fd);
            }
        }
        let directory_flags = libc::O_RDONLY | libc::O_DIRECTORY;
        match sys::open_beneath(self.root.as_fd(), &parent_path, directory_flags) {
            Ok(fd) => return Ok(fd),
            Err(error) if error.raw_os_error() == Some(libc::ENOENT) => {}
            Err(error) => return Err(resolve_error(error, name)),
        }
        let mut current =
            self.root.try_clone().map_err(|source| ExtractError::ResolveParent { entry: name.to_string(), source })?;
        for (prefix, component) in path.prefixes() {
            current = match sys::open_beneath(self.root.as_fd(), &prefix, directory_flags) {
                Ok(fd) => fd,
                Err(error) if error.raw_os_error() == Some(libc::ENOENT) => {
                    match sys::mkdirat(current.as_fd(), component, 0o755) {
                        Ok(()) => {}
                        Err(error) if error.raw_os_error() == Some(libc::EEXIST) => {}
                        Err(source) => return Err(ExtractError::Create { entry: name.to_string(), source }),
                    }
                    sys::open_beneath(self.root.as_fd(), &prefix, directory_flags)
                        .map_err(|error| resolve_error(error, name))?
                }
                Err(error) => return Err(resolve_error(error, name)),
            };
        }
        Ok(current)
    }

    fn finish(mut self, root: &Path) -> Result<ExtractStats, ExtractError> {
        // Setting a directory's time changes nothing of its parent's, so the order does not matter: all entries
        // are created by now. Each directory is opened again beneath the root and its time set through that fd:
        // later entries may have turned a component of the recorded path into a symlink leading outside, which
        // `RESOLVE_BENEATH` refuses (EXDEV), where a time set by path would have followed it. Such a directory
        // keeps its time of extraction, which is only cosmetic.
        for (path, mtime) in self.directory_times.drain() {
            let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW;
            let result = sys::open_beneath(self.root.as_fd(), &path, flags)
                .and_then(|directory| sys::set_mtime_fd(directory.as_fd(), mtime));
            if let Err(error) = result {
                log::debug!("layer {}: setting mtime of {path:?}: {error}", root.display());
            }
        }
        sys::syncfs(self.root.as_fd()).map_err(|source| ExtractError::Sync { path: root.to_path_buf(), source })?;
        Ok(self.stats)
    }
}

fn resolve_error(error: io::Error, name: &str) -> ExtractError {
    if error.raw_os_error() == Some(libc::EXDEV) {
        ExtractError::EscapesRoot { entry: name.to_string() }
    } else {
        ExtractError::ResolveParent { entry: name.to_string(), source: error }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_paths_are_normalised_or_refused() {
        let path = EntryPath::parse(b"./usr//bin/sh", "x").unwrap();
        assert_eq!(path.parent().as_bytes(), b"usr/bin");
        assert_eq!(path.file_name().unwrap().to_bytes(), b"sh");
        assert_eq!(EntryPath::parse(b"top", "x").unwrap().parent().as_bytes(), b".");
        assert!(matches!(EntryPath::parse(b"/etc/passwd", "x"), Err(ExtractError::AbsolutePath { .. })));
        assert!(matches!(EntryPath::parse(b"a/../../b", "x"), Err(ExtractError::DotDotPath { .. })));
        assert!(EntryPath::parse(b"./", "x").unwrap().file_name().is_none());
    }
}
