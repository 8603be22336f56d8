//! Typed errors of the HT client, and the one place they become the
//! engine's stable [`ErrorCode`]s.

use std::io;

use net::ErrorCode;
use proto_ht::client::{ConnError, EndReason};

/// What went wrong making or keeping an HT session.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HtError {
    /// The URL is not a usable `https://host[:port][/base]`.
    #[error("invalid HT server URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A setting that cannot work.
    #[error("invalid HT client setting: {0}")]
    InvalidConfig(String),
    /// TLS settings could not be loaded (CA file, roots).
    #[error("TLS configuration: {0}")]
    Tls(#[from] client_kit::TlsError),
    /// The connection failed (refused, reset, TLS handshake).
    #[error("connection to the HT server failed: {0}")]
    Io(#[from] io::Error),
    /// Something took longer than its limit.
    #[error("timed out {0}")]
    Timeout(&'static str),
    /// `404`: the server did not accept the first query.
    #[error("the server answered 404: wrong key or not an HT server")]
    WrongKey,
    /// `403`: the server reclaimed the session.
    #[error("the server reclaimed the HT session (403)")]
    Reclaimed,
    /// `503`: the server has too many sessions.
    #[error("the HT server is busy (503): too many sessions, retrying later")]
    Busy,
    /// Another status where `200` was expected.
    #[error("the HT server answered HTTP {0}")]
    Status(u16),
    /// A response the HTTP framing does not allow.
    #[error("malformed HTTP from the HT server: {0}")]
    Http(String),
    /// An answer that breaks the HT protocol.
    #[error("HT protocol error: {0}")]
    Protocol(#[from] ConnError),
    /// The connection ended (by the server, or the session closed).
    #[error("the HT server ended the connection")]
    Ended,
    /// A check after a network change went unanswered: on a connection,
    /// that connection is given up (and replaced); when no connection
    /// answered, the session.
    #[error("the HT server did not answer a check after a network change")]
    Unanswered,
}

impl HtError {
    /// The engine's code: fatal for settings and for a wrong key (retrying
    /// cannot help), retryable for the network, a busy server and a
    /// reclaimed session (the engine then makes a fresh session).
    pub fn code(&self) -> ErrorCode {
        match self {
            HtError::InvalidUrl { .. } | HtError::InvalidConfig(_) | HtError::Tls(_) => {
                ErrorCode::ConfigError
            }
            HtError::WrongKey => ErrorCode::AuthFailed,
            HtError::Reclaimed | HtError::Ended | HtError::Unanswered => ErrorCode::SessionLost,
            HtError::Busy | HtError::Status(_) => ErrorCode::ServerError,
            HtError::Io(_) | HtError::Timeout(_) => ErrorCode::HandshakeFailed,
            HtError::Http(_) | HtError::Protocol(_) => ErrorCode::ProtocolError,
        }
    }
}

/// How the machine ended a session, as the error it is (so that
/// [`HtError::code`] stays the one mapping to the engine's codes).
impl From<&EndReason> for HtError {
    fn from(reason: &EndReason) -> Self {
        match reason {
            EndReason::WrongKey => HtError::WrongKey,
            EndReason::Reclaimed => HtError::Reclaimed,
            EndReason::Status(503) => HtError::Busy,
            EndReason::Status(status) => HtError::Status(*status),
            EndReason::Unanswered(_) => HtError::Unanswered,
            EndReason::Local(_) => HtError::Ended,
        }
    }
}

impl From<HtError> for engine::transport::TransportError {
    fn from(e: HtError) -> Self {
        engine::transport::TransportError::new(e.code(), e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrong_key_and_bad_settings_are_fatal_the_rest_retries() {
        let fatal = |e: HtError| engine::transport::TransportError::from(e).is_fatal();
        assert!(fatal(HtError::WrongKey));
        assert!(fatal(HtError::InvalidConfig("x".into())));
        assert!(fatal(HtError::InvalidUrl {
            url: "x".into(),
            reason: "y"
        }));
        assert!(!fatal(HtError::Busy));
        assert!(!fatal(HtError::Reclaimed));
        assert!(!fatal(HtError::Io(io::Error::other("reset"))));
        assert!(!fatal(HtError::Timeout("connecting")));
        assert_eq!(HtError::Busy.code(), ErrorCode::ServerError);
        // A path gone silent is worth a new session at once, not a stop.
        assert!(!fatal(HtError::Unanswered));
        assert_eq!(
            HtError::from(&EndReason::Unanswered(std::time::Duration::from_secs(3))).code(),
            ErrorCode::SessionLost
        );
    }
}
