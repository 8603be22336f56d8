//! Typed errors of the cell, and the one place they become the engine's
//! stable [`ErrorCode`]s.

use std::io;

use net::ErrorCode;
use proto_hlhv::FrameError;
use proto_hlhv::cell::CellError;

/// What went wrong making or keeping a publication.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HlhvError {
    /// A setting that cannot work (address, mount, limits).
    #[error("invalid HLHV cell setting: {0}")]
    InvalidConfig(String),
    /// TLS settings could not be loaded (CA file, roots).
    #[error("TLS configuration: {0}")]
    Tls(#[from] client_kit::TlsError),
    /// The connection to the queen failed (refused, reset, TLS handshake).
    #[error("connection to the queen at {addr} failed: {source}")]
    Connect {
        /// The queen's address.
        addr: String,
        /// What failed.
        source: io::Error,
    },
    /// A live connection to the queen failed.
    #[error("connection to the queen broke: {0}")]
    Io(#[from] io::Error),
    /// Something took longer than its limit.
    #[error("timed out {0}")]
    Timeout(&'static str),
    /// The queen closed the leash before accepting the login: it refuses
    /// the cell key (our queen checks it; the Go queen checks none).
    #[error("the queen closed the connection before accepting the login: wrong cell key?")]
    LoginRefused,
    /// The queen closed a band before accepting it: it refuses the
    /// session key (the cell's leash is gone, or the queen restarted).
    #[error("the queen closed the band before accepting it")]
    BandRefused,
    /// The local app failed a response after its head was sent; the band
    /// is closed so the queen sees the body is incomplete.
    #[error("the local app broke off a response: {0}")]
    LocalApp(String),
    /// The queen broke the protocol.
    #[error("HLHV protocol error: {0}")]
    Protocol(#[from] CellError),
}

impl From<FrameError> for HlhvError {
    fn from(e: FrameError) -> Self {
        HlhvError::Protocol(CellError::Frame(e))
    }
}

impl HlhvError {
    /// The engine's code: fatal for settings and a refused key (retrying
    /// cannot help), retryable for the network and a misbehaving queen.
    pub fn code(&self) -> ErrorCode {
        match self {
            HlhvError::InvalidConfig(_) | HlhvError::Tls(_) => ErrorCode::ConfigError,
            HlhvError::LoginRefused => ErrorCode::AuthFailed,
            HlhvError::Connect { .. } | HlhvError::Timeout(_) => ErrorCode::HandshakeFailed,
            HlhvError::Io(_) | HlhvError::BandRefused => ErrorCode::SessionLost,
            HlhvError::LocalApp(_) => ErrorCode::ServerError,
            HlhvError::Protocol(_) => ErrorCode::ProtocolError,
        }
    }
}

impl From<HlhvError> for engine::TransportError {
    fn from(e: HlhvError) -> Self {
        engine::TransportError::new(e.code(), e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_key_and_bad_settings_are_fatal_the_rest_retries() {
        let fatal = |e: HlhvError| engine::TransportError::from(e).is_fatal();
        assert!(fatal(HlhvError::LoginRefused));
        assert!(fatal(HlhvError::InvalidConfig("x".into())));
        assert!(!fatal(HlhvError::Timeout("logging in")));
        assert!(!fatal(HlhvError::Connect {
            addr: "q:1".into(),
            source: io::Error::from(io::ErrorKind::ConnectionRefused)
        }));
        assert!(!fatal(HlhvError::Protocol(CellError::EmptyUuid)));
    }
}
