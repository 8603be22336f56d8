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

/// Hidden hooks for the `binary` fuzz target in `fuzz/` and its proptest.
#[doc(hidden)]
pub mod fuzzing {
    use std::collections::{HashMap, VecDeque};
    use std::time::{Duration, Instant};

    use super::*;
    use crate::TargetAddr;
    use crate::client::{self, Client, Transmit};
    use crate::flow::WindowLimits;
    use crate::frame::{MAX_FRAME_LEN, decode, encode_stream_data, encode_to_string};
    use crate::server::{self, Action, PingLimit, Session, SessionParams, StreamEnd};

    /// The limits every message is read against: nothing fits, only the
    /// kind byte, the header of an empty id, around the header of a 255-byte
    /// id, the machines' limits below, the contract's, none.
    const LIMITS: [usize; 10] = [
        0,
        1,
        2,
        257,
        258,
        300,
        1024,
        4096,
        MAX_FRAME_LEN,
        usize::MAX,
    ];

    /// Characters of 1 to 4 bytes, so ids made of them land on both sides
    /// of [`MAX_BINARY_STREAM_ID_LEN`].
    const CHARS: [char; 4] = ['s', 'é', '€', '𝄞'];

    /// Runs the `binary_data` code from raw bytes. The first byte picks the
    /// settings; the rest is used three ways:
    ///
    /// 1. as one binary message, read against every limit in `LIMITS`: the
    ///    same answer wherever it fits, `TooLarge` where not; what reads
    ///    re-encodes to the same bytes and means the same frame as its JSON
    ///    spelling; what does not gets the error its first bytes call for;
    /// 2. as a stream id and payload for the encoder (`mode & 4`: an id of
    ///    240 to 271 bytes, in whole characters of one of `CHARS`; else the
    ///    id's length is the next byte and its bytes follow): a message
    ///    exactly when the id has at most 255 bytes, nothing appended
    ///    otherwise, read back at, under and over its own length;
    /// 3. as `0xff`-separated steps for a client and a gateway machine joined
    ///    in memory, `binary_data` negotiated unless `mode & 0x10` (see
    ///    `Pair::step`), with the machines' invariants checked after each.
    pub fn drive(data: &[u8]) {
        let Some((&mode, rest)) = data.split_first() else {
            return;
        };
        check_message(rest);
        check_encoder(mode, rest);
        Pair::new(mode).run(rest);
    }

    fn check_message(message: &[u8]) {
        let unlimited = decode_binary_limited(message, usize::MAX);
        for max in LIMITS {
            let read = decode_binary_limited(message, max);
            let frame = decode_binary_frame(message, max);
            if message.len() > max {
                let too_large = || DecodeError::TooLarge {
                    len: message.len(),
                    max,
                };
                assert_eq!(read, Err(too_large()));
                assert_eq!(frame, Err(too_large()));
                continue;
            }
            assert_eq!(read, unlimited);
            match (frame, &unlimited) {
                (Ok(frame), Ok(read)) => assert_eq!(frame, as_frame(message, *read)),
                (Err(a), Err(b)) => assert_eq!(&a, b),
                (frame, read) => panic!("{frame:?} but {read:?}"),
            }
        }
        match unlimited {
            Ok(read) => {
                let id = read.stream_id;
                assert_eq!(message[0], BINARY_STREAM_DATA);
                assert_eq!(usize::from(message[1]), id.len());
                assert_eq!(read.payload_at, binary_header_len(id));
                let payload = &message[read.payload_at..];
                assert_eq!(
                    max_binary_payload_len(id.len(), message.len()),
                    payload.len()
                );
                let mut again = Vec::new();
                assert!(encode_binary_stream_data(id, payload, &mut again));
                assert_eq!(again, message);
                // The same frame spelled in JSON reads the same.
                let mut text = String::new();
                encode_stream_data(id, payload, &mut text);
                if text.len() <= MAX_FRAME_LEN {
                    assert_eq!(decode(&text), Ok(as_frame(message, read)), "{text}");
                }
            }
            Err(err) => {
                match (&err, message.first()) {
                    (DecodeError::UnknownBinary(0), None) => {}
                    (DecodeError::UnknownBinary(kind), Some(first)) => {
                        assert_eq!(kind, first);
                        assert_ne!(*kind, BINARY_STREAM_DATA);
                    }
                    (
                        DecodeError::BadStream {
                            kind: "stream_data",
                            stream_id: None,
                            ..
                        },
                        Some(&BINARY_STREAM_DATA),
                    ) => {}
                    _ => panic!("{err:?} for {message:?}"),
                }
                assert!(!err.to_string().is_empty());
            }
        }
    }

