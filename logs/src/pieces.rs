//! Cuts a container's output stream into lines of at most [`MAX_LINE`] bytes without ever holding more.
//!
//! A line longer than [`MAX_LINE`] (or output with no `\n` at all: `cat /dev/zero`, a progress bar drawn with `\r`)
//! is handed on in [`MAX_LINE`] pieces as each one fills, as Docker does, so the memory a reader holds is one piece
//! and the reader's buffer, whatever the container writes.

use std::io::{BufRead, BufReader, ErrorKind, Read};

/// Longer lines are split, as Docker splits at 16 KiB.
pub const MAX_LINE: usize = 16 << 10;

/// Reads pieces from `reader`: each a line without its `\n`, or the next [`MAX_LINE`] bytes of a longer line.
pub struct Pieces<R> {
    reader: BufReader<R>,
    /// The last piece was a full [`MAX_LINE`] cut: a `\n` right after it ends that line, not an empty one.
    after_cut: bool,
}

impl<R: Read> Pieces<R> {
    pub fn new(reader: BufReader<R>) -> Pieces<R> {
        Pieces { reader, after_cut: false }
    }

    /// Whether the next piece is already in the buffer, so that [`next_into`](Self::next_into) returns it
    /// without reading (and so without waiting for the container to write more).
    pub fn next_is_buffered(&self) -> bool {
        let mut buffered = self.reader.buffer();
        if self.after_cut && buffered.first() == Some(&b'\n') {
            buffered = &buffered[1..];
        }
        buffered.len() >= MAX_LINE || buffered.contains(&b'\n')
    }

    /// Whether the last piece was cut at [`MAX_LINE`] in the middle of a longer line (Docker's partial message).
    pub fn was_cut(&self) -> bool {
        self.after_cut
    }

    /// Fills `piece` with the next piece; false at the end of the stream (or on a read error) with nothing left.
    /// What a stream ends with, without a `\n`, is a piece too.
    pub fn next_into(&mut self, piece: &mut Vec<u8>) -> bool {
        piece.clear();
        loop {
            let available = match self.reader.fill_buf() {
                Ok(available) => available,
                Err(error) if error.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return !piece.is_empty(),
            };
            if available.is_empty() {
                return !piece.is_empty();
            }
            if std::mem::take(&mut self.after_cut) && piece.is_empty() && available[0] == b'\n' {
                self.reader.consume(1);
                continue;
            }
            let window = &available[..available.len().min(MAX_LINE - piece.len())];
            if let Some(end) = window.iter().position(|&byte| byte == b'\n') {
                piece.extend_from_slice(&window[..end]);
                self.reader.consume(end + 1);
                return true;
            }
            let taken = window.len();
            piece.extend_from_slice(window);
            self.reader.consume(taken);
            if piece.len() == MAX_LINE {
                self.after_cut = true;
                return true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufReader;

    fn pieces(input: &[u8], capacity: usize) -> Vec<Vec<u8>> {
        let mut pieces = Pieces::new(BufReader::with_capacity(capacity, input));
        let mut out = Vec::new();
        let mut piece = Vec::new();
        while pieces.next_into(&mut piece) {
            out.push(piece.clone());
        }
        out
    }

    #[test]
    fn knows_whether_the_next_piece_is_buffered() {
        let mut pieces = Pieces::new(BufReader::with_capacity(8, &b"a\nb\ncd"[..]));
        let mut piece = Vec::new();
        assert!(!pieces.next_is_buffered(), "nothing read yet");
        assert!(pieces.next_into(&mut piece) && pieces.next_is_buffered(), "b is in the buffer");
        assert!(pieces.next_into(&mut piece) && !pieces.next_is_buffered(), "cd has no newline yet");
        let cut_line = [&[b'x'; MAX_LINE][..], b"\n"].concat();
        let mut cut = Pieces::new(BufReader::with_capacity(MAX_LINE * 2, &cut_line[..]));
        assert!(cut.next_into(&mut piece) && cut.was_cut() && !cut.next_is_buffered(), "the newline after a cut");
    }

    #[test]
    fn lines_empty_lines_and_an_unterminated_end() {
        for capacity in [1, 3, 8192] {
            assert_eq!(pieces(b"a\n\nbc\nlast", capacity), [&b"a"[..], b"", b"bc", b"last"], "capacity {capacity}");
        }
        assert!(pieces(b"", 10).is_empty());
    }

    #[test]
    fn long_lines_are_cut_at_max_line_without_an_empty_line_after_an_exact_cut() {
        let mut input = vec![b'x'; MAX_LINE * 2 + 5];
        input.push(b'\n');
        input.extend(vec![b'y'; MAX_LINE]);
        input.extend(b"\nz\n");
        for capacity in [7, 8192, 100_000] {
            let lengths: Vec<usize> = pieces(&input, capacity).iter().map(Vec::len).collect();
            assert_eq!(lengths, [MAX_LINE, MAX_LINE, 5, MAX_LINE, 1], "capacity {capacity}");
        }
    }
}
