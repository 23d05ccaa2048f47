//! What one layer may cost the host: a budget of bytes and entries, derived from the layer's compressed size.
//!
//! A layer is unpacked before its `diff_id` is known to match, so nothing in it may be trusted to be small: a
//! few MB of zstd can expand to terabytes of zeros or to millions of identical headers. The budget bounds both,
//! from the size the manifest gives the compressed blob (which the download is held to) and ceilings that no
//! layer passes, however large.

/// The most one entry's headers may take: its PAX records, GNU long name and long link name and sparse map
/// together (a path is at most 4 KiB, an ext4 inode's xattrs at most a few KiB).
pub const MAX_ENTRY_HEADERS: u64 = 1 << 20;

/// How much larger than its compressed blob a layer may unpack: deflate cannot exceed 1032:1, so no gzip layer
/// ever reaches this; zstd can, but only with content that is mostly zeros.
pub const EXPANSION_RATIO: u64 = 1024;

/// Every layer may unpack to this much, however small its blob (an empty layer is a few dozen bytes of gzip).
pub const MIN_LAYER_BYTES: u64 = 64 << 20;

/// No layer unpacks to more than this, whatever its manifest says.
pub const MAX_LAYER_BYTES: u64 = 64 << 30;

/// Every layer may have this many entries, however small its blob.
pub const MIN_LAYER_ENTRIES: u64 = 1 << 16;

/// No layer has more entries than this (large `node_modules` layers have a few hundred thousand).
pub const MAX_LAYER_ENTRIES: u64 = 1 << 20;

/// The limits of one layer's extraction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerBudget {
    /// Bounds the uncompressed tar stream and, separately, the total size of the files it creates, sparse holes
    /// included (a hole costs no disk, but every later copy of the file, an overlayfs copy-up too, reads it).
    pub bytes: u64,
    /// Tar entries of any kind, the ones skipped included.
    pub entries: u64,
}

impl LayerBudget {
    /// The ceilings: what a layer of any size may do.
    pub const MAX: LayerBudget = LayerBudget { bytes: MAX_LAYER_BYTES, entries: MAX_LAYER_ENTRIES };

    /// The budget of a layer whose compressed blob has `compressed_size` bytes (the manifest's size, which the
    /// download is held to). Entries: at least one compressed byte each, which no real layer comes near (a
    /// header with a new name costs a gzip or zstd stream ten bytes or more).
    pub fn for_compressed_size(compressed_size: u64) -> LayerBudget {
        LayerBudget {
            bytes: compressed_size.saturating_mul(EXPANSION_RATIO).clamp(MIN_LAYER_BYTES, MAX_LAYER_BYTES),
            entries: compressed_size.clamp(MIN_LAYER_ENTRIES, MAX_LAYER_ENTRIES),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_grow_with_the_blob_between_floor_and_ceiling() {
        let tiny = LayerBudget::for_compressed_size(32);
        assert_eq!((tiny.bytes, tiny.entries), (MIN_LAYER_BYTES, MIN_LAYER_ENTRIES));
        let medium = LayerBudget::for_compressed_size(10 << 20);
        assert_eq!((medium.bytes, medium.entries), (10 << 30, MAX_LAYER_ENTRIES));
        assert_eq!(LayerBudget::for_compressed_size(u64::MAX), LayerBudget::MAX);
    }
}
