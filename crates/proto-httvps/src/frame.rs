//! Typed frames and their JSON form.
//!
//! [`decode`] reads one WebSocket text message; [`encode`] writes one. Strings
//! borrow from the message when they hold no escapes, so a frame costs no
//! allocation beyond its decoded payload. `stream_data` is the only frame on the
//! hot path and has its own writer, [`encode_stream_data`], which appends
//! straight into the caller's buffer (see `benches/hot_path.rs`).

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;

use crate::error::{DecodeError, ErrorCode};

/// Largest encoded frame a peer may send or accept (contract: 256 KiB).
pub const MAX_FRAME_LEN: usize = 256 * 1024;

/// The only protocol version, sent in `hello.version`.
pub const PROTOCOL_VERSION: &str = "1";

/// Extension: the gateway sends `{"type":"stream_ready","stream_id":…}` once a
/// stream's upstream connection is up, so a client can tell its application
/// "connected" or the precise failure before any byte flows. Offered by the
/// client in `hello.features`, accepted by the gateway in `ready.features`;
/// peers that do not know it ignore the field, so the contract's default
/// behaviour is unchanged.
pub const FEATURE_STREAM_READY: &str = "stream_ready";

/// Extension: the client sends `{"type":"stream_shutdown","stream_id":…}`
/// when its application has finished writing (TCP half-close); the gateway
/// shuts down the upstream's write side and keeps relaying the reply until
/// the target closes. Without it a finished client cannot tell a keep-alive
/// server it left, and the stream lingers. Negotiated like
/// [`FEATURE_STREAM_READY`].
pub const FEATURE_HALF_CLOSE: &str = "half_close";

/// Extension: per-stream and per-session credit (see [`crate::flow`]). A
/// sender never has more stream bytes in flight than the receiver granted;
/// the receiver grants more with [`Frame::WindowUpdate`] as its application
/// consumes. Negotiated like [`FEATURE_STREAM_READY`].
pub const FEATURE_FLOW_CONTROL: &str = "flow_control";

/// A session token as carried in `hello`.
///
/// Its `Debug` output is redacted so that logging a frame never logs a secret.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionToken<'a>(pub Cow<'a, str>);

impl SessionToken<'_> {
    /// The token itself, for the one place that must send or check it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SessionToken<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken(<redacted>)")
    }
}

/// One HTTVPS frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame<'a> {
    /// Client → gateway, first frame of a session.
    Hello {
        /// The short-lived session token from the control plane.
        session_token: SessionToken<'a>,
        /// Protocol version; [`PROTOCOL_VERSION`] today.
        version: Cow<'a, str>,
        /// A free-form client name for the gateway's logs (empty when absent).
        client: Cow<'a, str>,
        /// Extensions the client offers (an extra field; empty when absent).
        features: Vec<Cow<'a, str>>,
    },
    /// Gateway → client: the handshake succeeded.
    Ready {
        /// The session's id, for logs and support.
        session_id: Cow<'a, str>,
        /// How many streams may be open at once.
        max_streams: u32,
        /// Extensions the gateway accepted, from those offered (empty when absent).
        features: Vec<Cow<'a, str>>,
    },
    /// Opens a stream; the target is informational, the address header rules.
    StreamOpen {
        /// Client-chosen id, unique within the session.
        stream_id: Cow<'a, str>,
        /// `host:port` of the target.
        target: Cow<'a, str>,
    },
    /// Gateway → client, only when [`FEATURE_STREAM_READY`] was negotiated:
    /// the stream's upstream connection is established.
    StreamReady {
        /// The stream that is ready.
        stream_id: Cow<'a, str>,
    },
    /// Client → gateway, only when [`FEATURE_HALF_CLOSE`] was negotiated:
    /// the client will send no more data on this stream; replies continue.
    StreamShutdown {
        /// The stream whose client side is done.
        stream_id: Cow<'a, str>,
    },
    /// Stream payload, already base64-decoded.
    StreamData {
        /// The stream the bytes belong to.
        stream_id: Cow<'a, str>,
        /// The payload bytes.
        data: Vec<u8>,
    },
    /// Ends a stream in both directions.
    StreamClose {
        /// The stream to end.
        stream_id: Cow<'a, str>,
        /// Why, when the sender says.
        reason: Option<Cow<'a, str>>,
    },
    /// Both ways, only when [`FEATURE_FLOW_CONTROL`] was negotiated: the
    /// sender of this frame may now receive `increment` more payload bytes
    /// on `stream_id`, or on the whole session when `stream_id` is absent.
    WindowUpdate {
        /// The stream whose window grows; `None` for the session's.
        stream_id: Option<Cow<'a, str>>,
        /// Bytes of credit added (1 to [`crate::flow::MAX_INCREMENT`]).
        increment: u64,
    },
    /// Keepalive request; the receiver answers [`Frame::Pong`].
    Ping,
    /// Keepalive answer.
    Pong,
    /// An error; with `stream_id` it concerns only that stream.
    Error {
        /// The contract code.
        code: ErrorCode,
        /// Text for people.
        message: Cow<'a, str>,
        /// The stream concerned, for stream-scoped errors.
        stream_id: Option<Cow<'a, str>>,
        /// A machine-readable cause for stream-scoped errors (`refused`,
        /// `unreachable`, `not_allowed`, `timeout`, …), matching the
        /// `stream_close` reason that follows. An extension: peers that do not
        /// know it ignore it, as unknown fields are ignored.
        reason: Option<Cow<'a, str>>,
    },
}

