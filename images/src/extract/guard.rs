//! The reader the `tar` crate reads a layer through: it holds the stream to the layer's byte budget and each
//! entry's headers to [`MAX_ENTRY_HEADERS`], checking a PAX or GNU long-name header's size before its data is read.
//!
//! The `tar` crate reads a PAX record or a GNU long name whole into memory, with the size its header claims, before
//! it hands out the entry: an 8 GiB PAX header would be 8 GiB of PID 1's memory. It cannot be told to check first,
//! so this reader watches the header blocks go by. The extractor says when the crate goes looking for the next
//! entry ([`GuardHandle::begin_headers`]) and when it has one ([`GuardHandle::begin_data`]); in between, every
//! header block is read on its own and inspected, an extension header announcing more than the limit stops the
//! stream before its data, and all that is read (headers, long names, PAX records, sparse maps) counts against
//! [`MAX_ENTRY_HEADERS`] in any case, so a header this reader misjudges is still bounded. The extractor reads every
//! entry's data to its end before asking for the next one, so the next header starts at the next 512-byte block.

use std::cell::RefCell;
use std::io::{self, Read};
use std::rc::Rc;

use super::budget::{LayerBudget, MAX_ENTRY_HEADERS};

const BLOCK: u64 = 512;

/// What the crate may read while it looks for one entry: [`MAX_ENTRY_HEADERS`] plus room for the blocks around the
/// extension records (the previous entry's padding, the entry's own header and the headers of a long name, a
/// long link name and a PAX record).
const HEADERS_ALLOWANCE: u64 = MAX_ENTRY_HEADERS + 8 * BLOCK;

/// Which limit stopped the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tripped {
    /// A PAX or GNU long-name header announced this many bytes of data.
    ExtensionSize { size: u64 },
    /// One entry's headers went past the limit (this many bytes read).
    HeaderBytes { read: u64 },
    /// The uncompressed stream went past the byte budget.
    StreamBytes,
}

/// Where the reader is in the headers of the next entry.
struct HeaderWatch {
    /// Stream position where the crate started looking for the entry.
    started_at: u64,
    /// Position of the next header block still to inspect; `None` once the entry's own header went by.
    next_header: Option<u64>,
    block: [u8; BLOCK as usize],
}

struct GuardState {
    budget_bytes: u64,
    position: u64,
    headers: Option<HeaderWatch>,
    tripped: Option<Tripped>,
}

/// The extractor's side of the guard.
#[derive(Clone)]
pub(super) struct GuardHandle(Rc<RefCell<GuardState>>);

/// The `tar` crate's side: the layer's uncompressed stream.
pub(super) struct GuardedStream<R> {
    inner: R,
    state: Rc<RefCell<GuardState>>,
}

/// Wraps `inner`, holding it to `budget`.
pub(super) fn guard<R: Read>(inner: R, budget: &LayerBudget) -> (GuardedStream<R>, GuardHandle) {
    let state =
        Rc::new(RefCell::new(GuardState { budget_bytes: budget.bytes, position: 0, headers: None, tripped: None }));
    (GuardedStream { inner, state: state.clone() }, GuardHandle(state))
}

impl GuardHandle {
    /// The crate is about to read the next entry's headers: they start at the next block boundary.
    pub(super) fn begin_headers(&self) {
        let mut state = self.0.borrow_mut();
        let started_at = state.position;
        let next_header = started_at.div_ceil(BLOCK).saturating_mul(BLOCK);
        state.headers = Some(HeaderWatch { started_at, next_header: Some(next_header), block: [0; BLOCK as usize] });
    }

    /// The crate handed out an entry: what follows is its data.
    pub(super) fn begin_data(&self) {
        self.0.borrow_mut().headers = None;
    }

    /// The limit that stopped the stream, if one did.
    pub(super) fn tripped(&self) -> Option<Tripped> {
        self.0.borrow().tripped
    }

    /// Bytes of the uncompressed stream read so far.
    #[cfg(test)]
    pub(super) fn position(&self) -> u64 {
        self.0.borrow().position
    }
}

impl GuardState {
    fn trip(&mut self, tripped: Tripped) -> io::Error {
        self.tripped = Some(tripped);
        tripped_error(tripped)
    }

    /// How many bytes the next read may ask for: up to the end of a header block being inspected (so nothing after
    /// it is read before it is judged), one byte past the headers' allowance, and one byte past the budget (to tell a stream that ends there from one
    /// that goes on).
    fn read_limit(&self, wanted: usize) -> usize {
        let mut limit = wanted as u64;
        if let Some(watch) = &self.headers {
            if let Some(at) = watch.next_header {
                let end = at + BLOCK;
                if self.position < end {
                    limit = limit.min(end - self.position);
                }
            }
            let read = self.position - watch.started_at;
            limit = limit.min((HEADERS_ALLOWANCE + 1).saturating_sub(read).max(1));
        }
        let left = self.budget_bytes.saturating_sub(self.position).max(1);
        usize::try_from(limit.min(left)).unwrap_or(wanted)
    }

