//! Unidirectional streams (RFC 9114 §6.2) and the control stream each side
//! opens first: SETTINGS, then GOAWAY and the like.

use crate::error::{Code, H3Error};
use crate::frame::{self, Frame, FrameReader};
use crate::settings::Settings;
use crate::varint;

/// The type a unidirectional stream starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UniKind {
    /// 0x00: the peer's control stream (one per connection, never closed).
    Control,
    /// 0x01: server push; we never allow push, so a push stream is an error.
    Push,
    /// 0x02: QPACK encoder instructions; with a table of capacity 0 there
    /// are none to act on.
    QpackEncoder,
    /// 0x03: QPACK decoder instructions.
    QpackDecoder,
    /// Anything else (grease, extensions): read and ignored (§6.2.3).
    Unknown(u64),
}

impl UniKind {
    /// The kind for a stream type value.
    pub fn of(value: u64) -> UniKind {
        match value {
            0x00 => UniKind::Control,
            0x01 => UniKind::Push,
            0x02 => UniKind::QpackEncoder,
            0x03 => UniKind::QpackDecoder,
            v => UniKind::Unknown(v),
        }
    }

    /// The type value that starts such a stream.
    pub fn value(self) -> u64 {
        match self {
            UniKind::Control => 0x00,
            UniKind::Push => 0x01,
            UniKind::QpackEncoder => 0x02,
            UniKind::QpackDecoder => 0x03,
            UniKind::Unknown(v) => v,
        }
    }

    /// The bytes that open our stream of this kind.
    pub fn preface(self) -> Vec<u8> {
        let mut b = Vec::with_capacity(8);
        varint::put(&mut b, self.value());
        b
    }
}

/// Something the peer's control stream said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlEvent {
    /// Its SETTINGS (always the first event).
    Settings(Settings),
    /// GOAWAY: no request stream from this id on will be processed.
    GoAway(u64),
}

/// The peer's control stream, after its type byte.
#[derive(Debug)]
pub struct ControlStream {
    reader: FrameReader,
    settings_seen: bool,
}

impl ControlStream {
    /// A control stream whose frames are at most `max_frame` bytes.
    pub fn new(max_frame: usize) -> ControlStream {
        ControlStream {
            reader: FrameReader::new(max_frame),
            settings_seen: false,
        }
    }

    /// Takes bytes received on the stream; returns what they said.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<ControlEvent>, H3Error> {
        self.reader.push(bytes);
        let mut events = Vec::new();
        while let Some(f) = self.reader.next_frame()? {
            let unexpected = |what: &str| {
                Err(H3Error::new(
                    Code::FrameUnexpected,
                    format!("{what} on the control stream"),
                ))
            };
            let (kind, payload) = match f {
                Frame::Data(_) => return unexpected("DATA"),
                Frame::Other { kind, payload } => (kind, payload),
            };
            if !self.settings_seen {
                if kind != frame::kind::SETTINGS {
                    return Err(H3Error::new(
                        Code::MissingSettings,
                        format!("control stream began with frame type {kind:#x}"),
                    ));
                }
                self.settings_seen = true;
                events.push(ControlEvent::Settings(Settings::decode(&payload)?));
                continue;
            }
            match kind {
                frame::kind::SETTINGS => return unexpected("a second SETTINGS"),
                frame::kind::HEADERS | frame::kind::PUSH_PROMISE => {
                    return unexpected("HEADERS or PUSH_PROMISE");
                }
                k if frame::kind::HTTP2_ONLY.contains(&k) => {
                    return unexpected("an HTTP/2 frame type");
                }
                frame::kind::GOAWAY => {
                    let mut p = &payload[..];
                    match varint::get(&mut p) {
                        Some(id) if p.is_empty() => events.push(ControlEvent::GoAway(id)),
                        _ => return Err(H3Error::new(Code::FrameError, "malformed GOAWAY")),
                    }
                }
                // CANCEL_PUSH, MAX_PUSH_ID (we never push), unknown and
                // reserved types: nothing to do.
                _ => {}
            }
        }
        Ok(events)
    }
}

/// The peer closed its control stream: always a connection error (§6.2.1).
pub fn control_stream_closed() -> H3Error {
    H3Error::new(Code::ClosedCriticalStream, "the control stream closed")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::encode;

    #[test]
    fn settings_come_first_then_goaway() {
        let mut c = ControlStream::new(1024);
        let settings = Settings {
            enable_connect_protocol: true,
            ..Settings::default()
        };
        let mut wire = settings.frame().to_vec();
        wire.extend_from_slice(&encode(0x21, b"grease"));
        wire.extend_from_slice(&encode(frame::kind::GOAWAY, &[0x04]));
        let mut events = Vec::new();
        for b in &wire {
            events.extend(c.push(std::slice::from_ref(b)).unwrap());
        }
        assert_eq!(
            events,
            vec![ControlEvent::Settings(settings), ControlEvent::GoAway(4)]
        );
        let again = c.push(&Settings::default().frame()).unwrap_err();
        assert_eq!(again.code, Code::FrameUnexpected);
    }

    #[test]
    fn a_control_stream_without_settings_first_is_an_error() {
        let mut c = ControlStream::new(1024);
        let err = c.push(&encode(frame::kind::GOAWAY, &[0])).unwrap_err();
        assert_eq!(err.code, Code::MissingSettings);
        let mut c = ControlStream::new(1024);
        c.push(&Settings::default().frame()).unwrap();
        assert_eq!(
            c.push(&encode(frame::kind::DATA, b"x")).unwrap_err().code,
            Code::FrameUnexpected
        );
        assert_eq!(UniKind::of(0x21), UniKind::Unknown(0x21));
        assert_eq!(UniKind::Control.preface(), vec![0]);
    }
}
