//! The line framing: one JSON object per `\n`-terminated line, at most
//! [`DEFAULT_MAX_LINE`] bytes (CONTRACTS.md §5).
//!
//! [`LineDecoder`] takes bytes in any split and gives complete lines back;
//! [`encode_line`] writes one message as one line; [`decode_client`] and
//! [`decode_server`] read a line as a message and tell a malformed line
//! from an unknown `type`.

use std::collections::VecDeque;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::message::{CLIENT_KINDS, ClientMessage, SERVER_KINDS, ServerMessage};

/// The contract's cap on one line: 1 MiB, not counting the `\n`.
pub const DEFAULT_MAX_LINE: usize = 1024 * 1024;

/// A line grew past the cap before its `\n` arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a line is longer than {max} bytes")]
pub struct LineTooLong {
    /// The cap in force.
    pub max: usize,
}

/// Splits a byte stream into lines, with bounded memory.
///
/// A line over `max_line` is reported once, as [`LineTooLong`], as soon as
/// it passes the cap (not when its `\n` finally comes); the decoder then
/// drops the rest of that line up to and including its `\n` and goes on
/// with the next one. Both machines close the connection on that error, so
/// the recovery only matters to drivers that choose otherwise.
///
/// Memory held: the line in progress (at most `max_line` bytes) plus the
/// complete lines of pushed bytes not yet taken with
/// [`next_line`](Self::next_line); take them after every push.
#[derive(Debug, Clone)]
pub struct LineDecoder {
    max_line: usize,
    partial: Vec<u8>,
    /// Dropping the rest of an over-long line until its `\n`.
    discarding: bool,
    ready: VecDeque<Result<Vec<u8>, LineTooLong>>,
}

impl Default for LineDecoder {
    fn default() -> Self {
        LineDecoder::new(DEFAULT_MAX_LINE)
    }
}

impl LineDecoder {
    /// A decoder that accepts lines of at most `max_line` bytes.
    pub fn new(max_line: usize) -> LineDecoder {
        LineDecoder {
            max_line,
            partial: Vec::new(),
            discarding: false,
            ready: VecDeque::new(),
        }
    }

    /// The cap in force.
    pub fn max_line(&self) -> usize {
        self.max_line
    }

    /// Bytes held: the line in progress and the lines not yet taken.
    pub fn buffered(&self) -> usize {
        self.partial.len()
            + self
                .ready
                .iter()
                .map(|r| r.as_ref().map_or(0, Vec::len))
                .sum::<usize>()
    }

    /// Takes more bytes from the stream.
    pub fn push(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let newline = bytes.iter().position(|&b| b == b'\n');
            let (piece, rest) = match newline {
                Some(at) => (&bytes[..at], &bytes[at + 1..]),
                None => (bytes, &[][..]),
            };
            bytes = rest;
            if self.discarding {
                // The over-long line ends at this `\n`; keep nothing of it.
                self.discarding = newline.is_none();
                continue;
            }
            if self.partial.len() + piece.len() > self.max_line {
                self.partial = Vec::new();
                self.discarding = newline.is_none();
                self.ready
                    .push_back(Err(LineTooLong { max: self.max_line }));
                continue;
            }
            if newline.is_none() {
                self.partial.extend_from_slice(piece);
                continue;
            }
            let line = if self.partial.is_empty() {
                piece.to_vec()
            } else {
                let mut line = std::mem::take(&mut self.partial);
                line.extend_from_slice(piece);
                line
            };
            self.ready.push_back(Ok(line));
        }
    }

    /// The next complete line, without its `\n`, or the error for a line
    /// over the cap.
    pub fn next_line(&mut self) -> Option<Result<Vec<u8>, LineTooLong>> {
        self.ready.pop_front()
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for crate::message::ClientMessage {}
    impl Sealed for crate::message::ServerMessage {}
}

/// A control message, client's or relay's.
pub trait Message: serde::Serialize + sealed::Sealed {}
impl Message for ClientMessage {}
impl Message for ServerMessage {}

/// One message as one line, `\n` included. JSON escapes every `\n` inside
/// strings, so no value can break the framing.
pub fn encode_line<M: Message>(message: &M) -> Vec<u8> {
    let mut line = serde_json::to_vec(message)
        .expect("our messages have string keys and no fallible serialiser");
    line.push(b'\n');
    line
}

/// Why a line is not a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Not JSON, not an object, or a known `type` whose fields do not fit
    /// (a missing field, a string where a number belongs, a port over 65535).
    #[error("malformed message: {0}")]
    Malformed(String),
    /// A JSON object without a string `type`.
    #[error("the message has no \"type\"")]
    MissingType,
    /// A `type` this side does not know (cut to 64 bytes: it is echoed in logs).
    #[error("unknown message type {0:?}")]
    UnknownType(String),
}

/// Reads a line the client sent.
pub fn decode_client(line: &[u8]) -> Result<ClientMessage, DecodeError> {
    decode(line, &CLIENT_KINDS)
}

/// Reads a line the relay sent.
pub fn decode_server(line: &[u8]) -> Result<ServerMessage, DecodeError> {
    decode(line, &SERVER_KINDS)
}

