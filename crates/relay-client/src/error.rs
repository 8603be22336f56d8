//! Why a share failed, with the engine's error code for each.

use net::ErrorCode;

/// A share's failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShareError {
    /// The settings are unusable (tunnel name, ports, TLS files).
    #[error("{0}")]
    InvalidConfig(String),
    /// TCP or TLS to the relay failed.
    #[error("cannot reach the relay at {addr}: {source}")]
    Connect {
        /// The relay.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// A step took too long.
    #[error("timed out {0}")]
    Timeout(&'static str),
    /// The relay's grant cannot be used.
    #[error("the relay's tunnel configuration is unusable: {0}")]
    BadGrant(String),
    /// The relay's WireGuard host could not be resolved.
    #[error("cannot resolve the relay's WireGuard endpoint {host}: {source}")]
    Resolve {
        /// The host.
        host: String,
        /// Why.
        source: std::io::Error,
    },
    /// No UDP socket for WireGuard.
    #[error("cannot open a UDP socket for WireGuard: {0}")]
    Udp(std::io::Error),
    /// The userspace WireGuard failed.
    #[error("WireGuard: {0}")]
    WireGuard(#[from] wg_userspace::Error),
    /// The relay refused for good, or the attempts ran out; the text says
    /// why in words for people.
    #[error("{message}")]
    Ended {
        /// The engine's code (sign-in problems are fatal).
        code: ErrorCode,
        /// Why.
        message: String,
    },
}

impl ShareError {
    /// The engine's code: fatal ones stop the engine's reconnect loop.
    pub fn code(&self) -> ErrorCode {
        match self {
            ShareError::InvalidConfig(_) | ShareError::BadGrant(_) => ErrorCode::ConfigError,
            ShareError::Connect { .. } | ShareError::Timeout(_) | ShareError::Resolve { .. } => {
                ErrorCode::HandshakeFailed
            }
            ShareError::Udp(_) | ShareError::WireGuard(_) => ErrorCode::ServerError,
            ShareError::Ended { code, .. } => *code,
        }
    }
}

impl From<ShareError> for engine::TransportError {
    fn from(e: ShareError) -> engine::TransportError {
        engine::TransportError::new(e.code(), e.to_string())
    }
}
