//! What the client machine hands its driver: messages to send, stream
//! bytes, events, and the typed reasons a stream or the session ended.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use crate::error::{DecodeError, ErrorCode};
use crate::streams::StreamRuleError;

use super::SessionInfo;

/// One WebSocket message for the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transmit {
    /// A JSON frame, sent as a text message.
    Text(String),
    /// A binary `stream_data` (the `binary_data` extension).
    Binary(Vec<u8>),
}

/// Stream bytes read from a gateway message, handed back by the `handle_*`
/// call that read them (not queued, see the module doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamData<'a> {
    /// The stream, open on this side.
    pub stream_id: Cow<'a, str>,
    /// The bytes.
    pub payload: Payload,
}

/// Where a [`StreamData`]'s bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// Decoded from a JSON `stream_data` (base64), owned.
    Decoded(Vec<u8>),
    /// The tail of the binary message just handled, from this offset: the
    /// driver slices its own buffer, no copy.
    InMessage(usize),
}

impl Payload {
    /// The bytes, given the message they came from (used for
    /// [`Payload::InMessage`]; ignored otherwise).
    pub fn bytes<'a>(&'a self, message: &'a [u8]) -> &'a [u8] {
        match self {
            Payload::Decoded(data) => data,
            Payload::InMessage(at) => &message[*at..],
        }
    }
}

/// Something the application should learn.
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// `ready` arrived: the session is usable.
    Connected(SessionInfo),
    /// The gateway granted credit (`flow_control`) where a window was
    /// empty: writes that were refused with `Blocked` may go on.
    Writable,
    /// The gateway reached the stream's target (`stream_ready` extension).
    StreamReady {
        /// The stream.
        stream_id: String,
    },
    /// A stream ended from the gateway's side or by a broken frame; its id is
    /// no longer open and never reused.
    StreamClosed {
        /// The stream.
        stream_id: String,
        /// Why.
        end: StreamEnd,
    },
    /// The gateway sent a session-level `error` after `ready`. The contract
    /// lets the session go on; if the connection then ends, the session
    /// closes with [`CloseReason::SessionError`].
    GatewayError {
        /// The contract code.
        code: ErrorCode,
        /// The gateway's text.
        message: String,
    },
    /// A gateway message broke the protocol and was dropped; the session
    /// goes on (for logs).
    Ignored(ProtocolError),
    /// The session is over; every open stream ended with it. Emitted once,
    /// last: the driver closes the WebSocket.
    SessionClosed(CloseReason),
}

/// How a stream ended, from the machine's point of view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEnd {
    /// The gateway sent `stream_close` (`eof` is the normal end).
    Closed {
        /// The reason it gave.
        reason: Option<String>,
    },
    /// The gateway sent a stream-scoped `error`.
    Error {
        /// The contract code (usually `stream_error` or `bad_stream`).
        code: ErrorCode,
        /// The gateway's text.
        message: String,
        /// Its machine-readable cause (`refused`, `unreachable`, …).
        reason: Option<String>,
    },
    /// The gateway sent a malformed frame for this stream (bad base64, a
    /// missing field); the client ended the stream with `stream_close`
    /// `bad_stream`.
    Malformed(String),
}

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// No `ready` within [`Config::handshake_timeout`](super::Config::handshake_timeout).
    HandshakeTimeout(Duration),
    /// The gateway answered `hello` with an `error` (e.g. `auth_failed`).
    Refused {
        /// The contract code.
        code: ErrorCode,
        /// The gateway's text.
        message: String,
    },
    /// The gateway's answer to `hello` was not a `ready`.
    HandshakeFailed(ProtocolError),
    /// The gateway sent a session-level `error`, then the connection ended.
    SessionError {
        /// The contract code.
        code: ErrorCode,
        /// The gateway's text.
        message: String,
    },
    /// The gateway closed the WebSocket (1001 = going away).
    Gateway {
        /// WebSocket close code (1005 when the close frame had none).
        code: u16,
        /// Close reason text.
        reason: String,
    },
    /// The connection failed or ended without a close frame.
    Transport(String),
    /// Nothing arrived for [`Config::dead_after`](super::Config::dead_after).
    KeepaliveTimeout(Duration),
    /// The gateway broke the protocol in a way that ends the session (a
    /// frame over the size limit).
    Protocol(ProtocolError),
    /// The application closed the session.
    Local,
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::HandshakeTimeout(d) => write!(f, "no ready within {d:?}"),
            CloseReason::Refused { code, message }
            | CloseReason::SessionError { code, message } => {
                write!(f, "{code}: {message}")
            }
            CloseReason::HandshakeFailed(e) => write!(f, "handshake failed: {e}"),
            CloseReason::Gateway { code, reason } if reason.is_empty() => {
                write!(f, "gateway closed the session (code {code})")
            }
            CloseReason::Gateway { code, reason } => {
                write!(f, "gateway closed the session (code {code}: {reason})")
            }
            CloseReason::Transport(e) => write!(f, "connection failed: {e}"),
            CloseReason::KeepaliveTimeout(d) => write!(f, "no answer from the gateway for {d:?}"),
            CloseReason::Protocol(e) => write!(f, "gateway broke the protocol: {e}"),
            CloseReason::Local => write!(f, "closed locally"),
        }
    }
}

/// A gateway message that breaks the protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The message could not be read as a frame (the decoder's reason).
    #[error("unreadable frame: {0}")]
    Unreadable(String),
    /// A message over the frame limit.
    #[error("frame of {len} bytes is over the {max}-byte limit")]
    TooLarge {
        /// Size received.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A binary message without the `binary_data` extension, or before `ready`.
    #[error("binary message where only text frames are allowed")]
    UnexpectedBinary,
    /// A frame the gateway must not send at this point (`hello`,
    /// `stream_open`, data before `ready`, …).
    #[error("unexpected {0} frame")]
    UnexpectedFrame(&'static str),
    /// The gateway sent more stream bytes than the `flow_control` credit
    /// this side granted.
    #[error("flow control: {0}")]
    FlowControl(#[from] crate::flow::FlowViolation),
}

impl From<DecodeError> for ProtocolError {
    fn from(e: DecodeError) -> Self {
        match e {
            DecodeError::TooLarge { len, max } => ProtocolError::TooLarge { len, max },
            other => ProtocolError::Unreadable(other.to_string()),
        }
    }
}

/// An application command the machine refused; nothing was sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// `ready` has not arrived yet.
    #[error("the session is not established yet")]
    NotReady,
    /// The session is over.
    #[error("the session is closed: {0}")]
    Closed(CloseReason),
    /// A stream rule of the SDK (`stream_limit`, `unknown_stream`, …).
    #[error(transparent)]
    Stream(#[from] StreamRuleError),
    /// [`Config::send_queue_frames`](super::Config::send_queue_frames) data frames wait for the writer: try
    /// again once [`Client::poll_transmit`](super::Client::poll_transmit) has been drained.
    #[error("the send queue is full")]
    Blocked,
}
