//! What the client machine reports: its state (seed §3.1), what the driver
//! must do, and what happened.

use std::fmt;
use std::time::Duration;

use crate::code::ErrorCode;
use crate::codec::DecodeError;
use crate::message::{ErrorMessage, Token, TunnelConfig};

/// The tunnel's life cycle, exactly the seed's five states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TunnelState {
    /// Not connected and not trying.
    Disconnected,
    /// Connecting for the first time: dial, `hello`, `auth`, `register`
    /// (and the waits between failed attempts).
    Authenticating,
    /// The relay registered the tunnel; WireGuard is not up yet.
    Registered,
    /// WireGuard is up, `register_ack` sent, heartbeats running.
    Active,
    /// The connection was lost after registering: waiting, dialing and
    /// resuming, until WireGuard is up again.
    Reconnecting,
}

impl TunnelState {
    /// A lower-case name for logs and the UI.
    pub fn as_str(self) -> &'static str {
        match self {
            TunnelState::Disconnected => "disconnected",
            TunnelState::Authenticating => "authenticating",
            TunnelState::Registered => "registered",
            TunnelState::Active => "active",
            TunnelState::Reconnecting => "reconnecting",
        }
    }
}

impl fmt::Display for TunnelState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the relay granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The tunnel's id.
    pub tunnel_id: String,
    /// The WireGuard settings, the tunnel address and the public forwards.
    pub config: TunnelConfig,
    /// The secret that resumes it, if the relay gave one.
    pub reconnect_token: Option<Token>,
}

/// An `error` line, with the sentence to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerError {
    /// The code.
    pub code: ErrorCode,
    /// The relay's text, for logs.
    pub message: String,
    /// `details.reason`.
    pub reason: String,
    /// How long the relay asks to wait, if it said.
    pub retry_after: Option<Duration>,
    /// What to tell the user ([`ErrorCode::sentence`]).
    pub sentence: &'static str,
}

impl From<ErrorMessage> for ServerError {
    fn from(e: ErrorMessage) -> ServerError {
        ServerError {
            code: e.code,
            sentence: e.code.sentence(),
            message: e.message,
            reason: e.details.reason,
            retry_after: e.details.retry_after.map(Duration::from_secs),
        }
    }
}

/// Why the machine left a connection (other than the driver reporting it
/// lost, or an `error` line, which has its own event).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The relay sent a line that is not a message.
    #[error("the relay sent a line that is not a valid message: {0}")]
    Malformed(DecodeError),
    /// The relay sent a line over the cap.
    #[error("the relay sent a line longer than {max} bytes")]
    LineTooLong {
        /// The cap.
        max: usize,
    },
    /// The relay's `hello` names a major version other than 1. Retrying
    /// cannot help: the machine stops.
    #[error("the relay speaks protocol version {0:?}; this client speaks 1.x")]
    UnsupportedVersion(String),
    /// A known message at the wrong time.
    #[error("the relay sent {kind} while the client waited for {waiting_for}")]
    Unexpected {
        /// The message's `type`.
        kind: &'static str,
        /// What the client waited for.
        waiting_for: &'static str,
    },
    /// An `auth_response` or `register_response` whose status is not
    /// `"success"` (refusals normally come as `error` lines). The machine stops.
    #[error("the relay answered {step} with status {status:?}")]
    Refused {
        /// `auth` or `register`.
        step: &'static str,
        /// The status, cut to 64 bytes.
        status: String,
    },
    /// An answer (or the dial) did not come in time.
    #[error("no {waiting_for} within {after:?}")]
    Timeout {
        /// What the client waited for.
        waiting_for: &'static str,
        /// The timeout.
        after: Duration,
    },
    /// Heartbeats in a row went unanswered within the answer timeout.
    #[error("{0} heartbeats in a row went unanswered")]
    HeartbeatMisses(u32),
}

/// What the driver learns from [`ClientMachine::poll_event`](super::ClientMachine::poll_event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// The tunnel state changed.
    StateChanged {
        /// The state left.
        from: TunnelState,
        /// The state entered.
        to: TunnelState,
    },
    /// Open the control connection now (TCP + TLS 1.3), then call
    /// `transport_connected`, or `transport_lost` if it fails.
    Dial,
    /// Close the control connection (or stop dialing): the machine is done
    /// with it. Not sent after `transport_lost`, which the driver reported.
    CloseTransport,
    /// A new tunnel: configure WireGuard, then call `wireguard_up`.
    Registered(Registration),
    /// The tunnel was resumed (same id): redo the WireGuard handshake, then
    /// call `wireguard_up` again.
    Resumed(Registration),
    /// The relay refused to resume this tunnel (see the `ServerError`
    /// before it); the machine forgot it and registers a new one on the
    /// same connection, whose address and forwards may differ.
    ResumeRefused {
        /// The tunnel that is gone.
        tunnel_id: String,
    },
    /// The relay sent an `error` line.
    ServerError(ServerError),
    /// The machine left the connection for this reason.
    ConnectionFailed(ClientError),
    /// The next dial is in `delay`.
    Retrying {
        /// 1 for the first retry.
        attempt: u32,
        /// The wait.
        delay: Duration,
    },
    /// A heartbeat was answered.
    HeartbeatAnswered {
        /// From sending it to reading the answer.
        rtt: Duration,
        /// The relay's clock.
        server_time: String,
    },
    /// The last attempt failed: the machine is Disconnected.
    GaveUp {
        /// Attempts made.
        attempts: u32,
    },
}