impl Frame<'_> {
    /// The wire name of this frame's type.
    pub fn kind(&self) -> &'static str {
        match self {
            Frame::Hello { .. } => "hello",
            Frame::Ready { .. } => "ready",
            Frame::StreamOpen { .. } => "stream_open",
            Frame::StreamReady { .. } => "stream_ready",
            Frame::StreamShutdown { .. } => "stream_shutdown",
            Frame::StreamData { .. } => "stream_data",
            Frame::StreamClose { .. } => "stream_close",
            Frame::WindowUpdate { .. } => "window_update",
            Frame::Ping => "ping",
            Frame::Pong => "pong",
            Frame::Error { .. } => "error",
        }
    }

    /// Converts borrowed strings into owned ones, to keep a frame past its message.
    pub fn into_owned(self) -> Frame<'static> {
        fn own(c: Cow<'_, str>) -> Cow<'static, str> {
            Cow::Owned(c.into_owned())
        }
        match self {
            Frame::Hello {
                session_token,
                version,
                client,
                features,
            } => Frame::Hello {
                session_token: SessionToken(own(session_token.0)),
                version: own(version),
                client: own(client),
                features: features.into_iter().map(own).collect(),
            },
            Frame::Ready {
                session_id,
                max_streams,
                features,
            } => Frame::Ready {
                session_id: own(session_id),
                max_streams,
                features: features.into_iter().map(own).collect(),
            },
            Frame::StreamReady { stream_id } => Frame::StreamReady {
                stream_id: own(stream_id),
            },
            Frame::StreamShutdown { stream_id } => Frame::StreamShutdown {
                stream_id: own(stream_id),
            },
            Frame::StreamOpen { stream_id, target } => Frame::StreamOpen {
                stream_id: own(stream_id),
                target: own(target),
            },
            Frame::StreamData { stream_id, data } => Frame::StreamData {
                stream_id: own(stream_id),
                data,
            },
            Frame::StreamClose { stream_id, reason } => Frame::StreamClose {
                stream_id: own(stream_id),
                reason: reason.map(own),
            },
            Frame::WindowUpdate {
                stream_id,
                increment,
            } => Frame::WindowUpdate {
                stream_id: stream_id.map(own),
                increment,
            },
            Frame::Ping => Frame::Ping,
            Frame::Pong => Frame::Pong,
            Frame::Error {
                code,
                message,
                stream_id,
                reason,
            } => Frame::Error {
                code,
                message: own(message),
                stream_id: stream_id.map(own),
                reason: reason.map(own),
            },
        }
    }
}

/// A JSON string that borrows from the message when it has no escapes.
///
/// serde borrows a bare `Cow<str>` field but not an `Option<Cow<str>>`; this
/// newtype restores borrowing so `data` is never copied before base64 decoding.
#[derive(Deserialize)]
#[serde(transparent)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

