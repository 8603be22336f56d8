//! Every way a control connection can go wrong on the relay's side, and
//! the one `match` that turns each into its `error` line.

use std::time::Duration;

use crate::code::ErrorCode;
use crate::codec::DecodeError;
use crate::validate::InvalidTunnel;

/// The driver's "no" to an `auth` or a `register`: what the client is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The code (INVALID_TOKEN for a bad signature, TOKEN_EXPIRED,
    /// RATE_LIMIT, TUNNEL_EXISTS…).
    pub code: ErrorCode,
    /// `details.reason`, snake_case.
    pub reason: String,
    /// `message`, for the client's logs.
    pub message: String,
    /// `details.retry_after` in seconds (RATE_LIMIT).
    pub retry_after: Option<u64>,
}

impl Refusal {
    /// A refusal without a wait.
    pub fn new(code: ErrorCode, reason: impl Into<String>, message: impl Into<String>) -> Refusal {
        Refusal {
            code,
            reason: reason.into(),
            message: message.into(),
            retry_after: None,
        }
    }

    /// The same, asking the client to wait `secs` seconds.
    pub fn with_retry_after(mut self, secs: u64) -> Refusal {
        self.retry_after = Some(secs);
        self
    }
}

/// Why the session sent an `error` line. Its `Display` is the line's
/// `message`; [`Failure::wire`] gives the rest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Failure {
    /// A line that is not JSON, has no `type`, an unknown `type`, or fields
    /// that do not fit.
    #[error("{0}")]
    Decode(DecodeError),
    /// A line over the cap.
    #[error("a line is longer than {max} bytes")]
    LineTooLong {
        /// The cap.
        max: usize,
    },
    /// A message other than `auth` before the sign-in succeeded.
    #[error("authenticate first: send auth and wait for auth_response")]
    AuthRequired,
    /// No successful sign-in within the auth deadline.
    #[error("no successful auth within {0:?}")]
    AuthTimeout(Duration),
    /// `auth.version` of another major version.
    #[error("protocol version {0:?} is not supported; this relay speaks 1.x")]
    UnsupportedVersion(String),
    /// A second `auth` on one connection.
    #[error("this connection already sent auth")]
    DuplicateAuth,
    /// The driver refused the sign-in.
    #[error("{}", .0.message)]
    AuthRefused(Refusal),
    /// The `tunnel_info` breaks a rule of [`crate::validate`].
    #[error("{0}")]
    InvalidTunnel(InvalidTunnel),
    /// `tunnel_id` without `reconnect_token`, or the reverse.
    #[error("a resume needs both tunnel_id and reconnect_token")]
    IncompleteResume,
    /// A second `register` on a connection that has (or is getting) a tunnel.
    #[error("this connection already registered a tunnel")]
    AlreadyRegistered,
    /// The driver refused the registration.
    #[error("{}", .0.message)]
    RegisterRefused(Refusal),
    /// `register_ack` or `heartbeat` for a tunnel this connection did not
    /// register (or before it registered one). The id is cut to 64 bytes.
    #[error("no tunnel {0:?} on this connection")]
    UnknownTunnel(String),
    /// A heartbeat sooner than the minimum interval after the last one.
    #[error("heartbeat too early: at most one per {interval:?}")]
    HeartbeatTooEarly {
        /// The minimum interval.
        interval: Duration,
        /// Seconds until the next one is welcome.
        retry_after: u64,
    },
    /// More errors that keep the connection open than allowed.
    #[error("too many errors on this connection")]
    TooManyErrors,
    /// No heartbeat (nor auth) within the idle timeout.
    #[error("no heartbeat within {0:?}")]
    Idle(Duration),
    /// The relay could not open the tunnel's public forwards at
    /// `register_ack` (a port taken by another program): the client
    /// reconnects with backoff, and the port may be free by then.
    #[error("the relay could not open the tunnel's public forwards")]
    ForwardsUnavailable,
    /// The relay is going away.
    #[error("the relay is shutting down")]
    Shutdown,
}

/// How a [`Failure`] appears on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireError<'a> {
    /// `code`.
    pub code: ErrorCode,
    /// `details.reason`.
    pub reason: &'a str,
    /// `details.retry_after`, seconds.
    pub retry_after: Option<u64>,
    /// Whether the session closes after the line.
    pub close: bool,
}

impl Failure {
    /// The code, reason, wait and whether the connection closes: the one
    /// place where session failures meet the seed's codes.
    pub fn wire(&self) -> WireError<'_> {
        use ErrorCode::*;
        let (code, reason, retry_after, close) = match self {
            Failure::Decode(DecodeError::UnknownType(_)) => {
                (InvalidConfig, "unknown_type", None, true)
            }
            Failure::Decode(_) => (InvalidConfig, "malformed_json", None, true),
            Failure::LineTooLong { .. } => (InvalidConfig, "line_too_long", None, true),
            Failure::AuthRequired => (AuthFailed, "auth_required", None, true),
            Failure::AuthTimeout(_) => (AuthFailed, "auth_timeout", None, true),
            Failure::UnsupportedVersion(_) => (InvalidConfig, "unsupported_version", None, true),
            Failure::DuplicateAuth => (InvalidConfig, "duplicate_auth", None, true),
            Failure::AuthRefused(r) => (r.code, r.reason.as_str(), r.retry_after, true),
            Failure::InvalidTunnel(e) => (InvalidConfig, e.reason, None, false),
            Failure::IncompleteResume => (InvalidConfig, "incomplete_resume", None, false),
            Failure::AlreadyRegistered => (TunnelExists, "already_registered", None, false),
            Failure::RegisterRefused(r) => (r.code, r.reason.as_str(), r.retry_after, false),
            Failure::UnknownTunnel(_) => (InvalidConfig, "unknown_tunnel", None, false),
            Failure::HeartbeatTooEarly { retry_after, .. } => {
                (RateLimit, "heartbeat_too_early", Some(*retry_after), false)
            }
            Failure::TooManyErrors => (RateLimit, "too_many_errors", None, true),
            Failure::Idle(_) => (ServerError, "idle_timeout", None, true),
            Failure::ForwardsUnavailable => (ServerError, "forwards_unavailable", None, true),
            Failure::Shutdown => (ServerError, "shutting_down", None, true),
        };
        WireError {
            code,
            reason,
            retry_after,
            close,
        }
    }
}
