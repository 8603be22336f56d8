//! The `binary_data` extension: `stream_data` as a binary WebSocket message.
//!
//! The contract carries stream bytes as base64 inside JSON text. On the bulk
//! path that costs an encode, a decode, a UTF-8 check and a third more bytes
//! through TLS and TCP on each side (issue 5 profile: together the largest
//! share of the client's CPU after TLS itself). Peers that both list
//! [`FEATURE_BINARY_DATA`] in `hello`/`ready` may instead send a stream's
//! bytes as one binary message:
//!
//! ```text
//!   0x01 | id_len: u8 | stream_id: id_len bytes of UTF-8 | payload…
//! ```
//!
//! The payload is raw: no base64, no JSON. It is the same frame as the JSON
//! `stream_data` (same ids, same order with the other frames, same size
//! limit on the whole message), just another spelling, so either side may
//! still send JSON `stream_data` at any time (for instance for an id longer
//! than 255 bytes). Every other frame stays JSON text. A peer that did not
//! negotiate the extension never receives a binary message, and one that did
//! but reads an unknown first byte answers `bad_frame`.

use std::borrow::Cow;

use crate::error::DecodeError;
use crate::frame::Frame;

/// Extension name, offered in `hello.features` and accepted in `ready.features`.
pub const FEATURE_BINARY_DATA: &str = "binary_data";

/// First byte of a binary `stream_data` message.
pub const BINARY_STREAM_DATA: u8 = 0x01;

/// Longest stream id a binary message can name (its length is one byte).
pub const MAX_BINARY_STREAM_ID_LEN: usize = u8::MAX as usize;

/// Bytes before the payload in a binary `stream_data` for `stream_id`.
pub fn binary_header_len(stream_id: &str) -> usize {
    2 + stream_id.len()
}

/// Appends the header of a binary `stream_data` for `stream_id` (the payload
/// follows it). Returns `false`, appending nothing, when the id is longer than
/// [`MAX_BINARY_STREAM_ID_LEN`]: send that stream's data as JSON instead.
pub fn encode_binary_header(stream_id: &str, out: &mut impl Extend<u8>) -> bool {
    let Ok(len) = u8::try_from(stream_id.len()) else {
        return false;
    };
    out.extend([BINARY_STREAM_DATA, len]);
    out.extend(stream_id.bytes());
    true
}

/// Appends a whole binary `stream_data` message. Returns `false`, appending
/// nothing, when the id is too long for the binary form.
pub fn encode_binary_stream_data(stream_id: &str, payload: &[u8], out: &mut Vec<u8>) -> bool {
    out.reserve(binary_header_len(stream_id) + payload.len());
    if !encode_binary_header(stream_id, out) {
        return false;
    }
    out.extend_from_slice(payload);
    true
}

/// The largest payload whose binary message for an id of `stream_id_len`
/// bytes stays within `max_frame_len`.
pub fn max_binary_payload_len(stream_id_len: usize, max_frame_len: usize) -> usize {
    max_frame_len.saturating_sub(2 + stream_id_len)
}

/// A binary `stream_data` read in place: the payload is `message[payload_at..]`,
/// so a caller holding the message as shared bytes can hand the payload on
/// without copying it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BinaryData<'a> {
    /// The stream the bytes belong to.
    pub stream_id: &'a str,
    /// Where the payload starts in the message.
    pub payload_at: usize,
}

/// Reads a binary message, refusing messages over `max_len` bytes.
pub fn decode_binary_limited(
    message: &[u8],
    max_len: usize,
) -> Result<BinaryData<'_>, DecodeError> {
    if message.len() > max_len {
        return Err(DecodeError::TooLarge {
            len: message.len(),
            max: max_len,
        });
    }
    let bad = |reason| DecodeError::BadStream {
        kind: "stream_data",
        stream_id: None,
        reason,
    };
    match message.first() {
        Some(&BINARY_STREAM_DATA) => {}
        Some(&kind) => return Err(DecodeError::UnknownBinary(kind)),
        None => return Err(DecodeError::UnknownBinary(0)),
    }
    let id_len = *message
        .get(1)
        .ok_or_else(|| bad("binary message ends before the stream id"))? as usize;
    let id = message
        .get(2..2 + id_len)
        .ok_or_else(|| bad("binary message ends inside the stream id"))?;
    let stream_id = std::str::from_utf8(id).map_err(|_| bad("binary stream id is not UTF-8"))?;
    Ok(BinaryData {
        stream_id,
        payload_at: 2 + id_len,
    })
}

