//! Undoes the XZ x86 BCJ filter, which the kernel's `xz_wrap.sh` applies before LZMA2 so that relative `call`/`jmp`
//! targets compress better. A port of the decoder in xz-embedded's `xz_dec_bcj.c`.

fn is_msbyte(byte: u8) -> bool {
    byte == 0x00 || byte == 0xff
}

/// Decodes a whole buffer in place. `start_offset` is the filter's start offset property (0 when absent). The last
/// four bytes are left as they are, as the encoder left them.
pub fn decode(buf: &mut [u8], start_offset: u32) {
    const ALLOWED: [bool; 8] = [true, true, true, false, true, false, false, false];
    const BIT_NUM: [u32; 8] = [0, 1, 2, 2, 3, 3, 3, 3];
    if buf.len() <= 4 {
        return;
    }
    let limit = buf.len() - 4;
    let mut prev_pos: usize = usize::MAX;
    let mut prev_mask: u32 = 0;
    let mut i = 0;
    while i < limit {
        if buf[i] & 0xfe != 0xe8 {
            i += 1;
            continue;
        }
        let distance = i.wrapping_sub(prev_pos);
        if distance > 3 {
            prev_mask = 0;
        } else {
            prev_mask = (prev_mask << (distance - 1)) & 7;
            if prev_mask != 0 {
                let byte = buf[i + 4 - BIT_NUM[prev_mask as usize] as usize];
                if !ALLOWED[prev_mask as usize] || is_msbyte(byte) {
                    prev_pos = i;
                    prev_mask = (prev_mask << 1) | 1;
                    i += 1;
                    continue;
                }
            }
        }
        prev_pos = i;
        if is_msbyte(buf[i + 4]) {
            let mut src = u32::from_le_bytes([buf[i + 1], buf[i + 2], buf[i + 3], buf[i + 4]]);
            let position = start_offset.wrapping_add(i as u32).wrapping_add(5);
            let mut dest;
            loop {
                dest = src.wrapping_sub(position);
                if prev_mask == 0 {
                    break;
                }
                let shift = BIT_NUM[prev_mask as usize] * 8;
                let byte = (dest >> (24 - shift)) as u8;
                if !is_msbyte(byte) {
                    break;
                }
                src = dest ^ ((1u32 << (32 - shift)) - 1);
            }
            dest &= 0x01ff_ffff;
            dest |= 0u32.wrapping_sub(dest & 0x0100_0000);
            buf[i + 1..i + 5].copy_from_slice(&dest.to_le_bytes());
            i += 5;
        } else {
            prev_mask = (prev_mask << 1) | 1;
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_an_absolute_call_back_to_relative() {
        // Encoder output for `call rel32=+0x10` at offset 0x100: absolute target 0x100 + 5 + 0x10 = 0x115.
        let mut buf = vec![0x90; 0x100];
        buf.extend_from_slice(&[0xe8, 0x15, 0x01, 0x00, 0x00, 0x90, 0x90, 0x90, 0x90]);
        decode(&mut buf, 0);
        assert_eq!(&buf[0x100..0x105], &[0xe8, 0x10, 0x00, 0x00, 0x00]);
    }

    #[test]
    fn leaves_short_buffers_alone() {
        let mut buf = [0xe8, 0, 0, 0];
        decode(&mut buf, 0);
        assert_eq!(buf, [0xe8, 0, 0, 0]);
    }
}
