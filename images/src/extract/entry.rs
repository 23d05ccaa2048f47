//! Creates one tar entry (file, directory, symlink, hard link, device, FIFO) relative to its parent's fd, with
//! owner, mode, xattrs and mtime.

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileExt;

use super::{sys, EntryPath, ExtractError, Extractor};

/// Mode bits a tar header may carry: permissions plus setuid, setgid, sticky.
const MODE_MASK: u32 = 0o7777;

impl Extractor {
    pub(super) fn create<R: Read>(
        &mut self,
        parent: &OwnedFd,
        path: &EntryPath,
        file_name: &CStr,
        entry: &mut tar::Entry<'_, R>,
        name: &str,
    ) -> Result<(), ExtractError> {
        let xattrs = read_xattrs(entry, name)?;
        let header = entry.header();
        let entry_type = header.entry_type();
        let mode = header.mode().unwrap_or(0o644) & MODE_MASK;
        let uid = header.uid().unwrap_or(0) as u32;
        let gid = header.gid().unwrap_or(0) as u32;
        let mtime = header.mtime().unwrap_or(0) as i64;
        let dir = parent.as_fd();
        let create_error = |source| ExtractError::Create { entry: name.to_string(), source };
        match entry_type {
            tar::EntryType::Directory => {
                if sys::file_type_nofollow(dir, file_name).map_err(create_error)? != Some(libc::S_IFDIR) {
                    remove_existing(dir, file_name, name)?;
                    sys::mkdirat(dir, file_name, 0o700).map_err(create_error)?;
                }
                let handle =
                    sys::open_child(dir, file_name, libc::O_RDONLY | libc::O_DIRECTORY, 0).map_err(create_error)?;
                self.set_owner(dir, file_name, uid, gid, name)?;
                sys::fchmod(handle.as_fd(), mode).map_err(|source| metadata_error(name, "mode", source))?;
                self.set_xattrs(&xattrs, |attribute, value| sys::fsetxattr(handle.as_fd(), attribute, value), name)?;
                let mut full_path = path.parent().into_bytes();
                full_path.push(b'/');
                full_path.extend_from_slice(file_name.to_bytes());
                self.record_directory_time(CString::new(full_path).unwrap_or_default(), mtime);
                return Ok(());
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                remove_existing(dir, file_name, name)?;
                let handle = sys::open_child(dir, file_name, libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL, 0o600)
                    .map_err(create_error)?;
                let mut file = File::from(handle);
                let sparse = entry_type == tar::EntryType::GNUSparse;
                copy_content(entry, &mut file, &mut self.buffer, sparse)
                    .map_err(|source| ExtractError::WriteContent { entry: name.to_string(), source })?;
                self.set_owner(dir, file_name, uid, gid, name)?;
                // After chown: chown clears setuid/setgid bits.
                sys::fchmod(file.as_fd(), mode).map_err(|source| metadata_error(name, "mode", source))?;
                self.set_xattrs(&xattrs, |attribute, value| sys::fsetxattr(file.as_fd(), attribute, value), name)?;
            }
            tar::EntryType::Symlink => {
                let target = entry.link_name_bytes().unwrap_or_default().into_owned();
                let target = CString::new(target).map_err(|_| ExtractError::NulInPath { entry: name.to_string() })?;
                remove_existing(dir, file_name, name)?;
                sys::symlinkat(&target, dir, file_name).map_err(create_error)?;
                self.set_owner(dir, file_name, uid, gid, name)?;
                self.set_xattrs(&xattrs, |attribute, value| sys::lsetxattr_at(dir, file_name, attribute, value), name)?;
            }
            tar::EntryType::Link => {
                // A hard link shares the target's inode: its metadata is the target's, nothing to set.
                return self.hard_link(dir, file_name, entry, name);
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                if !self.options.privileged {
                    log::warn!("layer entry {name:?}: device nodes and FIFOs need root, skipped");
                    self.stats.skipped += 1;
                    return Ok(());
                }
                let kind = match entry_type {
                    tar::EntryType::Char => libc::S_IFCHR,
                    tar::EntryType::Block => libc::S_IFBLK,
                    _ => libc::S_IFIFO,
                };
                let major = header.device_major().ok().flatten().unwrap_or(0);
                let minor = header.device_minor().ok().flatten().unwrap_or(0);
                remove_existing(dir, file_name, name)?;
                sys::mknodat(dir, file_name, kind, 0o600, major, minor).map_err(create_error)?;
                self.set_owner(dir, file_name, uid, gid, name)?;
                sys::chmod_nofollow(dir, file_name, mode).map_err(|source| metadata_error(name, "mode", source))?;
                self.set_xattrs(&xattrs, |attribute, value| sys::lsetxattr_at(dir, file_name, attribute, value), name)?;
            }
            other => {
                log::warn!("layer entry {name:?}: unsupported tar entry type {other:?}, skipped");
                self.stats.skipped += 1;
                return Ok(());
            }
        }
        sys::set_mtime_nofollow(dir, file_name, mtime).map_err(|source| metadata_error(name, "mtime", source))
    }