    /// Records `bytes`, just read at the current position, and judges whatever header block they complete.
    fn observe(&mut self, bytes: &[u8]) -> Result<(), Tripped> {
        let start = self.position;
        self.position += bytes.len() as u64;
        if self.position > self.budget_bytes {
            return Err(Tripped::StreamBytes);
        }
        let Some(watch) = &mut self.headers else { return Ok(()) };
        if let Some(at) = watch.next_header {
            let end = at + BLOCK;
            // The overlap of [start, position) with the block [at, end).
            let (from, to) = (start.max(at), self.position.min(end));
            if from < to {
                let source = &bytes[(from - start) as usize..(to - start) as usize];
                watch.block[(from - at) as usize..(to - at) as usize].copy_from_slice(source);
            }
            if self.position >= end {
                watch.next_header = judge_header(&watch.block, end)?;
            }
        }
        let read = self.position - watch.started_at;
        if read > HEADERS_ALLOWANCE {
            return Err(Tripped::HeaderBytes { read });
        }
        Ok(())
    }
}

/// Judges a header block that ended at `end`: for a PAX or GNU long-name header, its announced size (refused over
/// the limit) gives where the next header is; any other header is the entry's own, after which nothing is watched.
fn judge_header(block: &[u8; BLOCK as usize], end: u64) -> Result<Option<u64>, Tripped> {
    let header = tar::Header::from_byte_slice(block);
    let kind = header.entry_type();
    if !(kind.is_pax_local_extensions() || kind.is_gnu_longname() || kind.is_gnu_longlink()) {
        return Ok(None);
    }
    // A size the crate cannot parse fails there; the overall limit still holds.
    let Ok(size) = header.entry_size() else { return Ok(None) };
    if size > MAX_ENTRY_HEADERS {
        return Err(Tripped::ExtensionSize { size });
    }
    Ok(Some(end + size.div_ceil(BLOCK) * BLOCK))
}

fn tripped_error(tripped: Tripped) -> io::Error {
    let message = match tripped {
        Tripped::ExtensionSize { .. } => "a PAX or GNU long-name header is over the limit",
        Tripped::HeaderBytes { .. } => "an entry's headers are over the limit",
        Tripped::StreamBytes => "the layer is over its byte budget",
    };
    io::Error::other(message)
}

impl<R: Read> Read for GuardedStream<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut state = self.state.borrow_mut();
        if let Some(tripped) = state.tripped {
            return Err(tripped_error(tripped));
        }
        let limit = state.read_limit(buf.len());
        let count = self.inner.read(&mut buf[..limit])?;
        match state.observe(&buf[..count]) {
            Ok(()) => Ok(count),
            Err(tripped) => Err(state.trip(tripped)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn extension_header(kind: tar::EntryType, size: u64) -> Vec<u8> {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(kind);
        header.set_size(size);
        header.set_cksum();
        header.as_bytes().to_vec()
    }

    #[test]
    fn a_large_pax_header_stops_the_stream_before_its_data() {
        let mut stream = extension_header(tar::EntryType::XHeader, 8 << 30);
        stream.resize(stream.len() + 4096, b'x');
        let (mut reader, handle) = guard(&stream[..], &LayerBudget::MAX);
        handle.begin_headers();
        let mut header = [0u8; 512];
        // The read that completes the header block fails; nothing after the block was read.
        assert!(reader.read_exact(&mut header).is_err());
        assert!(reader.read(&mut [0u8; 64]).is_err());
        assert_eq!(handle.tripped(), Some(Tripped::ExtensionSize { size: 8 << 30 }));
        assert_eq!(handle.position(), 512);
    }

    #[test]
    fn headers_in_one_read_are_inspected_one_block_at_a_time() {
        let mut stream = extension_header(tar::EntryType::GNULongName, 10);
        stream.resize(1024, b'n');
        stream.extend(extension_header(tar::EntryType::XHeader, MAX_ENTRY_HEADERS + 1));
        let (mut reader, handle) = guard(&stream[..], &LayerBudget::MAX);
        handle.begin_headers();
        let mut buffer = vec![0u8; 4096];
        let mut total = 0;
        let result = loop {
            match reader.read(&mut buffer) {
                Ok(0) => break Ok(()),
                Ok(count) => total += count,
                Err(error) => break Err(error),
            }
        };
        assert!(result.is_err());
        assert_eq!((total, handle.position()), (512, 1536));
        assert_eq!(handle.tripped(), Some(Tripped::ExtensionSize { size: MAX_ENTRY_HEADERS + 1 }));
    }

    #[test]
    fn the_stream_stops_one_byte_past_the_budget() {
        let budget = LayerBudget { bytes: 1000, entries: 1 };
        let (mut reader, handle) = guard(&[7u8; 1000][..], &budget);
        let mut out = Vec::new();
        reader.read_to_end(&mut out).unwrap();
        assert_eq!(out.len(), 1000);
        let (mut reader, handle_over) = guard(&[7u8; 1001][..], &budget);
        assert!(reader.read_to_end(&mut Vec::new()).is_err());
        assert_eq!((handle.tripped(), handle_over.tripped()), (None, Some(Tripped::StreamBytes)));
    }
}
