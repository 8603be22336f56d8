//! What the machine tells its driver: events, received payloads, and why a
//! session ended.

use std::fmt;
use std::ops::Range;
use std::time::Duration;

use super::{ConnId, LookupKey, StreamKey};

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReason {
    /// `403`: the server reclaimed the PHPSESSID; a new session is needed.
    Reclaimed,
    /// `404`: the key is wrong, or the URL is no HT server.
    WrongKey,
    /// Another HTTP status where `200` was expected.
    Status(u16),
    /// No connection answered a check ([`super::Client::check`]) within
    /// this deadline: the path to the server is gone.
    Unanswered(Duration),
    /// The driver ended it (closed by the user, every connection lost).
    Local(String),
}

impl fmt::Display for EndReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndReason::Reclaimed => {
                f.write_str("the server reclaimed the HT session (403); a new session is needed")
            }
            EndReason::WrongKey => {
                f.write_str("the server answered 404: wrong key or not an HT server")
            }
            EndReason::Status(code) => write!(f, "the server answered HTTP {code}"),
            EndReason::Unanswered(waited) => write!(
                f,
                "the HT server did not answer a check within {waited:?} after a network change"
            ),
            EndReason::Local(why) => f.write_str(why),
        }
    }
}

/// What a transport connection's HTTP status means (docs/ht.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusClass {
    /// `200`: the tunnel is there.
    Ok,
    /// `404`: wrong key or not an HT server; retrying cannot help.
    WrongKey,
    /// `403`: the session was reclaimed; start a new one.
    Reclaimed,
    /// `503`: the server has too many sessions; retry later.
    Busy,
    /// Anything else.
    Other(u16),
}

/// The class of an HTTP status.
pub fn classify_status(status: u16) -> StatusClass {
    match status {
        200 => StatusClass::Ok,
        403 => StatusClass::Reclaimed,
        404 => StatusClass::WrongKey,
        503 => StatusClass::Busy,
        other => StatusClass::Other(other),
    }
}

/// Something the driver or the application must learn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A connection's probe was answered: key and session are good.
    ConnectionReady(ConnId),
    /// A connection did not answer a check in time: the machine treats it
    /// as broken (its batches moved to the others already), and the driver
    /// must close it and may replace it.
    ConnectionDropped(ConnId),
    /// The server opened the stream under `id`.
    Opened {
        /// The stream.
        stream: StreamKey,
        /// The server's stream id.
        id: String,
    },
    /// The server refused the `c` query (refused or unresolvable target,
    /// policy, limits): the stream is gone.
    OpenFailed(StreamKey),
    /// Upload room was freed (or the upload failed): a waiting writer
    /// should try again.
    Writable(StreamKey),
    /// The target closed: every payload before it was returned already.
    Eof(StreamKey),
    /// The stream is closed and forgotten.
    Closed(StreamKey),
    /// A lookup's answer: the records in the server's order, or `None`
    /// when the name does not resolve.
    Resolved {
        /// The lookup.
        lookup: LookupKey,
        /// The records, as text.
        records: Option<Vec<String>>,
    },
    /// The session is over; nothing more will be sent.
    SessionEnded(EndReason),
}

/// What [`Client::handle_chunk`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// Nothing for an application (the machine's own answers, stale ones).
    Nothing,
    /// A download payload for `stream`, at `at` in the chunk handed in.
    Data {
        /// The stream.
        stream: StreamKey,
        /// Where the payload lies in the chunk.
        at: Range<usize>,
    },
}
