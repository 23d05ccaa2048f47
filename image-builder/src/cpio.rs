//! Writes a deterministic `newc` cpio archive, the format the kernel unpacks as an initramfs: entries sorted by
//! path (parents first), sequential inode numbers, uid/gid 0, one fixed mtime, and the `TRAILER!!!` entry.

use std::collections::BTreeMap;
use std::io::Write;

const DIR_TYPE: u32 = 0o040000;
const FILE_TYPE: u32 = 0o100000;
const TRAILER: &str = "TRAILER!!!";

#[derive(Debug, thiserror::Error)]
pub enum CpioError {
    #[error("{path:?} is not a relative path without '.', '..' or empty parts")]
    BadPath { path: String },
    #[error("{path:?} is in the archive twice, or below a file")]
    PathConflict { path: String },
    #[error("{path:?} is too large for a cpio entry ({size} bytes)")]
    TooLarge { path: String, size: usize },
    #[error("writing the cpio archive failed")]
    Write(#[source] std::io::Error),
}

#[derive(Debug, Clone)]
enum Entry {
    Dir { mode: u32 },
    File { mode: u32, data: Vec<u8> },
}

/// An archive being assembled in memory.
#[derive(Debug, Clone, Default)]
pub struct CpioArchive {
    entries: BTreeMap<String, Entry>,
}

fn clean_path(path: &str) -> Result<String, CpioError> {
    let relative = path.trim_start_matches('/');
    if relative.is_empty() || relative.split('/').any(|part| matches!(part, "" | "." | "..")) {
        return Err(CpioError::BadPath { path: path.to_owned() });
    }
    Ok(relative.to_owned())
}

impl CpioArchive {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a directory (and its missing parents, mode 0755); adding an existing directory again is allowed.
    pub fn add_dir(&mut self, path: &str, mode: u32) -> Result<(), CpioError> {
        let path = clean_path(path)?;
        self.add_parents(&path)?;
        match self.entries.get(&path) {
            Some(Entry::File { .. }) => Err(CpioError::PathConflict { path }),
            Some(Entry::Dir { .. }) => Ok(()),
            None => {
                self.entries.insert(path, Entry::Dir { mode: mode & 0o7777 });
                Ok(())
            }
        }
    }

    /// Adds a regular file (and its missing parent directories, mode 0755).
    pub fn add_file(&mut self, path: &str, mode: u32, data: Vec<u8>) -> Result<(), CpioError> {
        let path = clean_path(path)?;
        if u32::try_from(data.len()).is_err() {
            return Err(CpioError::TooLarge { path, size: data.len() });
        }
        self.add_parents(&path)?;
        if self.entries.contains_key(&path) {
            return Err(CpioError::PathConflict { path });
        }
        self.entries.insert(path, Entry::File { mode: mode & 0o7777, data });
        Ok(())
    }

    fn add_parents(&mut self, path: &str) -> Result<(), CpioError> {
        let mut end = 0;
        while let Some(offset) = path[end..].find('/') {
            end += offset;
            let parent = &path[..end];
            match self.entries.get(parent) {
                Some(Entry::File { .. }) => return Err(CpioError::PathConflict { path: path.to_owned() }),
                Some(Entry::Dir { .. }) => {}
                None => {
                    self.entries.insert(parent.to_owned(), Entry::Dir { mode: 0o755 });
                }
            }
            end += 1;
        }
        Ok(())
    }

    /// Writes the archive; every entry gets `mtime`.
    pub fn write_to<W: Write>(&self, out: &mut W, mtime: u32) -> Result<(), CpioError> {
        let mut writer = NewcWriter { out, written: 0 };
        for (inode, (path, entry)) in (1u32..).zip(&self.entries) {
            let (mode, nlink, data) = match entry {
                Entry::Dir { mode } => (DIR_TYPE | mode, 2, &[][..]),
                Entry::File { mode, data } => (FILE_TYPE | mode, 1, data.as_slice()),
            };
            writer.entry(path, inode, mode, nlink, mtime, data).map_err(CpioError::Write)?;
        }
        writer.entry(TRAILER, 0, 0, 1, 0, &[]).map_err(CpioError::Write)?;
        Ok(())
    }
}

struct NewcWriter<'a, W: Write> {
    out: &'a mut W,
    written: usize,
}

