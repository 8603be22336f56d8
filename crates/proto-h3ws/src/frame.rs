//! HTTP/3 frames (RFC 9114 §7): a type and a length, both varints, then the
//! payload.
//!
//! [`FrameReader`] takes a stream's bytes as they arrive. DATA payloads are
//! handed out piece by piece as they come (a WebSocket carried in DATA
//! frames never waits for a whole frame, and no frame size bounds it);
//! every other frame is collected whole, up to a bound, since a peer could
//! otherwise make us buffer a HEADERS frame of any length.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::{Code, H3Error};
use crate::varint;

/// Frame types this crate knows (RFC 9114 §7.2).
pub mod kind {
    pub const DATA: u64 = 0x0;
    pub const HEADERS: u64 = 0x1;
    pub const CANCEL_PUSH: u64 = 0x3;
    pub const SETTINGS: u64 = 0x4;
    pub const PUSH_PROMISE: u64 = 0x5;
    pub const GOAWAY: u64 = 0x7;
    pub const MAX_PUSH_ID: u64 = 0xd;
    /// HTTP/2 frame types that RFC 9114 §7.2.8 reserves: receiving one is
    /// `H3_FRAME_UNEXPECTED`.
    pub const HTTP2_ONLY: [u64; 4] = [0x2, 0x6, 0x8, 0x9];
}

/// Appends a frame header (type, payload length).
pub fn put_header(buf: &mut impl BufMut, kind: u64, len: usize) {
    varint::put(buf, kind);
    varint::put(buf, len as u64);
}

/// The header of a DATA frame of `len` bytes, ready to go before its payload.
pub fn data_header(len: usize) -> Bytes {
    let mut b = BytesMut::with_capacity(9);
    put_header(&mut b, kind::DATA, len);
    b.freeze()
}

/// A whole frame: header and payload.
pub fn encode(kind: u64, payload: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(payload.len() + 16);
    put_header(&mut b, kind, payload.len());
    b.put_slice(payload);
    b.freeze()
}

/// What a [`FrameReader`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A piece of a DATA frame's payload (never empty).
    Data(Bytes),
    /// A whole non-DATA frame of a known or unknown type; unknown and
    /// reserved types are for the caller to ignore (RFC 9114 §9).
    Other { kind: u64, payload: Bytes },
}

/// Reads frames off one stream's bytes.
#[derive(Debug)]
pub struct FrameReader {
    /// A received chunk not yet looked at: DATA payload is cut from it
    /// without a copy ([`FrameReader::push_bytes`]).
    chunk: Bytes,
    buf: BytesMut,
    /// Bytes of the current DATA frame's payload still to come.
    data_left: u64,
    max_frame: usize,
}

impl FrameReader {
    /// A reader that refuses any non-DATA frame longer than `max_frame`.
    pub fn new(max_frame: usize) -> FrameReader {
        FrameReader {
            chunk: Bytes::new(),
            buf: BytesMut::new(),
            data_left: 0,
            max_frame,
        }
    }

    /// Adds bytes received on the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        self.absorb_chunk();
        self.buf.extend_from_slice(bytes);
    }

    /// Adds a chunk received on the stream, keeping it as it is: the DATA
    /// payload in it is handed out as slices of it, not copied (the bulk of
    /// a tunnel's bytes; only frame headers and other frames are copied).
    pub fn push_bytes(&mut self, chunk: Bytes) {
        self.absorb_chunk();
        if self.buf.is_empty() {
            self.chunk = chunk;
        } else {
            self.buf.extend_from_slice(&chunk);
        }
    }

    /// Moves a kept chunk into the buffer (when more bytes arrive before
    /// it was used up, or a frame header spans it).
    fn absorb_chunk(&mut self) {
        if !self.chunk.is_empty() {
            let chunk = std::mem::take(&mut self.chunk);
            self.buf.extend_from_slice(&chunk);
        }
    }

    /// Whether the stream may end here: not inside a frame.
    pub fn at_boundary(&self) -> bool {
        self.data_left == 0 && self.buf.is_empty() && self.chunk.is_empty()
    }

    /// The next frame (or piece of DATA), `Ok(None)` when more bytes are
    /// needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, H3Error> {
        if self.data_left > 0 && self.buf.is_empty() && !self.chunk.is_empty() {
            let take = (self.chunk.len() as u64).min(self.data_left) as usize;
            self.data_left -= take as u64;
            return Ok(Some(Frame::Data(self.chunk.split_to(take))));
        }
        self.absorb_chunk();
        if self.data_left > 0 {
            if self.buf.is_empty() {
                return Ok(None);
            }
            let take = (self.buf.len() as u64).min(self.data_left) as usize;
            self.data_left -= take as u64;
            return Ok(Some(Frame::Data(self.buf.split_to(take).freeze())));
        }
        loop {
            let Some((kind, a)) = varint::peek(&self.buf) else {
                return Ok(None);
            };
            let Some((len, b)) = varint::peek(&self.buf[a..]) else {
                return Ok(None);
            };
            if kind == kind::DATA {
                self.buf.advance(a + b);
                if len == 0 {
                    continue;
                }
                self.data_left = len;
                return self.next_frame();
            }
            if len > self.max_frame as u64 {
                return Err(H3Error::new(
                    Code::ExcessiveLoad,
                    format!(
                        "frame type {kind:#x} of {len} bytes over the limit of {}",
                        self.max_frame
                    ),
                ));
            }
            let whole = a + b + len as usize;
            if self.buf.len() < whole {
                return Ok(None);
            }
            self.buf.advance(a + b);
            let payload = self.buf.split_to(len as usize).freeze();
            return Ok(Some(Frame::Other { kind, payload }));
        }
    }
}