/// Every field any frame may carry. Unknown fields are ignored (serde's
/// default), as the contract requires.
#[derive(Deserialize)]
struct RawFrame<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Text<'a>>,
    #[serde(borrow)]
    session_token: Option<Text<'a>>,
    #[serde(borrow)]
    version: Option<Text<'a>>,
    #[serde(borrow)]
    client: Option<Text<'a>>,
    #[serde(borrow)]
    session_id: Option<Text<'a>>,
    max_streams: Option<u32>,
    #[serde(borrow)]
    stream_id: Option<Text<'a>>,
    #[serde(borrow)]
    target: Option<Text<'a>>,
    #[serde(borrow)]
    data: Option<Text<'a>>,
    #[serde(borrow)]
    reason: Option<Text<'a>>,
    #[serde(borrow)]
    code: Option<Text<'a>>,
    #[serde(borrow)]
    message: Option<Text<'a>>,
    #[serde(borrow)]
    features: Option<Vec<Text<'a>>>,
    increment: Option<u64>,
}

fn cow(t: Option<Text<'_>>) -> Option<Cow<'_, str>> {
    t.map(|t| t.0)
}

/// Reads one frame from a WebSocket text message, refusing messages over
/// [`MAX_FRAME_LEN`].
pub fn decode(text: &str) -> Result<Frame<'_>, DecodeError> {
    decode_limited(text, MAX_FRAME_LEN)
}

/// Reads one frame, refusing messages over `max_len` bytes.
pub fn decode_limited(text: &str, max_len: usize) -> Result<Frame<'_>, DecodeError> {
    if text.len() > max_len {
        return Err(DecodeError::TooLarge {
            len: text.len(),
            max: max_len,
        });
    }
    if let Some(frame) = decode_stream_data_exact(text) {
        return Ok(frame);
    }
    decode_json(text)
}

/// The `stream_data` fast path: a frame laid out exactly as
/// [`encode_stream_data`] writes it, which is every data frame our peers send.
///
/// serde_json scans a string byte by byte for escapes, which for a 64 KiB
/// payload cost more than the base64 decoding itself (issue 5 profile). Here
/// the only scan is the base64 decoder's, and it doubles as the proof that
/// the layout is plain JSON: the base64 alphabet has no `"`, `\` or control
/// character, so a `data` slice that decodes is an unescaped JSON string, and
/// the text is exactly the object `{type, stream_id, data}`. Anything else
/// (other field order, whitespace, escapes, bad base64) returns `None` and
/// takes the general path, which also produces the precise error.
fn decode_stream_data_exact(text: &str) -> Option<Frame<'_>> {
    let rest = text.strip_prefix(DATA_PREFIX)?.strip_prefix('"')?;
    let id_len = rest
        .bytes()
        .position(|b| b == b'"' || b == b'\\' || b < 0x20)?;
    let (stream_id, rest) = rest.split_at(id_len);
    let data = rest
        .strip_prefix('"')?
        .strip_prefix(DATA_MIDDLE)?
        .strip_suffix(DATA_SUFFIX)?;
    // An id with an escape or a control character ends the scan above on
    // something other than the closing quote; `strip_prefix('"')` refuses it.
    let data = base64_simd::STANDARD.decode_to_vec(data.as_bytes()).ok()?;
    Some(Frame::StreamData {
        stream_id: Cow::Borrowed(stream_id),
        data,
    })
}