impl<W: Write> NewcWriter<'_, W> {
    fn entry(&mut self, name: &str, inode: u32, mode: u32, nlink: u32, mtime: u32, data: &[u8]) -> std::io::Result<()> {
        // Sizes were checked against u32 when the entry was added; names are short paths.
        let name_size = name.len() as u32 + 1;
        let file_size = data.len() as u32;
        // magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor, rdevminor, namesize, check
        let header = format!(
            "070701{inode:08x}{mode:08x}{:08x}{:08x}{nlink:08x}{mtime:08x}{file_size:08x}{:08x}{:08x}{:08x}{:08x}{name_size:08x}{:08x}",
            0, 0, 0, 0, 0, 0, 0
        );
        self.write(header.as_bytes())?;
        self.write(name.as_bytes())?;
        self.write(&[0])?;
        self.pad()?;
        self.write(data)?;
        self.pad()
    }

    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len();
        Ok(())
    }

    fn pad(&mut self) -> std::io::Result<()> {
        let padding = self.written.next_multiple_of(4) - self.written;
        self.write(&[0; 3][..padding])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(field: &[u8]) -> u32 {
        u32::from_str_radix(std::str::from_utf8(field).unwrap(), 16).unwrap()
    }

    /// (name, mode, mtime, data) of every entry, parsed independently of the writer.
    fn parse(mut archive: &[u8]) -> Vec<(String, u32, u32, Vec<u8>)> {
        let mut entries = Vec::new();
        let mut offset = 0;
        loop {
            assert_eq!(&archive[..6], b"070701");
            let field = |index: usize| hex(&archive[6 + 8 * index..14 + 8 * index]);
            let (mode, mtime, size, name_size) = (field(1), field(5), field(6) as usize, field(11) as usize);
            assert_eq!((field(2), field(3)), (0, 0), "uid/gid");
            let name = std::str::from_utf8(&archive[110..110 + name_size - 1]).unwrap().to_owned();
            let data_start = (offset + 110 + name_size).next_multiple_of(4) - offset;
            let data = archive[data_start..data_start + size].to_vec();
            let next = (offset + data_start + size).next_multiple_of(4) - offset;
            offset += next;
            archive = &archive[next..];
            if name == TRAILER {
                assert!(archive.is_empty());
                return entries;
            }
            entries.push((name, mode, mtime, data));
        }
    }

    fn sample() -> Vec<u8> {
        let mut archive = CpioArchive::new();
        archive.add_file("/lib/modules/kernel/fs/x.ko", 0o644, b"module".to_vec()).unwrap();
        archive.add_file("/init", 0o755, b"#!init".to_vec()).unwrap();
        archive.add_dir("/proc", 0o755).unwrap();
        archive.add_dir("/lib", 0o755).unwrap();
        let mut bytes = Vec::new();
        archive.write_to(&mut bytes, 1_764_374_400).unwrap();
        bytes
    }

    #[test]
    fn writes_sorted_entries_with_parents_first() {
        let entries = parse(&sample());
        let names: Vec<&str> = entries.iter().map(|entry| entry.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "init",
                "lib",
                "lib/modules",
                "lib/modules/kernel",
                "lib/modules/kernel/fs",
                "lib/modules/kernel/fs/x.ko",
                "proc"
            ]
        );
        assert_eq!(entries[0].1, 0o100755);
        assert_eq!(entries[1].1, 0o040755);
        assert_eq!(entries[5].3, b"module");
        assert!(entries.iter().all(|entry| entry.2 == 1_764_374_400));
    }

    #[test]
    fn gnu_cpio_reads_it() {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("test.cpio");
        std::fs::write(&archive, sample()).unwrap();
        let listing = std::process::Command::new("cpio").args(["-it", "--quiet", "-F"]).arg(&archive).output().unwrap();
        assert!(listing.status.success());
        let listing = String::from_utf8(listing.stdout).unwrap();
        assert_eq!(listing.lines().next(), Some("init"));
        assert!(listing.lines().any(|line| line == "lib/modules/kernel/fs/x.ko"));
        let content = std::process::Command::new("cpio")
            .args(["-i", "--quiet", "--to-stdout", "-F"])
            .arg(&archive)
            .arg("lib/modules/kernel/fs/x.ko")
            .output()
            .unwrap();
        assert_eq!(content.stdout, b"module");
    }

    #[test]
    fn refuses_conflicts_and_bad_paths() {
        let mut archive = CpioArchive::new();
        archive.add_file("a", 0o644, Vec::new()).unwrap();
        assert!(matches!(archive.add_file("a/b", 0o644, Vec::new()), Err(CpioError::PathConflict { .. })));
        assert!(matches!(archive.add_file("a", 0o644, Vec::new()), Err(CpioError::PathConflict { .. })));
        assert!(matches!(archive.add_dir("x/../y", 0o755), Err(CpioError::BadPath { .. })));
    }
}