fn decode<T: DeserializeOwned>(line: &[u8], known: &[&str]) -> Result<T, DecodeError> {
    /// Only the tag, read again on the error path to classify the error.
    #[derive(Deserialize)]
    struct Probe {
        #[serde(rename = "type")]
        kind: Option<String>,
    }
    let err = match serde_json::from_slice::<T>(line) {
        Ok(message) => return Ok(message),
        Err(err) => err,
    };
    match serde_json::from_slice::<Probe>(line) {
        Ok(Probe { kind: None }) => Err(DecodeError::MissingType),
        Ok(Probe { kind: Some(kind) }) if !known.contains(&kind.as_str()) => {
            Err(DecodeError::UnknownType(cut(kind, 64)))
        }
        _ => Err(DecodeError::Malformed(err.to_string())),
    }
}

/// `s` cut to at most `max` bytes on a char boundary: a peer's string
/// echoed in an error could otherwise be most of a line.
pub(crate) fn cut(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// True for a line with nothing but JSON whitespace: skipped by both
/// machines (a `\r\n` sender, a keep-alive newline) rather than refused.
pub(crate) fn is_blank(line: &[u8]) -> bool {
    line.iter()
        .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Hello, RegisterAck};

    fn lines(decoder: &mut LineDecoder) -> Vec<Result<Vec<u8>, LineTooLong>> {
        std::iter::from_fn(|| decoder.next_line()).collect()
    }

    #[test]
    fn lines_in_any_split() {
        let stream = b"{\"a\":1}\n\n{\"b\":2}\r\n";
        for split in 0..=stream.len() {
            let mut d = LineDecoder::new(16);
            d.push(&stream[..split]);
            d.push(&stream[split..]);
            assert_eq!(
                lines(&mut d),
                vec![
                    Ok(b"{\"a\":1}".to_vec()),
                    Ok(Vec::new()),
                    Ok(b"{\"b\":2}\r".to_vec())
                ],
                "split at {split}"
            );
            assert_eq!(d.buffered(), 0);
        }
    }

    #[test]
    fn a_line_at_the_cap_passes_one_byte_over_fails() {
        let mut d = LineDecoder::new(8);
        d.push(b"12345678\n");
        assert_eq!(lines(&mut d), vec![Ok(b"12345678".to_vec())]);
        d.push(b"123456789\nok\n");
        assert_eq!(
            lines(&mut d),
            vec![Err(LineTooLong { max: 8 }), Ok(b"ok".to_vec())]
        );
    }

    #[test]
    fn an_over_long_line_is_reported_early_and_dropped_to_its_newline() {
        let mut d = LineDecoder::new(4);
        d.push(b"abc");
        d.push(b"de");
        // Reported before any `\n`: the decoder does not wait to buffer it.
        assert_eq!(lines(&mut d), vec![Err(LineTooLong { max: 4 })]);
        assert_eq!(d.buffered(), 0);
        for _ in 0..1000 {
            d.push(b"xxxxxxxx");
        }
        assert_eq!(d.buffered(), 0, "memory stays bounded while discarding");
        d.push(b"tail\nnext\n");
        assert_eq!(lines(&mut d), vec![Ok(b"next".to_vec())]);
    }

    #[test]
    fn encoded_lines_hold_one_newline() {
        let line = encode_line(&ServerMessage::Hello(Hello {
            version: "1.0".into(),
            features: vec!["a\nb".into()],
        }));
        assert_eq!(
            line,
            b"{\"type\":\"hello\",\"version\":\"1.0\",\"features\":[\"a\\nb\"]}\n"
        );
        let line = encode_line(&ClientMessage::RegisterAck(RegisterAck {
            tunnel_id: "t".into(),
        }));
        assert_eq!(line, b"{\"type\":\"register_ack\",\"tunnel_id\":\"t\"}\n");
    }

    #[test]
    fn decode_errors_are_classified() {
        assert!(matches!(
            decode_client(b"{"),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(
            decode_client(b"[]"),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(
            decode_client(b"\"auth\""),
            Err(DecodeError::Malformed(_))
        ));
        assert_eq!(decode_client(b"{}"), Err(DecodeError::MissingType));
        assert!(matches!(
            decode_client(br#"{"type":5}"#),
            Err(DecodeError::Malformed(_))
        ));
        assert_eq!(
            decode_client(br#"{"type":"hello","version":"1.0"}"#),
            Err(DecodeError::UnknownType("hello".into()))
        );
        assert!(matches!(
            decode_client(br#"{"type":"register_ack"}"#),
            Err(DecodeError::Malformed(m)) if m.contains("tunnel_id")
        ));
        assert!(matches!(
            decode_server(br#"{"type":"error","code":"x"}"#),
            Err(DecodeError::Malformed(_))
        ));
        let long = format!(r#"{{"type":"{}"}}"#, "é".repeat(100));
        match decode_server(long.as_bytes()) {
            Err(DecodeError::UnknownType(kind)) => assert_eq!(kind.len(), 64),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn blank_lines() {
        assert!(is_blank(b""));
        assert!(is_blank(b" \r\t"));
        assert!(!is_blank(b" {} "));
    }
}
