//! LEB128 variable-length integers (unsigned, and signed with zigzag), as in Go's `encoding/binary`.
//!
//! Encoders append to the caller's buffer; decoders return the value and the unread tail, or
//! `None` if the input ends early or the number does not fit 64 bits.

/// Appends `x` as an unsigned varint.
pub fn put_uvarint(buf: &mut Vec<u8>, mut x: u64) {
    while x >= 0x80 {
        buf.push((x as u8) | 0x80);
        x >>= 7;
    }
    buf.push(x as u8);
}

/// Appends `x` as a zigzag signed varint.
pub fn put_varint(buf: &mut Vec<u8>, x: i64) {
    put_uvarint(buf, ((x << 1) ^ (x >> 63)) as u64);
}

/// Bytes [`put_varint`] takes for `x`.
pub fn varint_len(x: i64) -> usize {
    let u = ((x << 1) ^ (x >> 63)) as u64;
    (64 - u.leading_zeros() as usize).max(1).div_ceil(7)
}

/// Reads an unsigned varint.
pub fn uvarint(b: &[u8]) -> Option<(u64, &[u8])> {
    let mut x = 0u64;
    for (i, &byte) in b.iter().enumerate().take(10) {
        if i == 9 && byte > 1 {
            return None; // overflows 64 bits
        }
        x |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            return Some((x, &b[i + 1..]));
        }
    }
    None
}

/// Reads a zigzag signed varint.
pub fn varint(b: &[u8]) -> Option<(i64, &[u8])> {
    let (u, rest) = uvarint(b)?;
    Some((((u >> 1) as i64) ^ -((u & 1) as i64), rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_surrounding_bytes() {
        for x in [0i64, 1, -1, 63, -64, 64, 1 << 40, i64::MAX, i64::MIN] {
            let mut buf = vec![0xAA];
            put_varint(&mut buf, x);
            buf.push(0xBB);
            let (got, rest) = varint(&buf[1..]).unwrap();
            assert_eq!((got, rest), (x, &[0xBB][..]), "{x}");
        }
        for x in [0u64, 127, 128, 300, u64::MAX] {
            let mut buf = Vec::new();
            put_uvarint(&mut buf, x);
            assert_eq!(uvarint(&buf), Some((x, &[][..])));
            assert_eq!(uvarint(&buf[..buf.len() - 1]), None, "truncated {x}");
        }
        assert_eq!(uvarint(&[0xff; 11]), None);
        assert_eq!(
            uvarint(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]),
            None
        );
    }
}
