//! Stable error codes: what the engine, the CLI's `--json` output and the
//! desktop UI report (with a sentence for people), whatever the protocol.
//!
//! Each protocol keeps its own wire codes (HTTVPS `error` frames, HT status
//! lines, Relay control messages) and maps them to an [`ErrorCode`] in one
//! `match` in its client crate; front-ends branch on the code and show the
//! message. The serialized names are a contract: scripts and the UI test for
//! them, so a variant is never renamed, only added.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a tunnel could not be made or was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[non_exhaustive]
pub enum ErrorCode {
    /// The server refused the credentials (wrong, expired or used token).
    AuthFailed,
    /// The server does not speak our protocol version.
    BadVersion,
    /// The server refused our opening message.
    BadHello,
    /// The profile or client settings cannot work (bad URL, CA file, pin).
    ConfigError,
    /// The connection or the handshake failed (network, TLS, timeout).
    HandshakeFailed,
    /// The control plane (device login) failed or answered nonsense.
    ControlPlaneError,
    /// A live session ended (network loss, server shutdown, keepalive).
    SessionLost,
    /// The reconnect policy ran out of attempts.
    ReconnectFailed,
    /// No stream slot became free in time.
    StreamLimit,
    /// The server sent something the protocol forbids.
    ProtocolError,
    /// The server reported an internal or session-level error.
    ServerError,
    /// The server or the active protocol does not support the request.
    Unsupported,
}

impl ErrorCode {
    /// The serialized name (`auth_failed`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::AuthFailed => "auth_failed",
            ErrorCode::BadVersion => "bad_version",
            ErrorCode::BadHello => "bad_hello",
            ErrorCode::ConfigError => "config_error",
            ErrorCode::HandshakeFailed => "handshake_failed",
            ErrorCode::ControlPlaneError => "control_plane_error",
            ErrorCode::SessionLost => "session_lost",
            ErrorCode::ReconnectFailed => "reconnect_failed",
            ErrorCode::StreamLimit => "stream_limit",
            ErrorCode::ProtocolError => "protocol_error",
            ErrorCode::ServerError => "server_error",
            ErrorCode::Unsupported => "unsupported",
        }
    }

    /// Whether retrying with the same credentials and settings cannot help,
    /// so the engine stops instead of reconnecting.
    pub fn is_fatal(self) -> bool {
        matches!(
            self,
            ErrorCode::AuthFailed
                | ErrorCode::BadVersion
                | ErrorCode::BadHello
                | ErrorCode::ConfigError
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialized_names_match_as_str() {
        for code in [
            ErrorCode::AuthFailed,
            ErrorCode::BadVersion,
            ErrorCode::BadHello,
            ErrorCode::ConfigError,
            ErrorCode::HandshakeFailed,
            ErrorCode::ControlPlaneError,
            ErrorCode::SessionLost,
            ErrorCode::ReconnectFailed,
            ErrorCode::StreamLimit,
            ErrorCode::ProtocolError,
            ErrorCode::ServerError,
            ErrorCode::Unsupported,
        ] {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }

    #[test]
    fn only_configuration_and_credential_failures_are_fatal() {
        assert!(ErrorCode::AuthFailed.is_fatal());
        assert!(ErrorCode::ConfigError.is_fatal());
        assert!(!ErrorCode::SessionLost.is_fatal());
        assert!(!ErrorCode::HandshakeFailed.is_fatal());
    }
}
