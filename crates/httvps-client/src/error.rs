//! Typed errors of the SDK.

use std::io;

use proto_httvps::client;
use proto_httvps::{ErrorCode, StreamRuleError};

/// What went wrong in the SDK. The seed's names (`handshake_failed`,
/// `stream_limit`, `unknown_stream`) are available from [`ClientError::code`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The URL is not a usable `wss://host[:port]/path`.
    #[error("invalid gateway URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// TLS settings could not be loaded (CA file, roots).
    #[error("TLS configuration: {0}")]
    TlsConfig(String),
    /// The handshake did not complete: no `ready` in time, an `error` frame, a
    /// TLS or WebSocket failure. `code` is the gateway's code when it sent one.
    #[error("handshake_failed: {message}")]
    HandshakeFailed {
        /// The gateway's error code (e.g. `auth_failed`), if it sent one.
        code: Option<ErrorCode>,
        /// What happened, for people.
        message: String,
    },
    /// A stream rule was broken locally; nothing was sent.
    #[error(transparent)]
    Stream(#[from] StreamRuleError),
    /// No stream slot became free within the wait.
    #[error("stream_limit: no stream slot became free within {0:?}")]
    StreamLimitTimeout(std::time::Duration),
    /// The session is closed or lost.
    #[error("session closed: {0}")]
    SessionClosed(String),
    /// A WebSocket or socket error after the handshake.
    #[error("transport error: {0}")]
    Transport(String),
    /// The control plane refused or failed.
    #[error("control plane: {message}")]
    ControlPlane {
        /// HTTP status, when there was an answer.
        status: Option<u16>,
        /// What happened, including the backend's reason when it gave one.
        message: String,
    },
}

impl From<client_kit::TlsError> for ClientError {
    fn from(e: client_kit::TlsError) -> Self {
        ClientError::TlsConfig(e.0)
    }
}

impl ClientError {
    /// The seed's or contract's name for this error, for UIs and scripts.
    pub fn code(&self) -> &str {
        match self {
            ClientError::HandshakeFailed {
                code: Some(code), ..
            } => code.as_str(),
            ClientError::HandshakeFailed { code: None, .. } => "handshake_failed",
            ClientError::Stream(e) => e.code(),
            ClientError::StreamLimitTimeout(_) => "stream_limit",
            ClientError::InvalidUrl { .. } | ClientError::TlsConfig(_) => "config_error",
            ClientError::SessionClosed(_) | ClientError::Transport(_) => "session_lost",
            ClientError::ControlPlane {
                status: Some(401 | 403),
                ..
            } => "auth_failed",
            ClientError::ControlPlane { .. } => "control_plane_error",
        }
    }

    pub(crate) fn handshake(message: impl Into<String>) -> Self {
        ClientError::HandshakeFailed {
            code: None,
            message: message.into(),
        }
    }
}

/// How a stream ended, as its reader sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEnd {
    /// The gateway ended it (`stream_close`, a stream-scoped `error`) or sent
    /// a broken frame for it: the session machine's verdict, as it gave it.
    Gateway(client::StreamEnd),
    /// This side ended the stream: the reader was too slow, or it was closed locally.
    Local(String),
    /// This side closed the stream while it was idle because a new stream
    /// needed its slot. Reads see EOF, like a server closing an idle
    /// keep-alive connection, which HTTP clients retry transparently.
    Evicted,
    /// The whole session was lost.
    SessionLost(String),
}

impl StreamEnd {
    /// Whether this end is an orderly close (the reader sees EOF).
    pub fn is_clean(&self) -> bool {
        match self {
            StreamEnd::Gateway(client::StreamEnd::Closed { reason }) => {
                !reason.as_deref().is_some_and(is_failure_reason)
            }
            StreamEnd::Evicted => true,
            _ => false,
        }
    }

    /// The machine-readable cause, from the error frame or the close reason.
    pub fn reason(&self) -> Option<&str> {
        match self {
            StreamEnd::Gateway(
                client::StreamEnd::Closed { reason } | client::StreamEnd::Error { reason, .. },
            ) => reason.as_deref(),
            _ => None,
        }
    }

    /// The `io::Error` a reader or writer gets for this end.
    pub fn to_io_error(&self) -> io::Error {
        let kind = match self.reason() {
            Some("refused") => io::ErrorKind::ConnectionRefused,
            Some("unreachable") => io::ErrorKind::HostUnreachable,
            Some("not_allowed") => io::ErrorKind::PermissionDenied,
            Some("timeout") => io::ErrorKind::TimedOut,
            _ => match self {
                StreamEnd::SessionLost(_) => io::ErrorKind::ConnectionAborted,
                StreamEnd::Local(_) => io::ErrorKind::BrokenPipe,
                _ => io::ErrorKind::ConnectionReset,
            },
        };
        io::Error::new(kind, self.to_string())
    }
}

/// Close reasons that report a failure rather than an orderly end.
fn is_failure_reason(reason: &str) -> bool {
    matches!(
        reason,
        "refused"
            | "unreachable"
            | "not_allowed"
            | "timeout"
            | "upstream_error"
            | "limit"
            | "bad_stream"
            | "slow_upstream"
            | "slow_reader"
            | "shutdown"
            | "idle"
    )
}

impl std::fmt::Display for StreamEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StreamEnd::Gateway(client::StreamEnd::Closed { reason: None }) => {
                write!(f, "stream closed by the gateway")
            }
            StreamEnd::Gateway(client::StreamEnd::Closed { reason: Some(r) }) => {
                write!(f, "stream closed by the gateway: {r}")
            }
            StreamEnd::Gateway(client::StreamEnd::Error { code, message, .. }) => {
                write!(f, "{code}: {message}")
            }
            StreamEnd::Gateway(client::StreamEnd::Malformed(why)) => {
                write!(f, "unreadable frame from the gateway: {why}")
            }
            StreamEnd::Local(why) => write!(f, "stream ended locally: {why}"),
            StreamEnd::Evicted => write!(f, "closed while idle: a new stream needed its slot"),
            StreamEnd::SessionLost(why) => write!(f, "session lost: {why}"),
        }
    }
}
