//! Layers built to exhaust the host, from the attacker's side: an 8 GiB PAX header or GNU long name, a 1 TiB
//! sparse file with no data, 50 million repeats of one directory. Each must fail on its limit having read,
//! written and held little. The tar streams are written here header by header (raw 512-byte blocks) and the
//! long ones are generated while they are read, never held in memory.

// Fixture helpers outside #[test] functions unwrap too: a failed setup should stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Mutex;

use keel_images::extract::budget::{MAX_ENTRY_HEADERS, MAX_LAYER_ENTRIES};
use keel_images::{extract_layer, ExtractError, ExtractOptions, LayerBudget};

/// The tests measure the process's peak RSS: one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

const GIB: u64 = 1 << 30;
const TIB: u64 = 1 << 40;

/// A header block: `name`, type flag, size, mode 0755, GNU magic; `change` edits it before the checksum.
fn header(name: &str, kind: u8, size: u64, change: impl FnOnce(&mut [u8; 512])) -> [u8; 512] {
    let mut block = [0u8; 512];
    block[..name.len()].copy_from_slice(name.as_bytes());
    octal(&mut block[100..108], 0o755);
    octal(&mut block[108..116], 0);
    octal(&mut block[116..124], 0);
    number(&mut block[124..136], size);
    octal(&mut block[136..148], 1_700_000_000);
    block[156] = kind;
    block[257..265].copy_from_slice(b"ustar  \0");
    change(&mut block);
    block[148..156].fill(b' ');
    let sum: u32 = block.iter().map(|&byte| u32::from(byte)).sum();
    block[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    block
}

/// Writes `value` as NUL-terminated octal filling the field.
fn octal(field: &mut [u8], value: u64) {
    let digits = format!("{value:0width$o}\0", width = field.len() - 1);
    field.copy_from_slice(digits.as_bytes());
}

/// Octal if it fits, else GNU base-256 (high bit set, big-endian), as GNU tar writes sizes of 8 GiB and more.
fn number(field: &mut [u8], value: u64) {
    if value < 1 << (3 * (field.len() - 1)) {
        return octal(field, value);
    }
    field.fill(0);
    field[0] = 0x80;
    let end = field.len();
    field[end - 8..].copy_from_slice(&value.to_be_bytes());
}

/// `prefix`, then `filler` forever (or until `length` bytes in all): a stream that is never held in memory.
struct Generated {
    prefix: Vec<u8>,
    filler: Vec<u8>,
    length: u64,
    produced: u64,
}

impl Read for Generated {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.length - self.produced;
        let count = (buf.len() as u64).min(left) as usize;
        for (index, byte) in buf[..count].iter_mut().enumerate() {
            let at = self.produced + index as u64;
            *byte = match usize::try_from(at).ok().and_then(|at| self.prefix.get(at)) {
                Some(&byte) => byte,
                None => self.filler[((at - self.prefix.len() as u64) % self.filler.len() as u64) as usize],
            };
        }
        self.produced += count as u64;
        Ok(count)
    }
}

/// Counts what the extractor reads from the stream.
struct Counting<R> {
    inner: R,
    read: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let count = self.inner.read(buf)?;
        self.read += count as u64;
        Ok(count)
    }
}

/// The peak resident set of this process (`VmHWM`), in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|line| line.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

/// Starts a new peak: the kernel resets `VmHWM` to the current RSS on `5` in `clear_refs`.
fn reset_peak_rss() {
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
}

fn current_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|line| line.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

/// Bytes the filesystem allocated for everything under `dir`.
fn allocated(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        total += meta.blocks() * 512;
        if meta.is_dir() {
            total += allocated(&entry.path());
        }
    }
    total
}

fn extension_attack(kind: u8, what: &str) {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let temp = tempfile::tempdir().unwrap();
    // The header claims 8 GiB and the stream holds them: a reader that took the header at its word would have
    // 8 GiB in memory before it saw the entry (and long before the layer's digest is known).
    let prefix = header("././@LongLink", kind, 8 * GIB, |_| {}).to_vec();
    let stream = Generated { prefix, filler: b"path=aaaaaaaa".to_vec(), length: 512 + 8 * GIB, produced: 0 };
    let mut counting = Counting { inner: stream, read: 0 };
    reset_peak_rss();
    let before = current_rss();
    let result = extract_layer(&mut counting, temp.path(), &ExtractOptions::default(), &LayerBudget::MAX);
    let growth = peak_rss().saturating_sub(before);
    let error = result.expect_err("an 8 GiB extension header must be refused");
    println!("{what}: refused after reading {} bytes, peak RSS growth {} KiB: {error}", counting.read, growth >> 10);
    assert!(
        matches!(error, ExtractError::ExtensionTooLarge { size, limit, .. } if size == 8 * GIB && limit == MAX_ENTRY_HEADERS),
        "{error:?}"
    );
    assert!(error.to_string().contains("8589934592 bytes"), "the error gives the size: {error}");
    assert!(counting.read <= 4 << 20, "read {} bytes of the stream", counting.read);
    assert!(growth < 16 << 20, "peak RSS grew by {growth} bytes");
}

#[test]
fn an_8_gib_pax_header_fails_after_reading_a_few_mib() {
    extension_attack(b'x', "PAX header");
}

#[test]
fn an_8_gib_gnu_long_name_fails_after_reading_a_few_mib() {
    extension_attack(b'L', "GNU long name");
}

