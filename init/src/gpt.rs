//! Reads the unique partition GUIDs from a disk's GPT (the kernel does not publish them in sysfs), with every size
//! from the disk bounded before it is read.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// The GPT header's signature, at the start of LBA 1.
const SIGNATURE: &[u8; 8] = b"EFI PART";
/// More partition entries than any GPT keel meets (the usual table has 128).
const MAX_ENTRIES: u32 = 1024;
/// Entries are 128 bytes in practice; the spec allows 128 × 2^n.
const MAX_ENTRY_SIZE: u32 = 4096;
/// The whole table read at once: 1024 × 128 bytes is 128 KiB.
const MAX_TABLE_BYTES: u64 = 512 * 1024;

/// Where a GPT keeps its partition entries, from its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    entries_lba: u64,
    entry_count: u32,
    entry_size: u32,
}

/// The unique GUIDs of the partitions on `disk` (lowercase, `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`), in table
/// order, unused entries left out. `sector` is the disk's logical block size.
pub fn partition_guids(disk: &Path, sector: u64) -> io::Result<Vec<String>> {
    let file = File::open(disk)?;
    let mut header = vec![0u8; usize::try_from(sector).map_err(|_| invalid("sector size"))?];
    file.read_exact_at(&mut header, sector)?;
    let header = parse_header(&header)?;
    let table_len = u64::from(header.entry_count) * u64::from(header.entry_size);
    let mut table = vec![0u8; usize::try_from(table_len).map_err(|_| invalid("table size"))?];
    let offset = header.entries_lba.checked_mul(sector).ok_or_else(|| invalid("partition entry LBA"))?;
    file.read_exact_at(&mut table, offset)?;
    Ok(entry_guids(&table, header.entry_size as usize))
}

fn parse_header(block: &[u8]) -> io::Result<Header> {
    if block.get(..8) != Some(SIGNATURE.as_slice()) {
        return Err(invalid("no GPT signature in LBA 1"));
    }
    let field = |range: std::ops::Range<usize>| block.get(range).ok_or_else(|| invalid("short GPT header"));
    let u64_at = |at: usize| field(at..at + 8).map(|bytes| u64::from_le_bytes(bytes.try_into().unwrap_or_default()));
    let u32_at = |at: usize| field(at..at + 4).map(|bytes| u32::from_le_bytes(bytes.try_into().unwrap_or_default()));
    let header = Header { entries_lba: u64_at(72)?, entry_count: u32_at(80)?, entry_size: u32_at(84)? };
    let table_len = u64::from(header.entry_count) * u64::from(header.entry_size);
    if header.entry_count > MAX_ENTRIES
        || !(128..=MAX_ENTRY_SIZE).contains(&header.entry_size)
        || table_len > MAX_TABLE_BYTES
    {
        return Err(invalid("GPT header claims an implausible partition table"));
    }
    Ok(header)
}

/// The unique GUID (bytes 16..32) of every used entry (a type GUID that is not all zeros).
fn entry_guids(table: &[u8], entry_size: usize) -> Vec<String> {
    table
        .chunks_exact(entry_size)
        .filter(|entry| entry[..16].iter().any(|byte| *byte != 0))
        .map(|entry| guid_string(&entry[16..32]))
        .collect()
}

/// GPT stores the first three GUID fields little-endian and the last two as bytes.
fn guid_string(bytes: &[u8]) -> String {
    let hex = |range: &[u8]| range.iter().map(|byte| format!("{byte:02x}")).collect::<String>();
    let reversed = |range: &[u8]| range.iter().rev().map(|byte| format!("{byte:02x}")).collect::<String>();
    format!(
        "{}-{}-{}-{}-{}",
        reversed(&bytes[0..4]),
        reversed(&bytes[4..6]),
        reversed(&bytes[6..8]),
        hex(&bytes[8..10]),
        hex(&bytes[10..16])
    )
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// A real GPT written by sfdisk, read back and compared with sfdisk's own view of the partition UUIDs.
    #[test]
    fn reads_the_guids_sfdisk_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let disk = dir.path().join("disk.img");
        std::fs::File::create(&disk).unwrap().set_len(8 << 20).unwrap();
        let script = "label: gpt\nstart=2048, size=2048, name=esp, uuid=5B3D0C1A-2E4F-4A6B-8C9D-0E1F2A3B4C5D\n\
                      start=4096, size=4096, name=keel-data\n";
        let mut child = Command::new("sfdisk")
            .args(["--quiet", "--no-reread", "--no-tell-kernel"])
            .arg(&disk)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), script.as_bytes()).unwrap();
        assert!(child.wait().unwrap().success());
        let json = Command::new("sfdisk").arg("--json").arg(&disk).output().unwrap().stdout;
        let json: serde_json::Value = serde_json::from_slice(&json).unwrap();
        let expected: Vec<String> = json["partitiontable"]["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|partition| partition["uuid"].as_str().unwrap().to_lowercase())
            .collect();
        let guids = partition_guids(&disk, 512).unwrap();
        assert_eq!(guids, expected);
        assert_eq!(guids[0], "5b3d0c1a-2e4f-4a6b-8c9d-0e1f2a3b4c5d");
    }

    #[test]
    fn refuses_what_is_not_a_plausible_gpt() {
        let mut block = vec![0u8; 512];
        assert!(parse_header(&block).is_err(), "no signature");
        block[..8].copy_from_slice(SIGNATURE);
        block[72..80].copy_from_slice(&2u64.to_le_bytes());
        block[80..84].copy_from_slice(&128u32.to_le_bytes());
        block[84..88].copy_from_slice(&128u32.to_le_bytes());
        assert_eq!(parse_header(&block).unwrap(), Header { entries_lba: 2, entry_count: 128, entry_size: 128 });
        block[80..84].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(parse_header(&block).is_err(), "4 billion entries");
        block[80..84].copy_from_slice(&128u32.to_le_bytes());
        block[84..88].copy_from_slice(&7u32.to_le_bytes());
        assert!(parse_header(&block).is_err(), "entry size 7");
    }
}