    fn as_frame<'a>(message: &'a [u8], read: BinaryData<'a>) -> Frame<'a> {
        Frame::StreamData {
            stream_id: Cow::Borrowed(read.stream_id),
            data: message[read.payload_at..].to_vec(),
        }
    }

    fn check_encoder(mode: u8, rest: &[u8]) {
        let (&n, rest) = rest.split_first().unwrap_or((&0, &[]));
        let (id, payload) = if mode & 4 != 0 {
            let c = CHARS[usize::from(mode & 3)];
            let count = (240 + usize::from(n & 31)) / c.len_utf8();
            (std::iter::repeat_n(c, count).collect::<String>(), rest)
        } else {
            let (id, payload) = rest.split_at(usize::from(n).min(rest.len()));
            (String::from_utf8_lossy(id).into_owned(), payload)
        };
        let fits = id.len() <= MAX_BINARY_STREAM_ID_LEN;
        // Encoders append: start after a byte already there.
        let mut out = vec![mode];
        assert_eq!(encode_binary_stream_data(&id, payload, &mut out), fits);
        let mut header = VecDeque::from([mode]);
        assert_eq!(encode_binary_header(&id, &mut header), fits);
        if !fits {
            assert_eq!(out, [mode]);
            assert_eq!(header, [mode]);
            return;
        }
        let message = &out[1..];
        let header_len = binary_header_len(&id);
        assert_eq!(message.len(), header_len + payload.len());
        assert!(header.iter().eq(&out[..1 + header_len]));
        let own = [message.len() - 1, message.len(), message.len() + 1];
        for max in LIMITS.into_iter().chain(own) {
            let room = max_binary_payload_len(id.len(), max);
            if max >= header_len {
                assert_eq!(payload.len() <= room, message.len() <= max);
            } else {
                assert_eq!(room, 0);
            }
            match decode_binary_limited(message, max) {
                Ok(read) => {
                    assert!(message.len() <= max);
                    assert_eq!(read.stream_id, id);
                    assert_eq!(&message[read.payload_at..], payload);
                }
                Err(err) => assert_eq!(
                    err,
                    DecodeError::TooLarge {
                        len: message.len(),
                        max
                    }
                ),
            }
        }
    }

    /// A client and a gateway machine joined in memory: what one sends the
    /// other reads at once; the driver plays the gateway's upstreams and
    /// the client's application.
    struct Pair {
        now: Instant,
        client: Client,
        server: Session,
        binary_data: bool,
        max_frame_len: usize,
        /// The ids steps pick from: two short ones, the longest a binary
        /// message can carry, one byte more (sent as JSON).
        ids: [String; 4],
        target: TargetAddr,
        /// Streams the gateway dialed, with their serials.
        dialed: HashMap<String, u64>,
        client_closes: usize,
        server_closes: usize,
    }

    impl Pair {
        /// `mode`: bit 3 the gateway's longest id (256 or 32 bytes), bit 4
        /// no `binary_data`, bit 5 `flow_control`, bits 6-7 the frame limit
        /// of both sides.
        fn new(mode: u8) -> Pair {
            let now = Instant::now();
            let binary_data = mode & 0x10 == 0;
            let flow_control = mode & 0x20 != 0;
            let max_frame_len = [300, 1024, 4096, MAX_FRAME_LEN][usize::from(mode >> 6)];
            let params = SessionParams {
                max_streams: 4,
                max_frame_len,
                max_violations: 8,
                recently_closed: 8,
                max_stream_id_len: if mode & 8 != 0 { 256 } else { 32 },
                stream_ready: true,
                binary_data,
                flow_control,
                windows: WindowLimits::default(),
                rtt: Duration::from_millis(100),
                idle_timeout: Duration::from_secs(60),
                pings: PingLimit::default(),
                drain_timeout: Duration::from_secs(5),
            };
            let config = client::Config {
                max_frame_len,
                max_chunk: 2048,
                send_queue_frames: 4,
                ..client::Config::default()
            };
            let info = client::SessionInfo {
                session_id: "fuzz".into(),
                max_streams: 4,
                features: client::Features {
                    stream_ready: true,
                    half_close: true,
                    binary_data,
                    flow_control,
                },
            };
            Pair {
                now,
                client: Client::established(config, info, now),
                server: Session::new(params, now),
                binary_data,
                max_frame_len,
                ids: [
                    "s1".into(),
                    "s2".into(),
                    "x".repeat(MAX_BINARY_STREAM_ID_LEN),
                    "y".repeat(MAX_BINARY_STREAM_ID_LEN + 1),
                ],
                target: TargetAddr::parse("example.com:443").expect("valid target"),
                dialed: HashMap::new(),
                client_closes: 0,
                server_closes: 0,
            }
        }

