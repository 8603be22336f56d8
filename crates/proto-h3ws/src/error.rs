//! HTTP/3 error codes (RFC 9114 §8.1, RFC 9204 §6) and the error every
//! machine of this crate returns: a code for the peer and a reason for logs.

/// An HTTP/3 application error code, as sent in `CONNECTION_CLOSE`,
/// `RESET_STREAM` or `STOP_SENDING`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u64)]
pub enum Code {
    NoError = 0x100,
    GeneralProtocolError = 0x101,
    InternalError = 0x102,
    StreamCreationError = 0x103,
    ClosedCriticalStream = 0x104,
    FrameUnexpected = 0x105,
    FrameError = 0x106,
    ExcessiveLoad = 0x107,
    IdError = 0x108,
    SettingsError = 0x109,
    MissingSettings = 0x10a,
    RequestRejected = 0x10b,
    RequestCancelled = 0x10c,
    RequestIncomplete = 0x10d,
    MessageError = 0x10e,
    ConnectError = 0x10f,
    VersionFallback = 0x110,
    /// RFC 9204 §6.
    QpackDecompressionFailed = 0x200,
}

impl Code {
    /// The value on the wire.
    pub fn value(self) -> u64 {
        self as u64
    }

    /// The name RFC 9114 gives the code, for logs and metric labels.
    pub fn name(self) -> &'static str {
        match self {
            Code::NoError => "H3_NO_ERROR",
            Code::GeneralProtocolError => "H3_GENERAL_PROTOCOL_ERROR",
            Code::InternalError => "H3_INTERNAL_ERROR",
            Code::StreamCreationError => "H3_STREAM_CREATION_ERROR",
            Code::ClosedCriticalStream => "H3_CLOSED_CRITICAL_STREAM",
            Code::FrameUnexpected => "H3_FRAME_UNEXPECTED",
            Code::FrameError => "H3_FRAME_ERROR",
            Code::ExcessiveLoad => "H3_EXCESSIVE_LOAD",
            Code::IdError => "H3_ID_ERROR",
            Code::SettingsError => "H3_SETTINGS_ERROR",
            Code::MissingSettings => "H3_MISSING_SETTINGS",
            Code::RequestRejected => "H3_REQUEST_REJECTED",
            Code::RequestCancelled => "H3_REQUEST_CANCELLED",
            Code::RequestIncomplete => "H3_REQUEST_INCOMPLETE",
            Code::MessageError => "H3_MESSAGE_ERROR",
            Code::ConnectError => "H3_CONNECT_ERROR",
            Code::VersionFallback => "H3_VERSION_FALLBACK",
            Code::QpackDecompressionFailed => "QPACK_DECOMPRESSION_FAILED",
        }
    }
}

/// A protocol error: the code to send and why, for logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} ({})", reason, code.name())]
pub struct H3Error {
    /// What the peer is told.
    pub code: Code,
    /// What our logs say.
    pub reason: String,
}

impl H3Error {
    /// An error with this code and reason.
    pub fn new(code: Code, reason: impl Into<String>) -> H3Error {
        H3Error {
            code,
            reason: reason.into(),
        }
    }
}
