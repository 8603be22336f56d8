//! HTTP/1.1 chunked transfer coding (RFC 9112 §7.1), keeping chunk
//! boundaries.
//!
//! HT frames one query or one answer as exactly one HTTP chunk, so the
//! boundaries *are* the protocol. General HTTP libraries (hyper's body
//! stream, for one) hand a body on as bytes and lose them; this decoder
//! reads a chunk at a time from a buffer instead, sans-IO: the driver
//! appends what it read and calls [`decode_chunk`] until it needs more.
//!
//! The size line is checked before the data arrives, so a chunk over the
//! server's limit is refused from its first bytes, never buffered.

/// Longest chunk-size line accepted, extensions included (`ffff;ext\r\n`).
/// Extensions mean nothing to HT; they are skipped, within this bound.
pub const MAX_SIZE_LINE: usize = 256;

/// What one call of [`decode_chunk`] found at the start of the buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// One chunk's data; `used` bytes of the buffer (size line, data and
    /// CRLF) are consumed.
    Chunk {
        /// The chunk's data.
        data: &'a [u8],
        /// Bytes of the buffer this chunk took.
        used: usize,
    },
    /// The last chunk (`0`): the peer finished its body. Trailers, if any,
    /// are not read: HT has nothing after its last chunk.
    End,
}

/// A buffer that is not chunked coding, or a chunk over the limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChunkError {
    /// The chunk-size line is not hexadecimal digits (with optional
    /// extensions) ended by CRLF, or is longer than [`MAX_SIZE_LINE`].
    #[error("a malformed chunk-size line")]
    BadSizeLine,
    /// A chunk larger than the limit.
    #[error("a chunk of {size} bytes (at most {max})")]
    TooLarge {
        /// The size announced.
        size: u64,
        /// The limit.
        max: usize,
    },
    /// The chunk's data is not followed by CRLF.
    #[error("chunk data not followed by CRLF")]
    MissingCrlf,
}

/// Reads the chunk at the start of `buf`: `Ok(None)` when more bytes are
/// needed, an error as soon as the bytes cannot be chunked coding or announce
/// a chunk over `max_chunk` bytes.
pub fn decode_chunk(buf: &[u8], max_chunk: usize) -> Result<Option<Decoded<'_>>, ChunkError> {
    let window = &buf[..buf.len().min(MAX_SIZE_LINE)];
    let Some(line_end) = window.windows(2).position(|w| w == b"\r\n") else {
        // Judge what has arrived so far: garbage or an oversized number
        // fails now rather than after MAX_SIZE_LINE bytes.
        if buf.len() >= MAX_SIZE_LINE {
            return Err(ChunkError::BadSizeLine);
        }
        let (_, digits) = size_digits(buf, max_chunk)?;
        let rest = buf[digits..].strip_suffix(b"\r").unwrap_or(&buf[digits..]);
        if (digits == 0 && !buf.is_empty()) || !extensions_ok(rest) {
            return Err(ChunkError::BadSizeLine);
        }
        return Ok(None);
    };
    let line = &buf[..line_end];
    let (size, digits) = size_digits(line, max_chunk)?;
    if digits == 0 || !extensions_ok(&line[digits..]) {
        return Err(ChunkError::BadSizeLine);
    }
    if size == 0 {
        return Ok(Some(Decoded::End));
    }
    let data_start = line_end + 2;
    // `size <= max_chunk`, a usize: no overflow below.
    let data_end = data_start + size as usize;
    if buf.len() < data_end + 2 {
        if buf.len() > data_end && buf[data_end] != b'\r' {
            return Err(ChunkError::MissingCrlf);
        }
        return Ok(None);
    }
    if &buf[data_end..data_end + 2] != b"\r\n" {
        return Err(ChunkError::MissingCrlf);
    }
    Ok(Some(Decoded::Chunk {
        data: &buf[data_start..data_end],
        used: data_end + 2,
    }))
}

/// The size in the hex digits at the start of `line`, and how many digits
/// there are; fails as soon as the size passes `max_chunk`.
fn size_digits(line: &[u8], max_chunk: usize) -> Result<(u64, usize), ChunkError> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    let mut size: u64 = 0;
    for &b in &line[..digits] {
        let d = u64::from((b as char).to_digit(16).unwrap_or(0));
        size = size
            .checked_mul(16)
            .and_then(|s| s.checked_add(d))
            .ok_or(ChunkError::BadSizeLine)?;
        if size > max_chunk as u64 {
            return Err(ChunkError::TooLarge {
                size,
                max: max_chunk,
            });
        }
    }
    Ok((size, digits))
}