/// The general decoder: any field order, escapes, unknown fields.
fn decode_json(text: &str) -> Result<Frame<'_>, DecodeError> {
    let raw: RawFrame<'_> = match serde_json::from_str(text) {
        Ok(raw) => raw,
        Err(e) => return Err(classify_invalid(text, e)),
    };
    let RawFrame {
        kind,
        session_token,
        version,
        client,
        session_id,
        max_streams,
        stream_id,
        target,
        data,
        reason,
        code,
        message,
        features,
        increment,
    } = raw;
    let features: Vec<Cow<'_, str>> = features.into_iter().flatten().map(|t| t.0).collect();
    let (session_token, version, client, session_id) = (
        cow(session_token),
        cow(version),
        cow(client),
        cow(session_id),
    );
    let (stream_id, target, data, reason, code, message) = (
        cow(stream_id),
        cow(target),
        cow(data),
        cow(reason),
        cow(code),
        cow(message),
    );
    let kind = cow(kind).ok_or(DecodeError::MissingType)?;
    let stream_error =
        |kind: &'static str, stream_id: &Option<Cow<'_, str>>, reason| DecodeError::BadStream {
            kind,
            stream_id: stream_id.as_ref().map(|s| s.to_string()),
            reason,
        };
    let frame = match kind.as_ref() {
        "stream_data" => {
            let stream_id =
                stream_id.ok_or_else(|| stream_error("stream_data", &None, "missing stream_id"))?;
            let data = data.ok_or_else(|| {
                stream_error("stream_data", &Some(stream_id.clone()), "missing data")
            })?;
            let data = base64_simd::STANDARD
                .decode_to_vec(data.as_bytes())
                .map_err(|_| {
                    stream_error(
                        "stream_data",
                        &Some(stream_id.clone()),
                        "data is not valid base64",
                    )
                })?;
            Frame::StreamData { stream_id, data }
        }
        "hello" => Frame::Hello {
            session_token: SessionToken(
                session_token.ok_or(DecodeError::BadHello("missing session_token"))?,
            ),
            version: version.ok_or(DecodeError::BadHello("missing version"))?,
            client: client.unwrap_or_default(),
            features,
        },
        "ready" => Frame::Ready {
            session_id: session_id.ok_or(DecodeError::BadControl {
                kind: "ready",
                reason: "missing session_id",
            })?,
            max_streams: max_streams.ok_or(DecodeError::BadControl {
                kind: "ready",
                reason: "missing max_streams",
            })?,
            features,
        },
        "stream_ready" => Frame::StreamReady {
            stream_id: stream_id
                .ok_or_else(|| stream_error("stream_ready", &None, "missing stream_id"))?,
        },
        "stream_shutdown" => Frame::StreamShutdown {
            stream_id: stream_id
                .ok_or_else(|| stream_error("stream_shutdown", &None, "missing stream_id"))?,
        },
        "stream_open" => {
            let stream_id =
                stream_id.ok_or_else(|| stream_error("stream_open", &None, "missing stream_id"))?;
            let target = target.ok_or_else(|| {
                stream_error("stream_open", &Some(stream_id.clone()), "missing target")
            })?;
            Frame::StreamOpen { stream_id, target }
        }
        "stream_close" => Frame::StreamClose {
            stream_id: stream_id
                .ok_or_else(|| stream_error("stream_close", &None, "missing stream_id"))?,
            reason,
        },
        "window_update" => {
            let increment = increment
                .filter(|n| (1..=crate::flow::MAX_INCREMENT).contains(n))
                .ok_or(DecodeError::BadControl {
                    kind: "window_update",
                    reason: "increment must be 1 to 2^31",
                })?;
            Frame::WindowUpdate {
                stream_id,
                increment,
            }
        }
        "ping" => Frame::Ping,
        "pong" => Frame::Pong,
        "error" => Frame::Error {
            code: ErrorCode::parse(&code.ok_or(DecodeError::BadControl {
                kind: "error",
                reason: "missing code",
            })?),
            message: message.unwrap_or_default(),
            stream_id,
            reason,
        },
        other => return Err(DecodeError::UnknownType(other.to_owned())),
    };
    Ok(frame)
}

/// Explains a message serde could not read as a [`RawFrame`].
///
/// Off the hot path: the message is parsed again as a generic value so that a
/// hello or stream frame with a field of the wrong JSON type gets the code of
/// its frame type (`bad_hello`, `bad_stream`) rather than a bare `bad_frame`.
#[cold]
fn classify_invalid(text: &str, err: serde_json::Error) -> DecodeError {
    let Ok(serde_json::Value::Object(obj)) = serde_json::from_str::<serde_json::Value>(text) else {
        return DecodeError::NotJson(err.to_string());
    };
    let stream_id = obj
        .get("stream_id")
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    match obj.get("type").and_then(|v| v.as_str()) {
        None => DecodeError::MissingType,
        Some("hello") => DecodeError::BadHello("a field has the wrong JSON type"),
        Some("stream_open") => DecodeError::BadStream {
            kind: "stream_open",
            stream_id,
            reason: "a field has the wrong JSON type",
        },
        Some("stream_data") => DecodeError::BadStream {
            kind: "stream_data",
            stream_id,
            reason: "a field has the wrong JSON type",
        },
        Some("stream_close") => DecodeError::BadStream {
            kind: "stream_close",
            stream_id,
            reason: "a field has the wrong JSON type",
        },
        Some("ready" | "ping" | "pong" | "error" | "window_update") => {
            DecodeError::NotJson(err.to_string())
        }
        Some(other) => DecodeError::UnknownType(other.to_owned()),
    }
}

