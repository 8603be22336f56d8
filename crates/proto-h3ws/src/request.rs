//! A request stream's frames (RFC 9114 §4.1): HEADERS, then DATA, then
//! optional trailing HEADERS, and nothing after. For an extended CONNECT
//! the DATA payloads are the tunnelled protocol's bytes (RFC 9220 §3:
//! WebSocket frames), handed out as they arrive.

use bytes::Bytes;

use crate::error::{Code, H3Error};
use crate::fields::Fields;
use crate::frame::{self, Frame, FrameReader};

/// A part of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// The head (request or response; an interim `1xx` response is a head
    /// too, followed by another: see [`RequestStream::expect_head_again`]).
    Head(Fields),
    /// Body bytes (never empty).
    Data(Bytes),
    /// Trailers.
    Trailers(Fields),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    Body,
    Done,
}

/// One request stream, in either direction.
#[derive(Debug)]
pub struct RequestStream {
    reader: FrameReader,
    state: State,
    max_field_section: u64,
}

impl RequestStream {
    /// A stream whose field sections may be at most `max_field_section`
    /// bytes (RFC 9114 §4.2.2), which also bounds their frames.
    pub fn new(max_field_section: u64) -> RequestStream {
        // QPACK never makes a section longer than its decoded size by more
        // than a few bytes per field; 2× leaves room for any encoding.
        let max_frame = usize::try_from(max_field_section.saturating_mul(2)).unwrap_or(usize::MAX);
        RequestStream {
            reader: FrameReader::new(max_frame),
            state: State::Head,
            max_field_section,
        }
    }

    /// Takes bytes received on the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        self.reader.push(bytes);
    }

    /// Takes a chunk received on the stream; its DATA payload is handed
    /// out without a copy (see [`FrameReader::push_bytes`]).
    pub fn push_bytes(&mut self, chunk: Bytes) {
        self.reader.push_bytes(chunk);
    }

    /// After an interim (`1xx`) response: the next HEADERS is a head again.
    pub fn expect_head_again(&mut self) {
        if self.state == State::Body {
            self.state = State::Head;
        }
    }

    /// The next part, `Ok(None)` when more bytes are needed.
    pub fn next_part(&mut self) -> Result<Option<Part>, H3Error> {
        loop {
            let Some(f) = self.reader.next_frame()? else {
                return Ok(None);
            };
            let unexpected = |what: String| Err(H3Error::new(Code::FrameUnexpected, what));
            match (f, self.state) {
                (Frame::Data(d), State::Body) => return Ok(Some(Part::Data(d))),
                (Frame::Data(_), State::Head) => return unexpected("DATA before HEADERS".into()),
                (Frame::Data(_), State::Done) => return unexpected("DATA after trailers".into()),
                (Frame::Other { kind, payload }, state) if kind == frame::kind::HEADERS => {
                    let fields = Fields::decode(&payload, self.max_field_section)?;
                    return match state {
                        State::Head => {
                            self.state = State::Body;
                            Ok(Some(Part::Head(fields)))
                        }
                        State::Body => {
                            self.state = State::Done;
                            Ok(Some(Part::Trailers(fields)))
                        }
                        State::Done => unexpected("HEADERS after trailers".into()),
                    };
                }
                (Frame::Other { kind, .. }, _)
                    if matches!(
                        kind,
                        frame::kind::SETTINGS
                            | frame::kind::GOAWAY
                            | frame::kind::MAX_PUSH_ID
                            | frame::kind::CANCEL_PUSH
                            | frame::kind::PUSH_PROMISE
                    ) || frame::kind::HTTP2_ONLY.contains(&kind) =>
                {
                    return unexpected(format!("frame type {kind:#x} on a request stream"));
                }
                // Unknown and reserved frame types are ignored (§9).
                (Frame::Other { .. }, _) => {}
            }
        }
    }

    /// The peer ended the stream: fine between frames after a head,
    /// `H3_REQUEST_INCOMPLETE` otherwise (§4.1).
    pub fn finish(&self) -> Result<(), H3Error> {
        if self.state == State::Head || !self.reader.at_boundary() {
            return Err(H3Error::new(
                Code::RequestIncomplete,
                "the stream ended inside a message",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fields::Request;
    use crate::frame::encode;

    #[test]
    fn head_then_data_then_trailers() {
        let req = Request::extended_connect("h", "/ws", "websocket", &[]);
        let mut wire = encode(frame::kind::HEADERS, &req.fields.encode()).to_vec();
        wire.extend_from_slice(&encode(frame::kind::DATA, b"ws-bytes"));
        wire.extend_from_slice(&encode(0x21, b""));
        wire.extend_from_slice(&encode(frame::kind::HEADERS, &Fields::default().encode()));
        let mut s = RequestStream::new(16_384);
        s.push(&wire);
        assert_eq!(s.next_part().unwrap(), Some(Part::Head(req.fields)));
        assert_eq!(
            s.next_part().unwrap(),
            Some(Part::Data(Bytes::from_static(b"ws-bytes")))
        );
        assert_eq!(
            s.next_part().unwrap(),
            Some(Part::Trailers(Fields::default()))
        );
        assert_eq!(s.next_part().unwrap(), None);
        s.finish().unwrap();
        s.push(&encode(frame::kind::DATA, b"late"));
        assert_eq!(s.next_part().unwrap_err().code, Code::FrameUnexpected);
    }

    #[test]
    fn out_of_place_frames_and_early_ends_are_errors() {
        let mut s = RequestStream::new(1000);
        s.push(&encode(frame::kind::DATA, b"x"));
        assert_eq!(s.next_part().unwrap_err().code, Code::FrameUnexpected);
        let mut s = RequestStream::new(1000);
        s.push(&Settings::default().frame());
        assert_eq!(s.next_part().unwrap_err().code, Code::FrameUnexpected);
        let s = RequestStream::new(1000);
        assert_eq!(s.finish().unwrap_err().code, Code::RequestIncomplete);
        let mut s = RequestStream::new(1000);
        s.push(&encode(frame::kind::HEADERS, &Fields::default().encode()));
        s.next_part().unwrap();
        s.push(&frame::data_header(10));
        s.push(b"abc");
        s.next_part().unwrap();
        assert_eq!(s.finish().unwrap_err().code, Code::RequestIncomplete);
    }

    use crate::settings::Settings;
}