        fn run(mut self, steps: &[u8]) {
            for step in steps.split(|&b| b == 0xff) {
                let Some((&op, body)) = step.split_first() else {
                    continue;
                };
                self.now += Duration::from_secs(u64::from(op & 0x0c));
                self.step(op, body);
                self.settle();
                self.check();
            }
        }

        /// One input: `op >> 4` picks it, `op & 3` the stream id, `op & 0x0c`
        /// the seconds that passed before it.
        fn step(&mut self, op: u8, body: &[u8]) {
            let id = self.ids[usize::from(op & 3)].clone();
            let now = self.now;
            match op >> 4 {
                // Raw bytes as a binary message, from the client or the gateway.
                0..=3 => self.server.handle_binary_message(now, body),
                4 | 5 => self.client_reads_binary(body),
                6 => {
                    let _ = self.client.open_stream(Some(&id), &self.target);
                }
                7 => {
                    if let Ok(n) = self.client.send_data(&id, body) {
                        assert!(n <= body.len());
                    }
                }
                // Upstream bytes, spelled as the gateway's stream task does.
                8 => {
                    let mut message = Vec::new();
                    if self.binary_data && encode_binary_header(&id, &mut message) {
                        message.extend_from_slice(body);
                        self.client_reads_binary(&message);
                    } else {
                        let mut text = String::new();
                        encode_stream_data(&id, body, &mut text);
                        self.client_reads_text(&text);
                    }
                }
                9 => {
                    self.client.close_stream(&id, None);
                }
                10 => {
                    let _ = self.client.shutdown_stream(&id);
                }
                11 => {
                    let n = body.len() * 1024;
                    self.client.consumed(&id, n, now);
                    if let Some(&serial) = self.dialed.get(&id) {
                        self.server.handle_consumed(&id, serial, n, now);
                    }
                }
                12 => {
                    if let Some(&serial) = self.dialed.get(&id) {
                        match body.first() {
                            Some(&ms) => self.server.handle_stall(&id, serial, u128::from(ms)),
                            None => self.server.handle_stream_end(
                                &id,
                                serial,
                                StreamEnd {
                                    reason: server::CloseReason::Eof,
                                    error: None,
                                },
                            ),
                        }
                    }
                }
                13 => {
                    self.client.handle_timeout(now);
                    self.server.handle_timeout(now);
                }
                14 => self.server.begin_drain(now),
                _ => {
                    if let Ok(text) = std::str::from_utf8(body) {
                        self.server.handle_text(now, text);
                    }
                }
            }
        }

        fn client_reads_binary(&mut self, message: &[u8]) {
            if let Some(data) = self.client.handle_binary(self.now, message) {
                assert!(self.client.is_open(&data.stream_id));
                // Read in place: the payload is the message after the header.
                let read = decode_binary_limited(message, usize::MAX).expect("it was read");
                assert_eq!(read.stream_id, data.stream_id);
                assert_eq!(data.payload.bytes(message), &message[read.payload_at..]);
            }
        }

        fn client_reads_text(&mut self, text: &str) {
            if let Some(data) = self.client.handle_text(self.now, text) {
                assert!(self.client.is_open(&data.stream_id));
            }
        }

        /// Moves messages both ways until both machines are quiet.
        fn settle(&mut self) {
            for _ in 0..1000 {
                if self.server_actions(None) {
                    continue;
                }
                match self.client.poll_transmit() {
                    Some(transmit) => self.server_reads(transmit),
                    None => return,
                }
            }
            panic!("the machines never go quiet");
        }