/// Appends the JSON text of `frame` to `out`.
///
/// Written by hand rather than through serde: the frames are flat, the output
/// must match the contract's field names exactly, and writing into a reused
/// buffer avoids an allocation per frame.
pub fn encode(frame: &Frame<'_>, out: &mut String) {
    match frame {
        Frame::StreamData { stream_id, data } => encode_stream_data(stream_id, data, out),
        Frame::Hello {
            session_token,
            version,
            client,
            features,
        } => {
            out.push_str(r#"{"type":"hello","session_token":"#);
            push_json_str(out, session_token.expose());
            out.push_str(r#","version":"#);
            push_json_str(out, version);
            out.push_str(r#","client":"#);
            push_json_str(out, client);
            push_features(out, features);
            out.push('}');
        }
        Frame::Ready {
            session_id,
            max_streams,
            features,
        } => {
            out.push_str(r#"{"type":"ready","session_id":"#);
            push_json_str(out, session_id);
            out.push_str(r#","max_streams":"#);
            out.push_str(&max_streams.to_string());
            push_features(out, features);
            out.push('}');
        }
        Frame::StreamReady { stream_id } => {
            out.push_str(r#"{"type":"stream_ready","stream_id":"#);
            push_json_str(out, stream_id);
            out.push('}');
        }
        Frame::StreamShutdown { stream_id } => {
            out.push_str(r#"{"type":"stream_shutdown","stream_id":"#);
            push_json_str(out, stream_id);
            out.push('}');
        }
        Frame::StreamOpen { stream_id, target } => {
            out.push_str(r#"{"type":"stream_open","stream_id":"#);
            push_json_str(out, stream_id);
            out.push_str(r#","target":"#);
            push_json_str(out, target);
            out.push('}');
        }
        Frame::StreamClose { stream_id, reason } => {
            out.push_str(r#"{"type":"stream_close","stream_id":"#);
            push_json_str(out, stream_id);
            if let Some(reason) = reason {
                out.push_str(r#","reason":"#);
                push_json_str(out, reason);
            }
            out.push('}');
        }
        Frame::WindowUpdate {
            stream_id,
            increment,
        } => {
            out.push_str(r#"{"type":"window_update""#);
            if let Some(id) = stream_id {
                out.push_str(r#","stream_id":"#);
                push_json_str(out, id);
            }
            out.push_str(r#","increment":"#);
            out.push_str(&increment.to_string());
            out.push('}');
        }
        Frame::Ping => out.push_str(r#"{"type":"ping"}"#),
        Frame::Pong => out.push_str(r#"{"type":"pong"}"#),
        Frame::Error {
            code,
            message,
            stream_id,
            reason,
        } => {
            out.push_str(r#"{"type":"error","code":"#);
            push_json_str(out, code.as_str());
            out.push_str(r#","message":"#);
            push_json_str(out, message);
            if let Some(id) = stream_id {
                out.push_str(r#","stream_id":"#);
                push_json_str(out, id);
            }
            if let Some(reason) = reason {
                out.push_str(r#","reason":"#);
                push_json_str(out, reason);
            }
            out.push('}');
        }
    }
}

/// Encodes a whole frame into a new string (convenience for cold paths).
pub fn encode_to_string(frame: &Frame<'_>) -> String {
    let mut out = String::new();
    encode(frame, &mut out);
    out
}

const DATA_PREFIX: &str = r#"{"type":"stream_data","stream_id":"#;
const DATA_MIDDLE: &str = r#","data":""#;
const DATA_SUFFIX: &str = r#""}"#;

/// Appends a `stream_data` frame carrying `payload` to `out`: the hot path.
///
/// The caller keeps `payload` within [`max_payload_len`] so the frame stays
/// under [`MAX_FRAME_LEN`].
pub fn encode_stream_data(stream_id: &str, payload: &[u8], out: &mut String) {
    out.reserve(
        DATA_PREFIX.len()
            + stream_id.len()
            + 2
            + DATA_MIDDLE.len()
            + base64_simd::STANDARD.encoded_length(payload.len())
            + DATA_SUFFIX.len(),
    );
    out.push_str(DATA_PREFIX);
    push_json_str(out, stream_id);
    out.push_str(DATA_MIDDLE);
    base64_simd::STANDARD.encode_append(payload, out);
    out.push_str(DATA_SUFFIX);
}

/// The largest payload whose `stream_data` frame for a stream id of
/// `stream_id_len` bytes stays within `max_frame_len`.
pub fn max_payload_len(stream_id_len: usize, max_frame_len: usize) -> usize {
    // Worst case every id byte is escaped as \u00XX (6 bytes), plus quotes.
    let overhead =
        DATA_PREFIX.len() + stream_id_len * 6 + 2 + DATA_MIDDLE.len() + DATA_SUFFIX.len();
    max_frame_len.saturating_sub(overhead) / 4 * 3
}

/// Appends `,"features":[…]`, only when there are any: a frame without
/// extensions stays exactly the contract's.
fn push_features(out: &mut String, features: &[Cow<'_, str>]) {
    if features.is_empty() {
        return;
    }
    out.push_str(r#","features":["#);
    for (i, feature) in features.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_str(out, feature);
    }
    out.push(']');
}

/// Appends `s` as a JSON string literal (RFC 8259 §7), quotes included.
fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    if !s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        out.push_str(s);
    } else {
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(frame: Frame<'_>) {
        let text = encode_to_string(&frame);
        let back = decode(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(back, frame, "{text}");
    }

    #[test]
    fn every_frame_round_trips() {
        round_trip(Frame::Hello {
            session_token: SessionToken("tok\"en".into()),
            version: "1".into(),
            client: "httvps-cli".into(),
            features: vec![],
        });
        round_trip(Frame::Hello {
            session_token: SessionToken("t".into()),
            version: "1".into(),
            client: "c".into(),
            features: vec![FEATURE_STREAM_READY.into(), "future".into()],
        });
        round_trip(Frame::Ready {
            session_id: "uuid".into(),
            max_streams: 8,
            features: vec![],
        });
        round_trip(Frame::Ready {
            session_id: "uuid".into(),
            max_streams: 8,
            features: vec![FEATURE_STREAM_READY.into()],
        });
        round_trip(Frame::StreamReady {
            stream_id: "s1".into(),
        });
        round_trip(Frame::StreamShutdown {
            stream_id: "s1".into(),
        });
        round_trip(Frame::StreamOpen {
            stream_id: "s1".into(),
            target: "[::1]:443".into(),
        });
        round_trip(Frame::StreamData {
            stream_id: "s1".into(),
            data: b"hello\0\xff".to_vec(),
        });
        round_trip(Frame::StreamData {
            stream_id: "s1".into(),
            data: Vec::new(),
        });
        round_trip(Frame::StreamClose {
            stream_id: "s1".into(),
            reason: None,
        });
        round_trip(Frame::StreamClose {
            stream_id: "s1".into(),
            reason: Some("eof".into()),
        });
        round_trip(Frame::Ping);
        round_trip(Frame::Pong);
        round_trip(Frame::Error {
            code: ErrorCode::StreamError,
            message: "limit\n".into(),
            stream_id: Some("s9".into()),
            reason: Some("refused".into()),
        });
    }

    #[test]
    fn matches_contract_json_exactly() {
        let f = Frame::StreamData {
            stream_id: "s1".into(),
            data: b"hi".to_vec(),
        };
        assert_eq!(
            encode_to_string(&f),
            r#"{"type":"stream_data","stream_id":"s1","data":"aGk="}"#
        );
        assert_eq!(encode_to_string(&Frame::Ping), r#"{"type":"ping"}"#);
        let ready = Frame::Ready {
            session_id: "u".into(),
            max_streams: 8,
            features: vec![],
        };
        assert_eq!(
            encode_to_string(&ready),
            r#"{"type":"ready","session_id":"u","max_streams":8}"#
        );
    }

    #[test]
    fn features_are_optional_and_typed() {
        let hello = decode(r#"{"type":"hello","session_token":"t","version":"1"}"#).unwrap();
        assert!(matches!(hello, Frame::Hello { ref features, .. } if features.is_empty()));
        let bad = decode(r#"{"type":"hello","session_token":"t","version":"1","features":"x"}"#);
        assert_eq!(bad.unwrap_err().code(), ErrorCode::BadHello);
        let ready = decode(
            r#"{"type":"ready","session_id":"u","max_streams":2,"features":["stream_ready"]}"#,
        );
        assert!(
            matches!(ready, Ok(Frame::Ready { ref features, .. }) if features == &["stream_ready"])
        );
        assert_eq!(
            decode(r#"{"type":"stream_ready"}"#).unwrap_err().code(),
            ErrorCode::BadStream
        );
    }

    #[test]
    fn ignores_unknown_fields_and_any_order() {
        let f =
            decode(r#"{"data":"aGk=","extra":{"x":[1,2]},"stream_id":"s1","type":"stream_data"}"#);
        assert_eq!(
            f,
            Ok(Frame::StreamData {
                stream_id: "s1".into(),
                data: b"hi".to_vec()
            })
        );
    }

    #[test]
    fn borrows_unescaped_strings() {
        let text = r#"{"type":"stream_open","stream_id":"s1","target":"a:1"}"#;
        match decode(text).unwrap() {
            Frame::StreamOpen {
                stream_id: Cow::Borrowed(_),
                target: Cow::Borrowed(_),
            } => {}
            other => panic!("expected borrowed strings, got {other:?}"),
        }
    }

    #[test]
    fn errors_map_to_contract_codes() {
        let cases: &[(&str, ErrorCode)] = &[
            ("not json", ErrorCode::BadFrame),
            ("[1,2]", ErrorCode::BadFrame),
            (r#"{"x":1}"#, ErrorCode::BadFrame),
            (r#"{"type":"teleport"}"#, ErrorCode::Unsupported),
            (r#"{"type":"hello","version":"1"}"#, ErrorCode::BadHello),
            (
                r#"{"type":"hello","session_token":"t","version":1}"#,
                ErrorCode::BadHello,
            ),
            (
                r#"{"type":"stream_data","stream_id":"s1","data":"@@"}"#,
                ErrorCode::BadStream,
            ),
            (
                r#"{"type":"stream_data","stream_id":"s1"}"#,
                ErrorCode::BadStream,
            ),
            (
                r#"{"type":"stream_data","stream_id":"s1","data":5}"#,
                ErrorCode::BadStream,
            ),
            (
                r#"{"type":"stream_open","stream_id":"s1"}"#,
                ErrorCode::BadStream,
            ),
            (r#"{"type":"ready","session_id":"x"}"#, ErrorCode::BadFrame),
        ];
        for (text, code) in cases {
            let err = decode(text).unwrap_err();
            assert_eq!(&err.code(), code, "{text}: {err}");
        }
        let err = decode(r#"{"type":"stream_data","stream_id":"s7","data":"a"}"#).unwrap_err();
        assert_eq!(err.stream_id(), Some("s7"));
    }

    #[test]
    fn data_frames_off_the_exact_layout_still_decode() {
        let hi = Ok(Frame::StreamData {
            stream_id: "s\"1".into(),
            data: b"hi".to_vec(),
        });
        // Escaped id, escaped base64, whitespace, extra field: the general path.
        for text in [
            r#"{"type":"stream_data","stream_id":"s\"1","data":"aGk="}"#,
            r#"{"type":"stream_data","stream_id":"s\u00221","data":"a\u0047k="}"#,
            r#"{"type":"stream_data","stream_id":"s\"1","data":"aGk=" }"#,
            r#"{"type":"stream_data","stream_id":"s\"1","data":"aGk=","x":"}"}"#,
        ] {
            assert_eq!(decode_stream_data_exact(text), None, "{text}");
            assert_eq!(decode(text), hi, "{text}");
        }
        let exact = r#"{"type":"stream_data","stream_id":"s1","data":"aGk="}"#;
        assert!(decode_stream_data_exact(exact).is_some());
        // A quote inside data is not base64: the general path reports it.
        let quoted = r#"{"type":"stream_data","stream_id":"s1","data":"aGk=","x":"aGk="}"#;
        assert_eq!(decode_stream_data_exact(quoted), None);
        assert!(matches!(decode(quoted), Ok(Frame::StreamData { .. })));
    }

    #[test]
    fn base64_must_be_padded_standard() {
        assert!(decode(r#"{"type":"stream_data","stream_id":"s","data":"aGk"}"#).is_err());
        assert!(decode(r#"{"type":"stream_data","stream_id":"s","data":"a-_="}"#).is_err());
    }

    #[test]
    fn refuses_one_byte_over_the_limit() {
        let id = "s1";
        let max = max_payload_len(id.len(), MAX_FRAME_LEN);
        let mut text = String::new();
        encode_stream_data(id, &vec![7u8; max], &mut text);
        assert!(text.len() <= MAX_FRAME_LEN);
        assert!(decode(&text).is_ok());
        let padded = format!("{}{}", " ".repeat(MAX_FRAME_LEN + 1 - text.len()), text);
        assert_eq!(padded.len(), MAX_FRAME_LEN + 1);
        assert_eq!(
            decode(&padded),
            Err(DecodeError::TooLarge {
                len: MAX_FRAME_LEN + 1,
                max: MAX_FRAME_LEN
            })
        );
    }

    #[test]
    fn truncated_frames_are_errors_not_panics() {
        let text = encode_to_string(&Frame::StreamData {
            stream_id: "s1".into(),
            data: vec![1; 50],
        });
        for cut in 0..text.len() {
            assert!(decode(&text[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn token_is_redacted_in_debug() {
        let f = Frame::Hello {
            session_token: SessionToken("secret-token".into()),
            version: "1".into(),
            client: String::new().into(),
            features: vec![],
        };
        assert!(!format!("{f:?}").contains("secret-token"));
    }

    proptest! {
        #[test]
        fn stream_data_round_trips(id in "\\PC{1,12}", data in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let mut text = String::new();
            encode_stream_data(&id, &data, &mut text);
            prop_assert!(text.len() <= MAX_FRAME_LEN);
            let back = decode(&text).unwrap();
            prop_assert_eq!(back, Frame::StreamData { stream_id: id.as_str().into(), data });
        }

        #[test]
        fn strings_with_escapes_round_trip(s in "[\\x00-\\x7f]{0,40}", reason in "\\PC{0,20}") {
            let f = Frame::StreamClose { stream_id: s.as_str().into(), reason: Some(reason.as_str().into()) };
            let text = encode_to_string(&f);
            prop_assert_eq!(decode(&text).unwrap(), f);
        }

        /// The fast path accepts only what the general decoder reads the same way.
        #[test]
        fn exact_path_agrees_with_serde(
            id in "[a-z0-9\"\\\\\\x00-\\x1f\u{e9}]{0,6}",
            data in "[A-Za-z0-9+/=\"\\\\ ,:}]{0,12}",
        ) {
            let text = format!("{DATA_PREFIX}\"{id}{}{DATA_MIDDLE}{data}{DATA_SUFFIX}", '"');
            if let Some(fast) = decode_stream_data_exact(&text) {
                prop_assert_eq!(Ok(fast), decode_json(&text), "{}", text);
            }
        }

        #[test]
        fn exact_path_agrees_on_real_payloads(
            id in "[a-z0-9\"\\\\\\x00-\\x1f\u{e9}]{0,6}",
            data in proptest::collection::vec(any::<u8>(), 0..64),
            tail in "[ ,\"x:}]{0,3}",
        ) {
            let b64 = base64_simd::STANDARD.encode_to_string(&data);
            let text = format!("{DATA_PREFIX}\"{id}{}{DATA_MIDDLE}{b64}{tail}{DATA_SUFFIX}", '"');
            if let Some(fast) = decode_stream_data_exact(&text) {
                prop_assert_eq!(Ok(fast), decode_json(&text), "{}", text);
            }
        }

        #[test]
        fn decode_never_panics(text in "\\PC{0,200}") {
            let _ = decode(&text);
        }
    }
}
