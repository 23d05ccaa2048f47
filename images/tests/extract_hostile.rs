//! keel's extractor against hostile and unusual layers: nothing may be written outside the layer root.

// Fixture helpers outside #[test] functions unwrap too: a failed setup should stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use keel_fixtures::images::{raw_tar, RawEntry};
use keel_fixtures::tree;
use keel_images::{extract_layer, ExtractError, ExtractOptions, LayerBudget};

struct Scene {
    _temp: tempfile::TempDir,
    root: std::path::PathBuf,
    outside: std::path::PathBuf,
    base: std::path::PathBuf,
}

/// A layer root and, beside it, an "outside" directory with a sentinel file that must stay untouched.
fn scene() -> Scene {
    let temp = tempfile::tempdir().unwrap();
    let base = temp.path().to_path_buf();
    let root = base.join("root");
    let outside = base.join("outside");
    std::fs::create_dir(&root).unwrap();
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("sentinel"), "untouched").unwrap();
    Scene { _temp: temp, root, outside, base }
}

/// Extracts `entries` into a fresh scene and asserts the result is an error naming `entry_name`, with nothing
/// changed outside.
fn assert_refused(entries: &[RawEntry<'_>], entry_name: &str) -> ExtractError {
    assert_refused_in(&scene(), entries, entry_name)
}

/// The same in a given scene, for layers that point at the scene's own outside directory.
fn assert_refused_in(scene: &Scene, entries: &[RawEntry<'_>], entry_name: &str) -> ExtractError {
    let before = tree(&scene.base).into_iter().filter(|path| !path.starts_with("root")).collect::<Vec<_>>();
    let error = extract_layer(&raw_tar(entries)[..], &scene.root, &ExtractOptions::default(), &LayerBudget::MAX)
        .expect_err("hostile layer must be refused");
    assert!(error.to_string().contains(entry_name), "error must name {entry_name:?}: {error}");
    let after = tree(&scene.base).into_iter().filter(|path| !path.starts_with("root")).collect::<Vec<_>>();
    assert_eq!(before, after, "something was written outside the layer root");
    assert_eq!(std::fs::read_to_string(scene.outside.join("sentinel")).unwrap(), "untouched");
    assert!(!Path::new("/evil").exists() && !Path::new("/tmp/evil").exists());
    error
}

#[test]
fn dot_dot_path_is_refused() {
    let error = assert_refused(&[RawEntry::File("../outside/evil", b"x")], "../outside/evil");
    assert!(matches!(error, ExtractError::DotDotPath { .. }), "{error:?}");
    let error = assert_refused(&[RawEntry::Dir("a/"), RawEntry::File("a/../../evil", b"x")], "a/../../evil");
    assert!(matches!(error, ExtractError::DotDotPath { .. }), "{error:?}");
}

#[test]
fn absolute_path_is_refused() {
    let error = assert_refused(&[RawEntry::File("/tmp/evil", b"x")], "/tmp/evil");
    assert!(matches!(error, ExtractError::AbsolutePath { .. }), "{error:?}");
}

#[test]
fn write_through_symlink_to_outside_is_refused() {
    let scene = scene();
    // Absolute symlink to the real directory outside the root, then a write through it: an extractor that
    // followed the link would create outside/file, which the scene's before/after comparison catches.
    let target = scene.outside.to_str().unwrap().to_string();
    let entries = [RawEntry::Symlink("link", &target), RawEntry::File("link/file", b"x")];
    let error = assert_refused_in(&scene, &entries, "link/file");
    assert!(matches!(error, ExtractError::EscapesRoot { .. }), "{error:?}");
    assert!(!scene.outside.join("file").exists());
    // Relative symlink climbing out to the same directory.
    let error = assert_refused(&[RawEntry::Symlink("up", "../outside"), RawEntry::File("up/file", b"x")], "up/file");
    assert!(matches!(error, ExtractError::EscapesRoot { .. }), "{error:?}");
}

#[test]
fn hardlink_to_outside_is_refused() {
    let error = assert_refused(&[RawEntry::Hardlink("passwd", "../outside/sentinel")], "passwd");
    assert!(matches!(error, ExtractError::HardlinkOutside { .. }), "{error:?}");
    let error = assert_refused(&[RawEntry::Hardlink("passwd", "/etc/passwd")], "passwd");
    assert!(matches!(error, ExtractError::HardlinkOutside { .. }), "{error:?}");
    // Through a symlink that leads outside: the sentinel would gain a second link.
    let scene = scene();
    let entries = [RawEntry::Symlink("out", "../outside"), RawEntry::Hardlink("stolen", "out/sentinel")];
    let error = assert_refused_in(&scene, &entries, "stolen");
    assert!(matches!(error, ExtractError::HardlinkOutside { .. } | ExtractError::EscapesRoot { .. }), "{error:?}");
    assert_eq!(std::fs::metadata(scene.outside.join("sentinel")).unwrap().nlink(), 1);
}

#[test]
fn symlink_chain_escaping_is_refused() {
    let error = assert_refused(
        &[
            RawEntry::Symlink("a", "b"),
            RawEntry::Symlink("b", "c/../.."),
            RawEntry::Dir("c/"),
            RawEntry::File("a/x", b"x"),
        ],
        "a/x",
    );
    assert!(matches!(error, ExtractError::EscapesRoot { .. }), "{error:?}");
    let error = assert_refused(
        &[RawEntry::Symlink("a", "b"), RawEntry::Symlink("b", "../.."), RawEntry::File("a/outside/x", b"x")],
        "a/outside/x",
    );
    assert!(matches!(error, ExtractError::EscapesRoot { .. }), "{error:?}");
}

#[test]
fn ordinary_entries_are_recreated_faithfully() {
    let scene = scene();
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Directory);
    header.set_mode(0o750);
    header.set_uid(1000);
    header.set_gid(1000);
    header.set_mtime(1_600_000_000);
    header.set_size(0);
    builder.append_data(&mut header.clone(), "home/user/", &[][..]).unwrap();
    let mut file = tar::Header::new_gnu();
    file.set_mode(0o4755);
    file.set_uid(1000);
    file.set_gid(1000);
    file.set_mtime(1_500_000_000);
    file.set_size(5);
    builder.append_pax_extensions([("SCHILY.xattr.user.keel", &b"yes"[..])]).unwrap();
    builder.append_data(&mut file, "home/user/tool", &b"hello"[..]).unwrap();
    let mut link = tar::Header::new_gnu();
    link.set_entry_type(tar::EntryType::Link);
    link.set_size(0);
    builder.append_link(&mut link, "home/user/tool-again", "home/user/tool").unwrap();
    let mut device = tar::Header::new_gnu();
    device.set_entry_type(tar::EntryType::Char);
    device.set_mode(0o666);
    device.set_device_major(1).unwrap();
    device.set_device_minor(3).unwrap();
    device.set_size(0);
    builder.append_data(&mut device, "dev/null", &[][..]).unwrap();
    let mut fifo = tar::Header::new_gnu();
    fifo.set_entry_type(tar::EntryType::Fifo);
    fifo.set_mode(0o600);
    fifo.set_size(0);
    builder.append_data(&mut fifo, "run/pipe", &[][..]).unwrap();
    let mut whiteout = tar::Header::new_gnu();
    whiteout.set_size(0);
    builder.append_data(&mut whiteout, "etc/.wh.removed", &[][..]).unwrap();
    let mut symlink = tar::Header::new_gnu();
    symlink.set_entry_type(tar::EntryType::Symlink);
    symlink.set_size(0);
    symlink.set_mtime(1_400_000_000);
    builder.append_link(&mut symlink, "abs-link", "/etc/passwd").unwrap();
    let tar = builder.into_inner().unwrap();

    let stats = extract_layer(&tar[..], &scene.root, &ExtractOptions::default(), &LayerBudget::MAX).unwrap();
    assert_eq!(stats.skipped, 0);
    let root = &scene.root;
    let tool = std::fs::metadata(root.join("home/user/tool")).unwrap();
    assert_eq!(tool.mode() & 0o7777, 0o4755, "setuid survives the chown");
    assert_eq!((tool.uid(), tool.gid(), tool.mtime()), (1000, 1000, 1_500_000_000));
    assert_eq!(tool.nlink(), 2, "hard link shares the inode");
    let user_dir = std::fs::metadata(root.join("home/user")).unwrap();
    assert_eq!((user_dir.mode() & 0o7777, user_dir.mtime()), (0o750, 1_600_000_000));
    let null = std::fs::metadata(root.join("dev/null")).unwrap();
    assert!(null.file_type().is_char_device() && null.rdev() == libc::makedev(1, 3) && null.mode() & 0o777 == 0o666);
    assert!(std::fs::symlink_metadata(root.join("run/pipe")).unwrap().file_type().is_fifo());
    let removed = std::fs::symlink_metadata(root.join("etc/removed")).unwrap();
    assert!(removed.file_type().is_char_device() && removed.rdev() == 0);
    assert!(!root.join("etc/.wh.removed").exists());
    assert_eq!(std::fs::read_link(root.join("abs-link")).unwrap(), Path::new("/etc/passwd"));
    assert_eq!(std::fs::symlink_metadata(root.join("abs-link")).unwrap().mtime(), 1_400_000_000);
    let mut value = [0u8; 8];
    let path = std::ffi::CString::new(root.join("home/user/tool").to_str().unwrap()).unwrap();
    // SAFETY: `path` and the attribute name are NUL-terminated; `value` is writable for its length.
    let size = unsafe { libc::getxattr(path.as_ptr(), c"user.keel".as_ptr(), value.as_mut_ptr().cast(), value.len()) };
    assert_eq!(&value[..size.max(0) as usize], b"yes");
}

#[test]
fn compressed_streams_are_detected() {
    let scene = scene();
    let tar = raw_tar(&[RawEntry::File("a", b"gz")]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &tar).unwrap();
    let gz = gz.finish().unwrap();
    let reader = keel_images::extract::decompress(&gz[..]).unwrap();
    extract_layer(reader, &scene.root, &ExtractOptions::default(), &LayerBudget::MAX).unwrap();
    assert_eq!(std::fs::read(scene.root.join("a")).unwrap(), b"gz");
    let zst = zstd::encode_all(&raw_tar(&[RawEntry::File("b", b"zst")])[..], 3).unwrap();
    let reader = keel_images::extract::decompress(&zst[..]).unwrap();
    extract_layer(reader, &scene.root, &ExtractOptions::default(), &LayerBudget::MAX).unwrap();
    assert_eq!(std::fs::read(scene.root.join("b")).unwrap(), b"zst");
}

#[test]
fn directory_times_are_not_set_through_a_swapped_parent() {
    let scene = scene();
    let outside_mtime = || std::fs::metadata(&scene.outside).unwrap().mtime();
    let before = outside_mtime();
    // `link/outside/` is created through `link -> .`, so its time is recorded for the path `link/outside`; then
    // `link` becomes a symlink to the scene's base. Setting the time by path at the end would resolve
    // `link/outside` to the real outside directory and give it the layer's mtime (1_700_000_000).
    let base = scene.base.to_str().unwrap().to_string();
    let entries = [RawEntry::Symlink("link", "."), RawEntry::Dir("link/outside/"), RawEntry::Symlink("link", &base)];
    let result = extract_layer(&raw_tar(&entries)[..], &scene.root, &ExtractOptions::default(), &LayerBudget::MAX);
    assert_eq!(outside_mtime(), before, "the outside directory's mtime changed ({result:?})");
    assert_eq!(std::fs::read_to_string(scene.outside.join("sentinel")).unwrap(), "untouched");
    // The directory inside the root exists; the layer itself is accepted (nothing in it is out of bounds).
    assert!(result.is_ok(), "{result:?}");
    assert!(scene.root.join("outside").is_dir());
}
