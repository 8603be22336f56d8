//! The first phase of a gateway session: the `hello` and its deadline.

use std::time::{Duration, Instant};

use crate::binary::FEATURE_BINARY_DATA;
use crate::error::{DecodeError, ErrorCode};
use crate::frame::{
    FEATURE_FLOW_CONTROL, FEATURE_HALF_CLOSE, FEATURE_STREAM_READY, Frame, PROTOCOL_VERSION,
    decode_limited,
};

use super::close_code;

/// A `hello` that passed the checks that need no backend.
pub struct Hello {
    /// The token to validate; never logged.
    pub token: String,
    /// The client's self-reported name, for logs.
    pub client: String,
    /// The client offered the `stream_ready` extension; the gateway accepts it.
    pub stream_ready: bool,
    /// The client offered the `half_close` extension; the gateway accepts it.
    pub half_close: bool,
    /// The client offered the `binary_data` extension (the gateway accepts it
    /// unless configured not to).
    pub binary_data: bool,
    /// The client offered the `flow_control` extension (the gateway accepts
    /// it unless configured not to).
    pub flow_control: bool,
}

impl Hello {
    /// The extensions to list in `ready`: those offered that this gateway speaks.
    pub fn accepted_features(&self) -> Vec<&'static str> {
        let mut accepted = Vec::new();
        if self.stream_ready {
            accepted.push(FEATURE_STREAM_READY);
        }
        if self.half_close {
            accepted.push(FEATURE_HALF_CLOSE);
        }
        if self.binary_data {
            accepted.push(FEATURE_BINARY_DATA);
        }
        if self.flow_control {
            accepted.push(FEATURE_FLOW_CONTROL);
        }
        accepted
    }
}

/// Why the first frame did not open a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeReject {
    /// The `error` code to send.
    pub code: ErrorCode,
    /// Its message.
    pub message: String,
    /// The WebSocket close code that follows.
    pub close_code: u16,
}

/// Checks the first message of a session: it must be a `hello` of version "1".
pub fn check_hello(text: &str, max_frame_len: usize) -> Result<Hello, HandshakeReject> {
    let bad_hello = |message: String| HandshakeReject {
        code: ErrorCode::BadHello,
        message,
        close_code: close_code::PROTOCOL,
    };
    match decode_limited(text, max_frame_len) {
        Ok(Frame::Hello {
            session_token,
            version,
            client,
            features,
        }) => {
            if version != PROTOCOL_VERSION {
                return Err(HandshakeReject {
                    code: ErrorCode::BadVersion,
                    message: format!(
                        "version {version:?} is not supported; this gateway speaks \"1\""
                    ),
                    close_code: close_code::PROTOCOL,
                });
            }
            if session_token.expose().is_empty() {
                return Err(bad_hello("empty session_token".into()));
            }
            Ok(Hello {
                token: session_token.expose().to_owned(),
                client: client.chars().take(64).collect(),
                stream_ready: features.iter().any(|f| f == FEATURE_STREAM_READY),
                half_close: features.iter().any(|f| f == FEATURE_HALF_CLOSE),
                binary_data: features.iter().any(|f| f == FEATURE_BINARY_DATA),
                flow_control: features.iter().any(|f| f == FEATURE_FLOW_CONTROL),
            })
        }
        Ok(other) => Err(bad_hello(format!("expected hello, got {}", other.kind()))),
        Err(DecodeError::TooLarge { len, max }) => Err(HandshakeReject {
            code: ErrorCode::BadFrame,
            message: format!("frame of {len} bytes is over the {max}-byte limit"),
            close_code: close_code::TOO_BIG,
        }),
        Err(e) => Err(bad_hello(format!("expected hello: {e}"))),
    }
}

/// The first phase of a session: waiting for `hello` until a deadline.
///
/// The driver feeds the first message (control frames do not count) and
/// fires the timer from [`Handshake::poll_timeout`]; the machine says what to
/// answer. What comes after a good hello (token validation, `ready`) needs
/// the backend and stays with the driver.
///
/// The deadline is absolute: nothing the client sends before its hello
/// moves it, and control frames before the hello are capped at the ping
/// burst (a tokenless client could otherwise keep the gateway answering
/// pings until the deadline).
#[derive(Debug, Clone)]
pub struct Handshake {
    deadline: Instant,
    hello_timeout: Duration,
    max_frame_len: usize,
    controls_left: u32,
}

impl Handshake {
    /// A connection upgraded at `now`.
    pub fn new(
        now: Instant,
        hello_timeout: Duration,
        max_frame_len: usize,
        pings: super::PingLimit,
    ) -> Self {
        Handshake {
            deadline: now + hello_timeout,
            hello_timeout,
            max_frame_len,
            controls_left: pings.burst,
        }
    }

    /// A ping or pong before the hello: allowed up to the ping burst, then
    /// the handshake fails with a policy close.
    pub fn handle_control(&mut self) -> Option<HandshakeReject> {
        match self.controls_left.checked_sub(1) {
            Some(left) => {
                self.controls_left = left;
                None
            }
            None => Some(HandshakeReject {
                code: ErrorCode::BadHello,
                message: "too many control frames before hello".to_owned(),
                close_code: close_code::POLICY,
            }),
        }
    }

    /// When the hello is late.
    pub fn poll_timeout(&self) -> Instant {
        self.deadline
    }

    /// The timer fired: past the deadline, the `bad_hello` answer and a
    /// policy close; `None` when it fired early.
    pub fn handle_timeout(&self, now: Instant) -> Option<HandshakeReject> {
        (now >= self.deadline).then(|| HandshakeReject {
            code: ErrorCode::BadHello,
            message: format!("no hello within {:?}", self.hello_timeout),
            close_code: close_code::POLICY,
        })
    }

    /// The first text message.
    pub fn handle_text(&self, text: &str) -> Result<Hello, HandshakeReject> {
        check_hello(text, self.max_frame_len)
    }

    /// A binary first message: the hello must be text.
    pub fn handle_binary(&self) -> HandshakeReject {
        HandshakeReject {
            code: ErrorCode::BadHello,
            message: "expected a hello text frame".to_owned(),
            close_code: close_code::PROTOCOL,
        }
    }

    /// A first message the WebSocket layer refused as too large.
    pub fn handle_oversized(&self) -> HandshakeReject {
        HandshakeReject {
            code: ErrorCode::BadFrame,
            message: format!("message over the {}-byte limit", self.max_frame_len),
            close_code: close_code::TOO_BIG,
        }
    }
}
