//! Extracts the uncompressed kernel ELF (`vmlinux`, for direct PVH boot) from the XZ payload of a Debian bzImage,
//! in pure Rust, and caches it next to the extracted package.
//!
//! The payload is one XZ stream (`xz --check=crc32 --x86 --lzma2`). `lzma-rs`'s XZ reader knows no BCJ filter, so
//! this module reads the XZ container itself, decodes the LZMA2 data with `lzma-rs`, undoes the BCJ filter with
//! [`crate::bcj_x86`] and checks the block's CRC32.

use std::path::{Path, PathBuf};

use crate::kernel_cache::KernelTree;

const XZ_MAGIC: &[u8] = b"\xfd7zXZ\0";
const FILTER_X86: u64 = 0x04;
const FILTER_LZMA2: u64 = 0x21;
const CHECK_NONE: u8 = 0x00;
const CHECK_CRC32: u8 = 0x01;

#[derive(Debug, thiserror::Error)]
pub enum VmlinuxError {
    #[error("cannot read the kernel {path}")]
    ReadKernel {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no XZ payload in the kernel image")]
    NoPayload,
    #[error("the XZ payload is malformed: {what}")]
    Malformed { what: &'static str },
    #[error("the XZ payload uses filter {id:#x}, which is not supported (only x86 BCJ and LZMA2)")]
    UnsupportedFilter { id: u64 },
    #[error("the XZ payload uses check type {check:#x}, which is not supported (only none and CRC32)")]
    UnsupportedCheck { check: u8 },
    #[error("decompressing the LZMA2 data failed: {message}")]
    Decompress { message: String },
    #[error("the decompressed kernel fails its CRC32 check")]
    Checksum,
    #[error("the decompressed kernel is not an ELF file")]
    NotElf,
    #[error("cannot write the uncompressed kernel {path}")]
    WriteCache {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Returns the path of the cached `vmlinux` of `kernel`, extracting it first if needed.
pub fn cached_vmlinux(kernel: &KernelTree) -> Result<PathBuf, VmlinuxError> {
    let path = kernel.vmlinux_cache_path();
    if path.is_file() {
        return Ok(path);
    }
    eprintln!("keel-build: extracting vmlinux from {} (once)", kernel.vmlinuz().display());
    let bzimage = std::fs::read(kernel.vmlinuz())
        .map_err(|source| VmlinuxError::ReadKernel { path: kernel.vmlinuz(), source })?;
    let elf = extract(&bzimage)?;
    write_atomically(&path, &elf)?;
    Ok(path)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), VmlinuxError> {
    let partial = path.with_extension(format!("partial-{}", std::process::id()));
    let write_error = |source| VmlinuxError::WriteCache { path: path.into(), source };
    std::fs::write(&partial, bytes).map_err(write_error)?;
    std::fs::rename(&partial, path).map_err(|source| {
        let _ = std::fs::remove_file(&partial);
        write_error(source)
    })
}

/// Finds the XZ stream in a bzImage and returns the decompressed, checked ELF.
pub fn extract(bzimage: &[u8]) -> Result<Vec<u8>, VmlinuxError> {
    let start = bzimage.windows(XZ_MAGIC.len()).position(|window| window == XZ_MAGIC).ok_or(VmlinuxError::NoPayload)?;
    let elf = decode_xz_stream(&bzimage[start..])?;
    if !elf.starts_with(b"\x7fELF") {
        return Err(VmlinuxError::NotElf);
    }
    Ok(elf)
}

/// Decodes the first block of one XZ stream (the kernel's has exactly one).
fn decode_xz_stream(stream: &[u8]) -> Result<Vec<u8>, VmlinuxError> {
    let malformed = |what| VmlinuxError::Malformed { what };
    let header = stream.get(..12).ok_or(malformed("short stream header"))?;
    if header[6] != 0
        || crc32fast::hash(&header[6..8]) != u32::from_le_bytes([header[8], header[9], header[10], header[11]])
    {
        return Err(malformed("bad stream header"));
    }
    let check = header[7] & 0x0f;
    if check != CHECK_NONE && check != CHECK_CRC32 {
        return Err(VmlinuxError::UnsupportedCheck { check });
    }
    let block = &stream[12..];
    let size_byte = *block.first().ok_or(malformed("no block"))?;
    if size_byte == 0 {
        return Err(malformed("stream has no block"));
    }
    let header_size = (usize::from(size_byte) + 1) * 4;
    let block_header = block.get(..header_size).ok_or(malformed("short block header"))?;
    let filters = parse_block_header(block_header)?;
    let mut data = &block[header_size..];
    let compressed_len = data.len();
    let mut output = Vec::new();
    lzma_rs::lzma2_decompress(&mut data, &mut output)
        .map_err(|error| VmlinuxError::Decompress { message: error.to_string() })?;
    if let Some(start_offset) = filters.x86_start_offset {
        crate::bcj_x86::decode(&mut output, start_offset);
    }
    if check == CHECK_CRC32 {
        // The check follows the compressed data, padded to a multiple of four bytes from the block's start.
        let unpadded = header_size + (compressed_len - data.len());
        let check_at = unpadded.next_multiple_of(4);
        let stored = block.get(check_at..check_at + 4).ok_or(malformed("short block check"))?;
        if crc32fast::hash(&output).to_le_bytes() != stored {
            return Err(VmlinuxError::Checksum);
        }
    }
    Ok(output)
}

struct FilterChain {
    /// `Some(start offset)` when the x86 BCJ filter is in the chain.
    x86_start_offset: Option<u32>,
}

fn parse_block_header(header: &[u8]) -> Result<FilterChain, VmlinuxError> {
    let malformed = |what| VmlinuxError::Malformed { what };
    let (body, crc) = header.split_at(header.len() - 4);
    if crc32fast::hash(body).to_le_bytes() != crc {
        return Err(malformed("bad block header CRC"));
    }
    let flags = body[1];
    let mut rest = &body[2..];
    if flags & 0x40 != 0 {
        read_varint(&mut rest)?; // compressed size: the LZMA2 end marker tells where the data ends
    }
    if flags & 0x80 != 0 {
        read_varint(&mut rest)?; // uncompressed size: checked through the CRC instead
    }
    let mut chain = FilterChain { x86_start_offset: None };
    let count = usize::from(flags & 0x03) + 1;
    for index in 0..count {
        let id = read_varint(&mut rest)?;
        let props_len = usize::try_from(read_varint(&mut rest)?).map_err(|_| malformed("filter properties"))?;
        let props = rest.get(..props_len).ok_or(malformed("short filter properties"))?;
        rest = &rest[props_len..];
        let last = index + 1 == count;
        match (id, last) {
            (FILTER_LZMA2, true) => {}
            (FILTER_X86, false) => {
                chain.x86_start_offset = Some(match props {
                    [] => 0,
                    [a, b, c, d] => u32::from_le_bytes([*a, *b, *c, *d]),
                    _ => return Err(malformed("x86 filter properties")),
                });
            }
            _ => return Err(VmlinuxError::UnsupportedFilter { id }),
        }
    }
    Ok(chain)
}

fn read_varint(input: &mut &[u8]) -> Result<u64, VmlinuxError> {
    let mut value = 0u64;
    for shift in (0..63).step_by(7) {
        let (&byte, rest) = input.split_first().ok_or(VmlinuxError::Malformed { what: "short number" })?;
        *input = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(VmlinuxError::Malformed { what: "number too long" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_plain_lzma2_stream_after_other_bytes() {
        let elf = [b"\x7fELF".as_slice(), &[7u8; 5000]].concat();
        let mut xz = Vec::new();
        lzma_rs::xz_compress(&mut elf.as_slice(), &mut xz).unwrap();
        let bzimage = [vec![0u8; 100], xz, vec![0u8; 64]].concat();
        assert_eq!(extract(&bzimage).unwrap(), elf);
    }

    #[test]
    fn refuses_images_without_payload() {
        assert!(matches!(extract(&[0u8; 64]), Err(VmlinuxError::NoPayload)));
    }
}