/// What may follow the size: nothing, or extensions (and the whitespace
/// RFC 9112 tolerates before them), printable with no control bytes.
fn extensions_ok(rest: &[u8]) -> bool {
    match rest.first() {
        None => true,
        Some(b';' | b' ' | b'\t') => rest
            .iter()
            .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b)),
        Some(_) => false,
    }
}

/// Appends `data` as one chunk to `out`.
pub fn encode_chunk(data: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(size_line(data.len()).as_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// The last chunk, ending a body.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// The line before a chunk of `len` bytes (hex size, CRLF), for writers
/// that send the chunk's bytes from where they are.
pub fn size_line(len: usize) -> String {
    format!("{len:x}\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn chunks_read_back_one_at_a_time() {
        let mut wire = Vec::new();
        encode_chunk(b"hello", &mut wire);
        encode_chunk(&[0u8; 300], &mut wire);
        wire.extend_from_slice(LAST_CHUNK);
        let Some(Decoded::Chunk { data, used }) = decode_chunk(&wire, 1000).unwrap() else {
            panic!("a chunk");
        };
        assert_eq!(data, b"hello");
        let rest = &wire[used..];
        let Some(Decoded::Chunk { data, used }) = decode_chunk(rest, 1000).unwrap() else {
            panic!("a chunk");
        };
        assert_eq!(data.len(), 300);
        assert_eq!(decode_chunk(&rest[used..], 1000), Ok(Some(Decoded::End)));
    }

    #[test]
    fn every_truncation_needs_more() {
        let mut wire = Vec::new();
        encode_chunk(b"0123456789abcdef0", &mut wire);
        for len in 0..wire.len() {
            assert_eq!(decode_chunk(&wire[..len], 100), Ok(None), "at {len}");
        }
        assert!(decode_chunk(&wire, 100).unwrap().is_some());
    }

    #[test]
    fn extensions_are_skipped() {
        let wire = b"3;name=value\r\nabc\r\n";
        assert_eq!(
            decode_chunk(wire, 10),
            Ok(Some(Decoded::Chunk {
                data: b"abc",
                used: wire.len()
            }))
        );
    }

    #[test]
    fn oversized_chunks_fail_from_their_size_line() {
        assert_eq!(
            decode_chunk(b"10001", 0x10000),
            Err(ChunkError::TooLarge {
                size: 0x10001,
                max: 0x10000
            })
        );
        assert!(decode_chunk(b"10000\r\n", 0x10000).unwrap().is_none());
        assert!(decode_chunk(b"ffffffffffffffffffff\r\n", usize::MAX).is_err());
    }

    #[test]
    fn garbage_is_refused() {
        assert_eq!(decode_chunk(b"zz\r\n", 10), Err(ChunkError::BadSizeLine));
        assert_eq!(decode_chunk(b"\r\n", 10), Err(ChunkError::BadSizeLine));
        assert_eq!(
            decode_chunk(b"3\r\nabcXY", 10),
            Err(ChunkError::MissingCrlf)
        );
        assert_eq!(decode_chunk(b"3\r\nabcX", 10), Err(ChunkError::MissingCrlf));
        assert_eq!(
            decode_chunk(&[b'1'; MAX_SIZE_LINE][..], usize::MAX),
            Err(ChunkError::BadSizeLine)
        );
        assert_eq!(decode_chunk(b"3\n", 10), Err(ChunkError::BadSizeLine));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(buf in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(Some(Decoded::Chunk { used, .. })) = decode_chunk(&buf, 32) {
                prop_assert!(used <= buf.len());
            }
        }

        #[test]
        fn round_trip(data in proptest::collection::vec(any::<u8>(), 1..200)) {
            let mut wire = Vec::new();
            encode_chunk(&data, &mut wire);
            prop_assert_eq!(
                decode_chunk(&wire, 200).unwrap(),
                Some(Decoded::Chunk { data: &data, used: wire.len() })
            );
        }
    }
}