/// Whether a frame type is reserved for greasing (RFC 9114 §7.2.8:
/// 0x1f × N + 0x21).
pub fn is_reserved(kind: u64) -> bool {
    kind >= 0x21 && (kind - 0x21).is_multiple_of(0x1f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn all(reader: &mut FrameReader) -> Vec<Frame> {
        std::iter::from_fn(|| reader.next_frame().unwrap()).collect()
    }

    #[test]
    fn data_streams_out_in_pieces_and_others_come_whole() {
        let mut wire = Vec::new();
        wire.extend_from_slice(&encode(kind::HEADERS, b"abc"));
        wire.extend_from_slice(&encode(kind::DATA, b"hello world"));
        wire.extend_from_slice(&encode(kind::DATA, b""));
        wire.extend_from_slice(&encode(0x21, b"grease"));
        let mut r = FrameReader::new(16);
        r.push(&wire[..10]);
        let first = all(&mut r);
        assert_eq!(
            first,
            vec![
                Frame::Other {
                    kind: kind::HEADERS,
                    payload: Bytes::from_static(b"abc")
                },
                Frame::Data(Bytes::from_static(b"hel"))
            ]
        );
        assert!(!r.at_boundary());
        r.push(&wire[10..]);
        let rest = all(&mut r);
        assert_eq!(rest[0], Frame::Data(Bytes::from_static(b"lo world")));
        assert!(matches!(rest[1], Frame::Other { kind: 0x21, .. }));
        assert!(r.at_boundary());
        assert!(is_reserved(0x21) && is_reserved(0x21 + 0x1f * 7) && !is_reserved(0x22));
    }

    #[test]
    fn an_oversized_non_data_frame_is_refused_before_it_is_buffered() {
        let mut r = FrameReader::new(100);
        let mut head = Vec::new();
        put_header(&mut head, kind::HEADERS, 101);
        r.push(&head);
        assert_eq!(r.next_frame().unwrap_err().code, Code::ExcessiveLoad);
        // DATA has no such bound.
        let mut r = FrameReader::new(100);
        r.push(&data_header(1 << 20));
        r.push(&[7; 500]);
        assert_eq!(
            r.next_frame().unwrap(),
            Some(Frame::Data(vec![7; 500].into()))
        );
    }

    proptest! {
        #[test]
        fn any_split_gives_the_same_payload(
            frames in proptest::collection::vec((0u64..3, proptest::collection::vec(any::<u8>(), 0..300)), 0..8),
            cuts in proptest::collection::vec(1usize..64, 1..50),
        ) {
            let mut wire = Vec::new();
            for (k, p) in &frames {
                wire.extend_from_slice(&encode(*k, p));
            }
            let mut r = FrameReader::new(1024);
            let mut got_data = Vec::new();
            let mut got_other = Vec::new();
            let mut at = 0;
            for (i, cut) in cuts.iter().cycle().enumerate() {
                if at >= wire.len() { break; }
                let end = (at + cut).min(wire.len());
                // Both ways of feeding it, mixed.
                if i % 2 == 0 {
                    r.push(&wire[at..end]);
                } else {
                    r.push_bytes(Bytes::copy_from_slice(&wire[at..end]));
                }
                at = end;
                while let Some(f) = r.next_frame().unwrap() {
                    match f {
                        Frame::Data(d) => got_data.extend_from_slice(&d),
                        Frame::Other { kind, payload } => got_other.push((kind, payload.to_vec())),
                    }
                }
            }
            let want_data: Vec<u8> = frames.iter().filter(|(k, _)| *k == 0).flat_map(|(_, p)| p.clone()).collect();
            let want_other: Vec<_> = frames.iter().filter(|(k, _)| *k != 0).cloned().collect();
            prop_assert_eq!(got_data, want_data);
            prop_assert_eq!(got_other, want_other);
            prop_assert!(r.at_boundary());
        }
    }
}
