//! QUIC variable-length integers (RFC 9000 §16): the two high bits of the
//! first byte give the length (1, 2, 4 or 8 bytes), the rest the value.

use bytes::{Buf, BufMut};

/// The largest value a varint holds (2^62 − 1).
pub const MAX: u64 = (1 << 62) - 1;

/// Bytes needed to encode `v` (which must be at most [`MAX`]).
pub fn len(v: u64) -> usize {
    match v {
        0..=63 => 1,
        64..=16_383 => 2,
        16_384..=1_073_741_823 => 4,
        _ => 8,
    }
}

/// Appends `v`. Panics if `v` exceeds [`MAX`], which only a caller's bug can
/// produce: every value we encode is a length, a type or a setting we chose.
pub fn put(buf: &mut impl BufMut, v: u64) {
    assert!(v <= MAX, "varint {v} out of range");
    match len(v) {
        1 => buf.put_u8(v as u8),
        2 => buf.put_u16(0x4000 | v as u16),
        4 => buf.put_u32(0x8000_0000 | v as u32),
        _ => buf.put_u64(0xc000_0000_0000_0000 | v),
    }
}

/// Reads one varint from the front of `bytes`: the value and its length, or
/// `None` if `bytes` ends first.
pub fn peek(bytes: &[u8]) -> Option<(u64, usize)> {
    let first = *bytes.first()?;
    let n = 1usize << (first >> 6);
    if bytes.len() < n {
        return None;
    }
    let mut v = u64::from(first & 0x3f);
    for b in &bytes[1..n] {
        v = (v << 8) | u64::from(*b);
    }
    Some((v, n))
}

/// Takes one varint off the front of `buf`, or `None` (leaving `buf` as it
/// was) if it ends first.
pub fn get(buf: &mut impl Buf) -> Option<u64> {
    if !buf.has_remaining() {
        return None;
    }
    let n = 1usize << (buf.chunk()[0] >> 6);
    if buf.remaining() < n {
        return None;
    }
    let mask = (1u64 << (8 * n - 2)) - 1;
    Some(buf.get_uint(n) & mask)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc_9000_examples() {
        // RFC 9000 §A.1.
        let cases: [(&[u8], u64); 4] = [
            (
                &[0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c],
                151_288_809_941_952_652,
            ),
            (&[0x9d, 0x7f, 0x3e, 0x7d], 494_878_333),
            (&[0x7b, 0xbd], 15_293),
            (&[0x25], 37),
        ];
        for (bytes, value) in cases {
            assert_eq!(peek(bytes), Some((value, bytes.len())));
            let mut out = Vec::new();
            put(&mut out, value);
            assert_eq!(out, bytes);
        }
        // A non-minimal encoding is still a valid read.
        assert_eq!(peek(&[0x40, 0x25]), Some((37, 2)));
        assert_eq!(peek(&[0x9d, 0x7f]), None);
    }

    proptest! {
        #[test]
        fn round_trips(v in 0..=MAX) {
            let mut out = Vec::new();
            put(&mut out, v);
            prop_assert_eq!(out.len(), len(v));
            prop_assert_eq!(peek(&out), Some((v, out.len())));
            let mut b = &out[..];
            prop_assert_eq!(get(&mut b), Some(v));
            prop_assert!(b.is_empty());
        }
    }
}
