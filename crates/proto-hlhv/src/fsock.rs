//! fsock framing: a 4-byte big-endian length, then that many bytes.
//!
//! The original reads any length a peer announces; a 4 GiB announcement
//! would make it allocate 4 GiB. We cap frames ([`DEFAULT_MAX_FRAME`],
//! configurable on both sides) and refuse a larger announcement before
//! reading its body. The Go side writes the length and the body with two
//! writes, so a frame may arrive split anywhere: [`FrameReader::decode`] takes
//! whatever bytes have arrived and yields complete frames only.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::frame::{Frame, FrameError};

/// The frame cap both our cell and our queen use unless told otherwise:
/// 16 MiB, far above the largest frame the Go implementation writes (a
/// request head with every header of a large request).
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;

/// Bytes of the length prefix.
pub const LENGTH_PREFIX: usize = 4;

/// Splits a byte stream into frames, refusing any larger than its cap.
#[derive(Debug, Clone, Copy)]
pub struct FrameReader {
    max_frame: usize,
}

impl Default for FrameReader {
    fn default() -> Self {
        FrameReader::new(DEFAULT_MAX_FRAME)
    }
}

impl FrameReader {
    /// A reader refusing frames whose body (kind byte included) is longer
    /// than `max_frame` bytes.
    pub fn new(max_frame: usize) -> FrameReader {
        FrameReader {
            max_frame: max_frame.max(1),
        }
    }

    /// The cap this reader enforces.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Takes the next complete frame's body out of `buf`, if one has fully
    /// arrived. The length is checked as soon as its 4 bytes are there, so an
    /// oversized frame is refused before its body is buffered.
    pub fn split(&self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        if buf.len() < LENGTH_PREFIX {
            return Ok(None);
        }
        let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if len > self.max_frame {
            return Err(FrameError::TooLarge {
                len,
                max: self.max_frame,
            });
        }
        if buf.len() < LENGTH_PREFIX + len {
            // Room for the rest, so the driver's reads land in one buffer.
            buf.reserve(LENGTH_PREFIX + len - buf.len());
            return Ok(None);
        }
        buf.advance(LENGTH_PREFIX);
        Ok(Some(buf.split_to(len).freeze()))
    }

    /// [`split`](Self::split), then [`Frame::parse`].
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        match self.split(buf)? {
            Some(body) => Frame::parse(body).map(Some),
            None => Ok(None),
        }
    }
}

/// Appends one fsock frame holding `kind` and `payload`.
pub fn put_frame(out: &mut BytesMut, kind: u8, payload: &[u8]) {
    out.reserve(LENGTH_PREFIX + 1 + payload.len());
    out.put_u32(1 + payload.len() as u32);
    out.put_u8(kind);
    out.put_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{Mount, ResHead};
    use proptest::prelude::*;

    fn encoded(frames: &[Frame]) -> BytesMut {
        let mut out = BytesMut::new();
        for frame in frames {
            frame.write(&mut out);
        }
        out
    }

    fn sample() -> Vec<Frame> {
        vec![
            Frame::Mount(Mount {
                host: "demo.example".into(),
                path: "/app/".into(),
            }),
            Frame::ResBody(Bytes::from_static(b"hello")),
            Frame::ResEnd,
            Frame::ResHead(ResHead {
                status_code: 200,
                headers: [("content-type".to_owned(), vec!["text/plain".to_owned()])]
                    .into_iter()
                    .collect(),
            }),
        ]
    }

    #[test]
    fn frames_come_out_whole_however_the_bytes_are_cut() {
        let frames = sample();
        let wire = encoded(&frames);
        for cut in 0..wire.len() {
            let reader = FrameReader::default();
            let mut buf = BytesMut::from(&wire[..cut]);
            let mut got = Vec::new();
            while let Some(frame) = reader.decode(&mut buf).unwrap() {
                got.push(frame);
            }
            buf.extend_from_slice(&wire[cut..]);
            while let Some(frame) = reader.decode(&mut buf).unwrap() {
                got.push(frame);
            }
            assert_eq!(got, frames, "cut at {cut}");
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn an_oversized_length_is_refused_before_its_body_arrives() {
        let reader = FrameReader::new(1024);
        let mut buf = BytesMut::from(&[0u8, 0, 4, 1][..]);
        assert_eq!(
            reader.split(&mut buf),
            Err(FrameError::TooLarge {
                len: 1025,
                max: 1024
            })
        );
        let mut ok = BytesMut::from(&[0u8, 0, 4, 0][..]);
        assert_eq!(reader.split(&mut ok), Ok(None));
    }

    #[test]
    fn an_empty_frame_is_an_error() {
        let mut buf = BytesMut::from(&[0u8, 0, 0, 0][..]);
        assert_eq!(
            FrameReader::default().decode(&mut buf),
            Err(FrameError::Empty)
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let reader = FrameReader::new(256);
            let mut buf = BytesMut::from(&bytes[..]);
            while let Ok(Some(_)) = reader.decode(&mut buf) {}
        }

        #[test]
        fn body_frames_round_trip(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let frames = vec![
                Frame::ReqBody(Bytes::from(data.clone())),
                Frame::ResBody(Bytes::from(data)),
            ];
            let mut wire = encoded(&frames);
            let reader = FrameReader::default();
            let mut got = Vec::new();
            while let Some(frame) = reader.decode(&mut wire).unwrap() {
                got.push(frame);
            }
            prop_assert_eq!(got, frames);
        }
    }
}