/// Reads a binary message as a [`Frame::StreamData`] (copying the payload),
/// for callers that handle every frame alike.
pub fn decode_binary_frame(message: &[u8], max_len: usize) -> Result<Frame<'_>, DecodeError> {
    let BinaryData {
        stream_id,
        payload_at,
    } = decode_binary_limited(message, max_len)?;
    Ok(Frame::StreamData {
        stream_id: Cow::Borrowed(stream_id),
        data: message[payload_at..].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use crate::frame::MAX_FRAME_LEN;
    use proptest::prelude::*;

    #[test]
    fn layout_is_kind_length_id_payload() {
        let mut out = Vec::new();
        assert!(encode_binary_stream_data("s1", b"hi", &mut out));
        assert_eq!(out, b"\x01\x02s1hi");
        let read = decode_binary_limited(&out, MAX_FRAME_LEN).unwrap();
        assert_eq!(
            read,
            BinaryData {
                stream_id: "s1",
                payload_at: 4
            }
        );
        assert_eq!(
            decode_binary_frame(&out, MAX_FRAME_LEN).unwrap(),
            Frame::StreamData {
                stream_id: "s1".into(),
                data: b"hi".to_vec()
            }
        );
    }

    #[test]
    fn empty_payload_and_longest_id() {
        let id = "x".repeat(MAX_BINARY_STREAM_ID_LEN);
        let mut out = Vec::new();
        assert!(encode_binary_stream_data(&id, b"", &mut out));
        let read = decode_binary_limited(&out, MAX_FRAME_LEN).unwrap();
        assert_eq!((read.stream_id, read.payload_at), (id.as_str(), out.len()));
        let too_long = "x".repeat(MAX_BINARY_STREAM_ID_LEN + 1);
        let mut out = Vec::new();
        assert!(!encode_binary_stream_data(&too_long, b"data", &mut out));
        assert!(out.is_empty());
    }

    #[test]
    fn truncated_messages_are_errors() {
        let mut out = Vec::new();
        encode_binary_stream_data("stream", b"", &mut out);
        for cut in 0..out.len() {
            let err = decode_binary_limited(&out[..cut], MAX_FRAME_LEN).unwrap_err();
            let code = if cut == 0 {
                ErrorCode::BadFrame
            } else {
                ErrorCode::BadStream
            };
            assert_eq!(err.code(), code, "cut at {cut}: {err}");
        }
    }

    #[test]
    fn unknown_kind_and_bad_id_are_refused() {
        let err = decode_binary_limited(b"\x07\x01a", MAX_FRAME_LEN).unwrap_err();
        assert_eq!(err, DecodeError::UnknownBinary(7));
        assert_eq!(err.code(), ErrorCode::BadFrame);
        let err = decode_binary_limited(b"\x01\x01\xff", MAX_FRAME_LEN).unwrap_err();
        assert_eq!(err.code(), ErrorCode::BadStream);
    }

    #[test]
    fn refuses_one_byte_over_the_limit() {
        let max = max_binary_payload_len(2, MAX_FRAME_LEN);
        let mut out = Vec::new();
        encode_binary_stream_data("s1", &vec![0; max], &mut out);
        assert_eq!(out.len(), MAX_FRAME_LEN);
        assert!(decode_binary_limited(&out, MAX_FRAME_LEN).is_ok());
        out.push(0);
        assert_eq!(
            decode_binary_limited(&out, MAX_FRAME_LEN),
            Err(DecodeError::TooLarge {
                len: MAX_FRAME_LEN + 1,
                max: MAX_FRAME_LEN
            })
        );
    }

    proptest! {
        #[test]
        fn round_trips(id in "\\PC{0,40}", data in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut out = Vec::new();
            prop_assume!(encode_binary_stream_data(&id, &data, &mut out));
            let read = decode_binary_limited(&out, MAX_FRAME_LEN).unwrap();
            prop_assert_eq!(read.stream_id, id.as_str());
            prop_assert_eq!(&out[read.payload_at..], &data[..]);
        }

        #[test]
        fn never_panics(message in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(read) = decode_binary_limited(&message, MAX_FRAME_LEN) {
                prop_assert!(read.payload_at <= message.len());
            }
        }
    }
}
