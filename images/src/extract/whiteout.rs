//! OCI whiteouts to overlayfs: `.wh.<name>` becomes a char device 0/0, `.wh..wh..opq` the opaque xattr.

use std::ffi::CStr;
use std::os::fd::BorrowedFd;

use super::sys;

const WHITEOUT_PREFIX: &[u8] = b".wh.";
const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";
/// `.wh..wh.` names other than the opaque marker are AUFS bookkeeping (`.wh..wh.plnk`, …): no meaning for us.
const META_PREFIX: &[u8] = b".wh..wh.";
const OPAQUE_XATTR: &CStr = c"trusted.overlay.opaque";

/// What an entry's last path component says about whiteouts.
#[derive(Debug, PartialEq, Eq)]
pub enum WhiteoutKind<'a> {
    /// Not a whiteout: an ordinary entry.
    None,
    /// The parent directory hides everything below it in lower layers.
    Opaque,
    /// The named sibling is deleted.
    Delete(&'a [u8]),
    /// AUFS metadata, skipped.
    Meta,
}

pub fn classify(name: &[u8]) -> WhiteoutKind<'_> {
    if name == OPAQUE_MARKER {
        WhiteoutKind::Opaque
    } else if name.starts_with(META_PREFIX) {
        WhiteoutKind::Meta
    } else if let Some(deleted) = name.strip_prefix(WHITEOUT_PREFIX) {
        WhiteoutKind::Delete(deleted)
    } else {
        WhiteoutKind::None
    }
}

/// Marks the directory `dir` opaque for overlayfs.
pub fn make_opaque(dir: BorrowedFd<'_>) -> std::io::Result<()> {
    sys::fsetxattr(dir, OPAQUE_XATTR, b"y")
}

/// Creates overlayfs's whiteout for `name` in `dir`: a character device with device number 0/0.
pub fn create_whiteout(dir: BorrowedFd<'_>, name: &CStr) -> std::io::Result<()> {
    sys::mknodat(dir, name, libc::S_IFCHR, 0, 0, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_whiteout_names() {
        assert_eq!(classify(b".wh..wh..opq"), WhiteoutKind::Opaque);
        assert_eq!(classify(b".wh..wh.plnk"), WhiteoutKind::Meta);
        assert_eq!(classify(b".wh.file"), WhiteoutKind::Delete(b"file"));
        assert_eq!(classify(b"file.wh."), WhiteoutKind::None);
        assert_eq!(classify(b"etc"), WhiteoutKind::None);
    }
}
