//! The machine's refusals: a connection that broke the protocol, and calls
//! the application made that cannot be honoured.

use crate::query::{DecodeError, MAX_PAYLOAD};

use super::EndReason;

/// A chunk that breaks the protocol: the connection it came on must end
/// (its batches are resumed elsewhere), the session lives on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnError {
    /// Not a well-formed answer.
    #[error("an unreadable answer: {0}")]
    Decode(#[from] DecodeError),
    /// An answer on a connection the machine does not know.
    #[error("an answer on an unknown connection")]
    UnknownConnection,
    /// An empty download payload (the end of a download is `!{q}`).
    #[error("an empty download payload")]
    EmptyDownload,
    /// More download packets than the window allows.
    #[error("the server sent past the download window")]
    PastWindow,
    /// An upload acknowledgement outside the packets sent.
    #[error("upload acknowledgement {next} outside {base}..={end}")]
    BadUploadAck {
        /// The acknowledgement.
        next: u64,
        /// The oldest packet kept.
        base: u64,
        /// The next packet to send.
        end: u64,
    },
    /// An answer whose body does not fit its query.
    #[error("a bad answer to a {0} query")]
    BadAnswer(&'static str),
}

/// Why [`Client::open`] refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// [`Config::max_streams`] are open.
    #[error("{0} streams are open already")]
    TooManyStreams(u32),
    /// The session ended.
    #[error("the session ended: {0}")]
    SessionEnded(EndReason),
    /// The host cannot be sent (empty, too long, spaces or controls).
    #[error("a host the protocol cannot carry")]
    BadHost,
}

/// Why [`Client::send`] refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The upload window is full: wait for [`Event::Writable`].
    #[error("the upload window is full")]
    Blocked,
    /// The stream is unknown, shut down for writing, or gone at the server.
    #[error("the stream cannot take more bytes")]
    Closed,
    /// More than [`MAX_PAYLOAD`] bytes.
    #[error("a payload of {0} bytes (at most {MAX_PAYLOAD})")]
    TooLarge(usize),
}
