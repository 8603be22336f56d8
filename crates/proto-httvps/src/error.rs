//! Error codes of the contract and the typed errors of the decoder.

use std::fmt;

/// The `code` of an `error` frame, as the contract names them.
///
/// The gateway sends these; the client reports them. Codes this build does not
/// know are kept verbatim in [`ErrorCode::Other`] so nothing a newer peer says
/// is lost.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The first frame was not a well-formed `hello`.
    BadHello,
    /// `hello.version` is not a version this gateway speaks.
    BadVersion,
    /// The session token was refused by the backend or token file.
    AuthFailed,
    /// A message that is not a JSON frame, or a frame over the size limit.
    BadFrame,
    /// The gateway could not create or bind the session (backend down, limits).
    SessionError,
    /// A stream could not be served: limit, duplicate or unknown id, upstream failure.
    StreamError,
    /// A malformed stream frame, such as missing fields or bad base64.
    BadStream,
    /// A frame `type` the receiver does not know.
    Unsupported,
    /// A code outside the contract, kept as received.
    Other(String),
}

impl ErrorCode {
    /// The wire spelling of the code.
    pub fn as_str(&self) -> &str {
        match self {
            ErrorCode::BadHello => "bad_hello",
            ErrorCode::BadVersion => "bad_version",
            ErrorCode::AuthFailed => "auth_failed",
            ErrorCode::BadFrame => "bad_frame",
            ErrorCode::SessionError => "session_error",
            ErrorCode::StreamError => "stream_error",
            ErrorCode::BadStream => "bad_stream",
            ErrorCode::Unsupported => "unsupported",
            ErrorCode::Other(s) => s,
        }
    }

    /// Reads a wire code; unknown codes become [`ErrorCode::Other`].
    pub fn parse(s: &str) -> ErrorCode {
        match s {
            "bad_hello" => ErrorCode::BadHello,
            "bad_version" => ErrorCode::BadVersion,
            "auth_failed" => ErrorCode::AuthFailed,
            "bad_frame" => ErrorCode::BadFrame,
            "session_error" => ErrorCode::SessionError,
            "stream_error" => ErrorCode::StreamError,
            "bad_stream" => ErrorCode::BadStream,
            "unsupported" => ErrorCode::Unsupported,
            other => ErrorCode::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a WebSocket message could not be read as a frame.
///
/// Each variant maps to the contract code a gateway answers with
/// ([`DecodeError::code`]); variants that concern one stream carry its id so
/// that only that stream needs to end.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The message is larger than the frame limit; the session should end.
    #[error("frame of {len} bytes is over the {max}-byte limit")]
    TooLarge {
        /// Size of the message received.
        len: usize,
        /// The limit in force.
        max: usize,
    },
    /// The message is not a JSON object, or a field has the wrong JSON type.
    #[error("not a JSON frame: {0}")]
    NotJson(String),
    /// The JSON object has no string `type`.
    #[error("frame has no \"type\"")]
    MissingType,
    /// The `type` is not one this crate knows.
    #[error("unknown frame type {0:?}")]
    UnknownType(String),
    /// A `hello` frame lacks a required field.
    #[error("malformed hello: {0}")]
    BadHello(&'static str),
    /// A stream frame lacks a required field or carries bad base64.
    #[error("malformed {kind} for stream {stream_id:?}: {reason}")]
    BadStream {
        /// The frame type (`stream_open`, `stream_data`, `stream_close`).
        kind: &'static str,
        /// The stream the frame named, when it named one.
        stream_id: Option<String>,
        /// What was wrong.
        reason: &'static str,
    },
    /// A binary message whose first byte is not a known kind (only with the
    /// `binary_data` extension; see [`crate::binary`]). An empty message
    /// reads as kind 0.
    #[error("unknown binary message kind {0:#04x}")]
    UnknownBinary(u8),
    /// A control frame (`ready`, `error`) lacks a required field.
    #[error("malformed {kind}: {reason}")]
    BadControl {
        /// The frame type.
        kind: &'static str,
        /// What was wrong.
        reason: &'static str,
    },
}

impl DecodeError {
    /// The contract code a gateway sends back for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            DecodeError::TooLarge { .. }
            | DecodeError::NotJson(_)
            | DecodeError::MissingType
            | DecodeError::UnknownBinary(_)
            | DecodeError::BadControl { .. } => ErrorCode::BadFrame,
            DecodeError::UnknownType(_) => ErrorCode::Unsupported,
            DecodeError::BadHello(_) => ErrorCode::BadHello,
            DecodeError::BadStream { .. } => ErrorCode::BadStream,
        }
    }

    /// The stream this error concerns, if it concerns only one.
    pub fn stream_id(&self) -> Option<&str> {
        match self {
            DecodeError::BadStream { stream_id, .. } => stream_id.as_deref(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for code in [
            ErrorCode::BadHello,
            ErrorCode::BadVersion,
            ErrorCode::AuthFailed,
            ErrorCode::BadFrame,
            ErrorCode::SessionError,
            ErrorCode::StreamError,
            ErrorCode::BadStream,
            ErrorCode::Unsupported,
            ErrorCode::Other("rate_limited".into()),
        ] {
            assert_eq!(ErrorCode::parse(code.as_str()), code);
        }
    }
}
