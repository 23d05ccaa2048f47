//! Complete lines of a file that a writer may still be appending to, forwards from an offset or backwards from
//! the end, each bounded to [`MAX_ENTRY`] bytes: a longer line is skipped, and a last line without its `\n`
//! (torn by a power cut, or half written) is not a line yet.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};

use super::entry::MAX_ENTRY;

/// How much is read at a time.
const BLOCK: usize = 64 << 10;

/// Calls `each` with every complete line (without its `\n`) of `file` from `start` to `end`, oldest first; stops
/// early when `each` returns false. Returns the offset after the last complete line seen.
pub fn forward(file: &mut File, start: u64, end: u64, mut each: impl FnMut(&[u8]) -> bool) -> io::Result<u64> {
    file.seek(SeekFrom::Start(start))?;
    let mut reader = file.take(end.saturating_sub(start));
    let mut block = vec![0; BLOCK];
    let mut line: Vec<u8> = Vec::new();
    let mut oversized = false;
    let mut offset = start;
    let mut consumed = start;
    loop {
        let count = match reader.read(&mut block) {
            Ok(0) => return Ok(consumed),
            Ok(count) => count,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        let mut rest = &block[..count];
        while let Some(newline) = rest.iter().position(|&byte| byte == b'\n') {
            offset += newline as u64 + 1;
            consumed = offset;
            if !oversized && line.len() + newline <= MAX_ENTRY {
                line.extend_from_slice(&rest[..newline]);
                if !each(&line) {
                    return Ok(consumed);
                }
            }
            line.clear();
            oversized = false;
            rest = &rest[newline + 1..];
        }
        offset += rest.len() as u64;
        if line.len() + rest.len() > MAX_ENTRY {
            oversized = true;
            line.clear();
        } else if !oversized {
            line.extend_from_slice(rest);
        }
    }
}

/// Calls `each` with the complete lines of `file` before `end`, newest first, reading blocks backwards: only the
/// blocks that hold the lines asked for are read. Stops early when `each` returns false.
pub fn backward(file: &mut File, end: u64, mut each: impl FnMut(&[u8]) -> bool) -> io::Result<()> {
    let mut position = end;
    // The bytes after the newest `\n` not yet handed on, in file order; `None` until the first `\n` is seen,
    // which ends a torn last line.
    let mut carry: Vec<u8> = Vec::new();
    let mut seen_newline = false;
    let mut oversized = false;
    let mut block = vec![0; BLOCK];
    while position > 0 {
        let size = usize::try_from(position.min(BLOCK as u64)).unwrap_or(BLOCK);
        position -= size as u64;
        file.seek(SeekFrom::Start(position))?;
        file.read_exact(&mut block[..size])?;
        let mut chunk = &block[..size];
        while let Some(newline) = chunk.iter().rposition(|&byte| byte == b'\n') {
            let after = &chunk[newline + 1..];
            if seen_newline && !oversized && carry.len() + after.len() <= MAX_ENTRY {
                let mut line = Vec::with_capacity(after.len() + carry.len());
                line.extend_from_slice(after);
                line.extend_from_slice(&carry);
                if !each(&line) {
                    return Ok(());
                }
            }
            seen_newline = true;
            oversized = false;
            carry.clear();
            chunk = &chunk[..newline];
        }
        if carry.len() + chunk.len() > MAX_ENTRY {
            oversized = true;
            carry.clear();
        } else if !oversized {
            let mut joined = chunk.to_vec();
            joined.extend_from_slice(&carry);
            carry = joined;
        }
    }
    if seen_newline && !oversized {
        let _ = each(&carry);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_with(bytes: &[u8]) -> File {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(bytes).unwrap();
        file
    }

    fn both(bytes: &[u8]) -> (Vec<Vec<u8>>, u64, Vec<Vec<u8>>) {
        let mut file = file_with(bytes);
        let mut forwards = Vec::new();
        let end = forward(&mut file, 0, bytes.len() as u64, |line| {
            forwards.push(line.to_vec());
            true
        })
        .unwrap();
        let mut backwards = Vec::new();
        backward(&mut file, bytes.len() as u64, |line| {
            backwards.push(line.to_vec());
            true
        })
        .unwrap();
        backwards.reverse();
        (forwards, end, backwards)
    }

    #[test]
    fn torn_last_lines_and_oversized_lines_are_skipped_both_ways() {
        let long = vec![b'x'; MAX_ENTRY + 1];
        let fits = vec![b'y'; MAX_ENTRY];
        let mut bytes = b"a\n\nbc\n".to_vec();
        bytes.extend_from_slice(&long);
        bytes.push(b'\n');
        bytes.extend_from_slice(&fits);
        bytes.extend_from_slice(b"\nd\ntorn");
        let (forwards, end, backwards) = both(&bytes);
        let expected = vec![b"a".to_vec(), b"".to_vec(), b"bc".to_vec(), fits.clone(), b"d".to_vec()];
        assert_eq!(forwards, expected);
        assert_eq!(backwards, expected);
        assert_eq!(end, bytes.len() as u64 - 4);
        assert_eq!(both(b"no newline at all"), (vec![], 0, vec![]));
        assert_eq!(both(b"\nabc\n"), (vec![b"".to_vec(), b"abc".to_vec()], 5, vec![b"".to_vec(), b"abc".to_vec()]));
    }
}