/// A GNU sparse file of `real_size` bytes whose only data is `data` at its end (no data: a zero-length block
/// at the end, which is how GNU tar marks a file that is all hole).
fn sparse_entry(name: &str, real_size: u64, data: &[u8]) -> Vec<u8> {
    let block = header(name, b'S', data.len() as u64, |block| {
        // sparse[0] at 386: offset (12 bytes), numbytes (12 bytes); realsize at 483.
        number(&mut block[386..398], real_size - data.len() as u64);
        number(&mut block[398..410], data.len() as u64);
        number(&mut block[483..495], real_size);
    });
    let mut out = block.to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

#[test]
fn a_1_tib_sparse_entry_fails_on_the_budget_having_written_at_most_the_budget() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let temp = tempfile::tempdir().unwrap();
    // A sparse file within the budget first, to show that its hole stays a hole; then the 1 TiB one.
    let mut tar = sparse_entry("small-hole", 32 << 20, &[0xab; 4096]);
    tar.extend(sparse_entry("huge-hole", TIB, &[]));
    tar.resize(tar.len() + 1024, 0);
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    io::Write::write_all(&mut gzip, &tar).unwrap();
    let compressed = gzip.finish().unwrap();
    let budget = LayerBudget::for_compressed_size(compressed.len() as u64);
    let reader = keel_images::extract::decompress(&compressed[..]).unwrap();
    let error = extract_layer(reader, temp.path(), &ExtractOptions::default(), &budget)
        .expect_err("a 1 TiB sparse file must not fit a layer of a few hundred bytes");
    let written = allocated(temp.path());
    let small = std::fs::metadata(temp.path().join("small-hole")).unwrap();
    println!(
        "{} bytes of gzip, budget {} bytes: {error}; {written} bytes allocated; small-hole {} bytes in {} allocated",
        compressed.len(),
        budget.bytes,
        small.len(),
        small.blocks() * 512
    );
    assert!(
        matches!(&error, ExtractError::OverByteBudget { entry, limit } if entry == "huge-hole" && *limit == budget.bytes),
        "{error:?}"
    );
    assert!(written <= budget.bytes, "{written} bytes written, over the budget of {}", budget.bytes);
    assert!(!temp.path().join("huge-hole").exists(), "nothing of the refused entry is written");
    assert_eq!(small.len(), 32 << 20);
    assert!(small.blocks() * 512 <= 256 << 10, "the hole was written as zeros: {} bytes", small.blocks() * 512);
    let mut tail = vec![0u8; 4096];
    let file = std::fs::File::open(temp.path().join("small-hole")).unwrap();
    std::os::unix::fs::FileExt::read_exact_at(&file, &mut tail, (32 << 20) - 4096).unwrap();
    assert_eq!(tail, vec![0xab; 4096], "the data after the hole is in place");
}

#[test]
fn fifty_million_repeats_of_a_directory_fail_on_the_entry_budget_without_memory_growth() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let temp = tempfile::tempdir().unwrap();
    let repeats: u64 = 50_000_000;
    let directory = header("d/", b'5', 0, |_| {}).to_vec();
    let stream = Generated { prefix: Vec::new(), filler: directory, length: repeats * 512, produced: 0 };
    let mut counting = Counting { inner: stream, read: 0 };
    reset_peak_rss();
    let before = current_rss();
    let result = extract_layer(&mut counting, temp.path(), &ExtractOptions::default(), &LayerBudget::MAX);
    let growth = peak_rss().saturating_sub(before);
    let error = result.expect_err("50 million entries must not fit a layer");
    println!(
        "refused after {} entries ({} bytes read), peak RSS growth {} KiB: {error}",
        counting.read / 512,
        counting.read,
        growth >> 10
    );
    assert!(
        matches!(&error, ExtractError::OverEntryBudget { entry, limit } if entry == "d/" && *limit == MAX_LAYER_ENTRIES),
        "{error:?}"
    );
    assert!(counting.read / 512 <= MAX_LAYER_ENTRIES + 1, "read {} entries", counting.read / 512);
    assert!(growth < 16 << 20, "peak RSS grew by {growth} bytes");
}

#[test]
fn extension_records_within_the_limit_together_over_it_are_refused() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let temp = tempfile::tempdir().unwrap();
    // A long name and a PAX record of 1 MiB each: either alone passes, one entry's headers may not take both.
    let mut tar = header("././@LongLink", b'L', MAX_ENTRY_HEADERS, |_| {}).to_vec();
    tar.resize(tar.len() + MAX_ENTRY_HEADERS as usize, b'n');
    tar.extend(header("pax", b'x', MAX_ENTRY_HEADERS, |_| {}));
    let record = format!("{} comment=", MAX_ENTRY_HEADERS);
    tar.extend(record.as_bytes());
    tar.resize(tar.len() + MAX_ENTRY_HEADERS as usize - record.len(), b'c');
    tar.extend(header("file", b'0', 0, |_| {}));
    tar.resize(tar.len() + 1024, 0);
    let mut counting = Counting { inner: &tar[..], read: 0 };
    let error = extract_layer(&mut counting, temp.path(), &ExtractOptions::default(), &LayerBudget::MAX)
        .expect_err("2 MiB of headers for one entry must be refused");
    println!("refused after reading {} bytes: {error}", counting.read);
    assert!(matches!(error, ExtractError::HeadersTooLarge { .. }), "{error:?}");
    assert!(counting.read <= MAX_ENTRY_HEADERS + 8 * 512 + 1, "read {} bytes", counting.read);
}
