//! Appending the short pieces a log line is made of (separators, digits, names) to a byte buffer cheaply.
//!
//! `extend_from_slice` of a slice whose length is not a constant calls `memcpy`, and musl's (the static PID 1's)
//! copies with `rep movsq` and then byte by byte with `movsb`: tens of cycles to start for a piece of a few bytes.
//! The relay and the json-file writer build each line from a dozen such pieces, so for them that was the largest
//! cost of a line. Pieces shorter than [`SHORT`] are pushed byte by byte instead; longer text (a message) still
//! goes through `memcpy`, where its start-up cost is paid once.

/// Below this length a piece is pushed byte by byte.
const SHORT: usize = 32;

/// Appends `bytes` to `out`.
#[inline]
pub(crate) fn push_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    if bytes.len() >= SHORT {
        out.extend_from_slice(bytes);
        return;
    }
    out.reserve(bytes.len());
    for &byte in bytes {
        out.push(byte);
    }
}

/// `value` in decimal, zero-padded to at least `width` digits, appended to `out`.
pub(crate) fn push_digits(out: &mut Vec<u8>, value: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut at = digits.len();
    let mut rest = value;
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    let start = at.min(digits.len().saturating_sub(width));
    push_bytes(out, &digits[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_digits_to_their_width_and_never_cuts_them() {
        let mut out = Vec::new();
        for (value, width) in [(0, 1), (7, 3), (42, 2), (12_345, 4), (u64::MAX, 4), (0, 9)] {
            push_digits(&mut out, value, width);
            out.push(b' ');
        }
        assert_eq!(String::from_utf8(out).unwrap(), format!("0 007 42 12345 {} 000000000 ", u64::MAX));
    }

    #[test]
    fn short_and_long_pieces_alike() {
        let mut out = b"x".to_vec();
        push_bytes(&mut out, b"");
        push_bytes(&mut out, b"ab");
        push_bytes(&mut out, &[b'c'; 40]);
        assert_eq!(out, [&b"xab"[..], &[b'c'; 40]].concat());
    }
}