        fn server_reads(&mut self, transmit: Transmit) {
            let now = self.now;
            match transmit {
                Transmit::Text(text) => {
                    assert!(decode(&text).is_ok(), "{text}");
                    self.server.handle_text(now, &text);
                    self.server_actions(None);
                }
                Transmit::Binary(message) => {
                    // Only when negotiated, for ids that fit, within the limit.
                    assert!(self.binary_data);
                    assert!(message.len() <= self.max_frame_len);
                    let read = decode_binary_limited(&message, usize::MAX).expect("readable");
                    assert!(message.len() > read.payload_at, "an empty binary message");
                    self.server.handle_binary_message(now, &message);
                    let payload = &message[read.payload_at..];
                    self.server_actions(Some((read.stream_id, payload)));
                }
            }
        }

        /// Runs the gateway's actions; `sent` is the client's binary message
        /// just read, whose payload must reach the upstream unchanged.
        /// Returns whether there was any.
        fn server_actions(&mut self, sent: Option<(&str, &[u8])>) -> bool {
            let mut any = false;
            while let Some(action) = self.server.poll_action() {
                any = true;
                match action {
                    Action::Send(frame) => {
                        let text = encode_to_string(&frame);
                        assert!(decode(&text).is_ok(), "{text}");
                        self.client_reads_text(&text);
                    }
                    Action::Dial {
                        id,
                        serial,
                        initial,
                        ..
                    } => {
                        if let Some((sent_id, payload)) = sent {
                            assert_eq!(&*id, sent_id);
                            assert!(payload.ends_with(&initial));
                        }
                        assert!(self.dialed.insert(id.to_string(), serial).is_none());
                    }
                    Action::Forward { id, data, .. } => {
                        if let Some((sent_id, payload)) = sent {
                            assert_eq!((&*id, &data[..]), (sent_id, payload));
                        }
                        assert!(self.dialed.contains_key(&*id));
                    }
                    Action::Abort { id } | Action::Finish { id } => {
                        self.dialed.remove(&*id);
                    }
                    Action::Close { code, reason } => {
                        self.server_closes += 1;
                        self.client.handle_close(Some(code), reason);
                    }
                    _ => {}
                }
            }
            any
        }

        fn check(&mut self) {
            while let Some(event) = self.client.poll_event() {
                if let client::Event::SessionClosed(_) = event {
                    self.client_closes += 1;
                }
            }
            assert!(self.client_closes <= 1);
            assert_eq!(
                self.client.poll_timeout().is_none(),
                self.client.close_reason().is_some()
            );
            assert!(self.client.open_streams() <= 4);
            assert!(self.server_closes <= 1);
            assert!(self.server.open_streams() <= 4);
            assert_eq!(
                self.server.poll_timeout().is_none(),
                self.server.is_closed()
            );
        }
    }
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

    /// A session through the fuzz hook: open, data both ways (binary for
    /// the 255-byte id, JSON for the 256-byte one), the gateway's end.
    #[test]
    fn fuzz_hook_runs_a_session() {
        let mut data = vec![0x88];
        for step in [
            &b"\x60"[..],
            b"\x70hello",
            b"\x80world",
            b"\x62",
            b"\x72long id",
            b"\x63",
            b"\x73longer id",
            b"\x83back",
            b"\x01\x01\x02s1raw",
            b"\xb0ab",
            b"\xc2",
            b"\x90",
            b"\xdc",
        ] {
            data.extend_from_slice(step);
            data.push(0xff);
        }
        fuzzing::drive(&data);
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

        /// The `binary` fuzz target's properties on stable (see
        /// [`fuzzing::drive`]): arbitrary bytes, and steps with their `0xff`
        /// separators in place.
        #[test]
        fn fuzz_hook_holds(
            bytes in proptest::collection::vec(any::<u8>(), 0..300),
            mode in any::<u8>(),
            steps in proptest::collection::vec(
                (any::<u8>(), proptest::collection::vec(0u8..0xff, 0..40)),
                0..24,
            ),
        ) {
            fuzzing::drive(&bytes);
            let mut data = vec![mode];
            for (op, body) in steps {
                data.push(op);
                data.extend(body);
                data.push(0xff);
            }
            fuzzing::drive(&data);
        }

        #[test]
        fn never_panics(message in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(read) = decode_binary_limited(&message, MAX_FRAME_LEN) {
                prop_assert!(read.payload_at <= message.len());
            }
        }
    }
}