    /// Links `file_name` to an earlier entry of the same layer. The target name is checked like an entry name and
    /// resolved beneath the root, so a link can never reach a file outside.
    fn hard_link<R: Read>(
        &mut self,
        dir: BorrowedFd<'_>,
        file_name: &CStr,
        entry: &tar::Entry<'_, R>,
        name: &str,
    ) -> Result<(), ExtractError> {
        let target_raw = entry.link_name_bytes().unwrap_or_default().into_owned();
        let target_name = String::from_utf8_lossy(&target_raw).into_owned();
        let outside = || ExtractError::HardlinkOutside { entry: name.to_string(), target: target_name.clone() };
        let target = EntryPath::parse(&target_raw, name).map_err(|_| outside())?;
        let Some(target_file) = target.file_name() else { return Err(outside()) };
        let target_parent = sys::open_beneath(self.root.as_fd(), &target.parent(), libc::O_RDONLY | libc::O_DIRECTORY)
            .map_err(|error| {
                if error.raw_os_error() == Some(libc::EXDEV) {
                    outside()
                } else {
                    ExtractError::ResolveParent { entry: name.to_string(), source: error }
                }
            })?;
        remove_existing(dir, file_name, name)?;
        sys::linkat(target_parent.as_fd(), target_file, dir, file_name)
            .map_err(|source| ExtractError::Create { entry: name.to_string(), source })
    }

    fn set_owner(
        &self,
        dir: BorrowedFd<'_>,
        file_name: &CStr,
        uid: u32,
        gid: u32,
        name: &str,
    ) -> Result<(), ExtractError> {
        if !self.options.privileged {
            return Ok(());
        }
        sys::chown_nofollow(dir, file_name, uid, gid).map_err(|source| metadata_error(name, "owner", source))
    }

    fn set_xattrs(
        &self,
        xattrs: &[(CString, Vec<u8>)],
        set: impl Fn(&CStr, &[u8]) -> io::Result<()>,
        name: &str,
    ) -> Result<(), ExtractError> {
        for (attribute, value) in xattrs {
            match set(attribute, value) {
                Ok(()) => {}
                // Filesystems without xattrs, or `trusted.*` without root: the layer is still usable.
                Err(error) if matches!(error.raw_os_error(), Some(libc::ENOTSUP) | Some(libc::EPERM)) => {
                    log::warn!("layer entry {name:?}: xattr {attribute:?} not set: {error}");
                }
                Err(source) => return Err(metadata_error(name, "an xattr", source)),
            }
        }
        Ok(())
    }
}

fn metadata_error(name: &str, what: &'static str, source: io::Error) -> ExtractError {
    ExtractError::SetMetadata { entry: name.to_string(), what, source }
}

/// PAX `SCHILY.xattr.<name>` records, read before the entry's data.
fn read_xattrs<R: Read>(entry: &mut tar::Entry<'_, R>, name: &str) -> Result<Vec<(CString, Vec<u8>)>, ExtractError> {
    let mut xattrs = Vec::new();
    let extensions = entry.pax_extensions().map_err(|source| ExtractError::ReadArchive { source })?;
    for extension in extensions.into_iter().flatten() {
        let extension = extension.map_err(|source| ExtractError::ReadArchive { source })?;
        let Ok(key) = extension.key() else { continue };
        if let Some(attribute) = key.strip_prefix("SCHILY.xattr.") {
            let attribute = CString::new(attribute).map_err(|_| ExtractError::NulInPath { entry: name.to_string() })?;
            xattrs.push((attribute, extension.value_bytes().to_vec()));
        }
    }
    Ok(xattrs)
}

/// Copies an entry's content into `file`. A GNU sparse entry's holes come out of the `tar` crate as zeros: for
/// one, runs of zeros are skipped rather than written (the file is new, so they read back as zeros), and the
/// length is set at the end, so its holes stay holes.
fn copy_content(reader: &mut impl Read, file: &mut File, buffer: &mut [u8], sparse: bool) -> io::Result<()> {
    let mut length: u64 = 0;
    loop {
        let count = match reader.read(buffer) {
            Ok(0) => break,
            Ok(count) => count,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        if sparse {
            for block in buffer[..count].chunks(HOLE_BLOCK) {
                if !is_zero(block) {
                    file.write_all_at(block, length)?;
                }
                length += block.len() as u64;
            }
        } else {
            file.write_all(&buffer[..count])?;
            length += count as u64;
        }
    }
    if sparse {
        file.set_len(length)?;
    }
    Ok(())
}

/// The granularity at which zeros of a sparse entry become holes: a filesystem block.
const HOLE_BLOCK: usize = 4096;

fn is_zero(block: &[u8]) -> bool {
    // A fold without early exit: the compiler vectorises it, and most blocks are all zeros or not at all.
    block.iter().fold(0u8, |any, &byte| any | byte) == 0
}

/// Makes room for a new entry: unlinks whatever is there (an empty directory too); a missing one is fine.
pub(super) fn remove_existing(dir: BorrowedFd<'_>, file_name: &CStr, name: &str) -> Result<(), ExtractError> {
    let create_error = |source| ExtractError::Create { entry: name.to_string(), source };
    match sys::file_type_nofollow(dir, file_name).map_err(create_error)? {
        None => Ok(()),
        Some(libc::S_IFDIR) => sys::unlinkat(dir, file_name, true).map_err(create_error),
        Some(_) => sys::unlinkat(dir, file_name, false).map_err(create_error),
    }
}
