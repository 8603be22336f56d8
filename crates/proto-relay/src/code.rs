//! The `code` of an `error` line: the seed's numeric codes (§4.1), kept as
//! numbers on the wire, with a sentence for the UI.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An error code as the seed numbers them.
///
/// Serialised as the bare number. Numbers this build does not know are kept
/// in [`ErrorCode::Other`], so a newer relay's code is reported, not lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "u16", into = "u16")]
pub enum ErrorCode {
    /// 1001: the sign-in was refused (or a message came before it).
    AuthFailed,
    /// 1002: the token is not one the relay accepts (signature, issuer…).
    InvalidToken,
    /// 1003: the token's `exp` has passed.
    TokenExpired,
    /// 2001: a tunnel of that name is already live for the same owner.
    TunnelExists,
    /// 2002: the tunnel settings, or the message itself, are not acceptable.
    InvalidConfig,
    /// 3001: over a rate limit; `details.retry_after` says how long to wait.
    RateLimit,
    /// 5000: the relay failed on its side.
    ServerError,
    /// A code outside the seed's table, kept as received.
    Other(u16),
}

impl ErrorCode {
    /// The number on the wire.
    pub fn as_u16(self) -> u16 {
        match self {
            ErrorCode::AuthFailed => 1001,
            ErrorCode::InvalidToken => 1002,
            ErrorCode::TokenExpired => 1003,
            ErrorCode::TunnelExists => 2001,
            ErrorCode::InvalidConfig => 2002,
            ErrorCode::RateLimit => 3001,
            ErrorCode::ServerError => 5000,
            ErrorCode::Other(n) => n,
        }
    }

    /// The seed's name for the code (`AUTH_FAILED`…), for logs.
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::AuthFailed => "AUTH_FAILED",
            ErrorCode::InvalidToken => "INVALID_TOKEN",
            ErrorCode::TokenExpired => "TOKEN_EXPIRED",
            ErrorCode::TunnelExists => "TUNNEL_EXISTS",
            ErrorCode::InvalidConfig => "INVALID_CONFIG",
            ErrorCode::RateLimit => "RATE_LIMIT",
            ErrorCode::ServerError => "SERVER_ERROR",
            ErrorCode::Other(_) => "UNKNOWN",
        }
    }

    /// Whether only a new sign-in can help: retrying with the same token
    /// gets the same answer.
    pub fn requires_sign_in(self) -> bool {
        matches!(
            self,
            ErrorCode::AuthFailed | ErrorCode::InvalidToken | ErrorCode::TokenExpired
        )
    }

    /// One sentence telling the user what happened and what to do.
    pub fn sentence(self) -> &'static str {
        match self {
            ErrorCode::AuthFailed => {
                "The relay did not accept your sign-in: sign in to the relay again."
            }
            ErrorCode::InvalidToken => {
                "Your sign-in is not valid for this relay: sign in to the relay again."
            }
            ErrorCode::TokenExpired => "Your sign-in has expired: sign in to the relay again.",
            ErrorCode::TunnelExists => {
                "A tunnel with this name is already running on your account: stop it or pick another name."
            }
            ErrorCode::InvalidConfig => {
                "The relay refused the tunnel settings: check the name, the ports and the key."
            }
            ErrorCode::RateLimit => {
                "The relay is receiving too many requests from you: wait a little, the app will try again."
            }
            ErrorCode::ServerError => {
                "The relay had a problem on its side: the app will try again."
            }
            ErrorCode::Other(_) => "The relay reported an error this app does not know.",
        }
    }
}

impl From<u16> for ErrorCode {
    fn from(n: u16) -> ErrorCode {
        match n {
            1001 => ErrorCode::AuthFailed,
            1002 => ErrorCode::InvalidToken,
            1003 => ErrorCode::TokenExpired,
            2001 => ErrorCode::TunnelExists,
            2002 => ErrorCode::InvalidConfig,
            3001 => ErrorCode::RateLimit,
            5000 => ErrorCode::ServerError,
            other => ErrorCode::Other(other),
        }
    }
}

impl From<ErrorCode> for u16 {
    fn from(code: ErrorCode) -> u16 {
        code.as_u16()
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.as_u16())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: [(ErrorCode, u16); 7] = [
        (ErrorCode::AuthFailed, 1001),
        (ErrorCode::InvalidToken, 1002),
        (ErrorCode::TokenExpired, 1003),
        (ErrorCode::TunnelExists, 2001),
        (ErrorCode::InvalidConfig, 2002),
        (ErrorCode::RateLimit, 3001),
        (ErrorCode::ServerError, 5000),
    ];

    #[test]
    fn the_seeds_numbers_on_the_wire() {
        for (code, n) in KNOWN {
            assert_eq!(serde_json::to_string(&code).unwrap(), n.to_string());
            assert_eq!(
                serde_json::from_str::<ErrorCode>(&n.to_string()).unwrap(),
                code
            );
        }
    }

    #[test]
    fn unknown_numbers_are_kept() {
        let code: ErrorCode = serde_json::from_str("4242").unwrap();
        assert_eq!(code, ErrorCode::Other(4242));
        assert_eq!(serde_json::to_string(&code).unwrap(), "4242");
        assert_eq!(code.to_string(), "UNKNOWN (4242)");
        assert!(serde_json::from_str::<ErrorCode>("70000").is_err());
        assert!(serde_json::from_str::<ErrorCode>("\"1001\"").is_err());
    }

    #[test]
    fn sentences_say_what_to_do() {
        assert_eq!(
            ErrorCode::TokenExpired.sentence(),
            "Your sign-in has expired: sign in to the relay again."
        );
        assert!(ErrorCode::RateLimit.sentence().contains("wait"));
        for (code, _) in KNOWN {
            assert_eq!(code.requires_sign_in(), code.sentence().contains("sign in"));
        }
        assert_eq!(ErrorCode::RateLimit.to_string(), "RATE_LIMIT (3001)");
    }
}
