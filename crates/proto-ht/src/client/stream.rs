//! One stream's two directions on the client, as plain bookkeeping.
//!
//! Upload: packets get ids from 0 in the order the application sends them;
//! every packet not yet acknowledged is kept, so a batch cut by a broken
//! connection is resumed on another one from the packet the server says it
//! expects. Download: the next packet id expected, how far the application
//! has read, and what the server was last told.

use std::collections::VecDeque;

use super::ConnId;

/// An open batch: its query id and the connection it lives on (`None`
/// while no connection is up to take it).
#[derive(Debug, Clone)]
pub(crate) struct Batch {
    pub(crate) q: String,
    pub(crate) conn: Option<ConnId>,
}

/// The upload direction.
#[derive(Debug, Default)]
pub(crate) struct Upload {
    /// Id of the first kept packet: every packet below it was acknowledged.
    pub(crate) base: u64,
    /// Packets `base..base + kept.len()`, sent or not, not acknowledged.
    pub(crate) kept: VecDeque<Vec<u8>>,
    /// The next packet id to put on the wire in the current batch.
    pub(crate) sent: u64,
    /// The open `u` batch.
    pub(crate) batch: Option<Batch>,
    /// Whether `U` chunks may go out now: at once on a fresh stream, only
    /// after the server's `.{q} {p}` on a resumed batch.
    pub(crate) ready: bool,
    /// Whether a batch was ever started (the first one may send ahead).
    pub(crate) started: bool,
    /// The id of the empty packet that ends the upload, once queued.
    pub(crate) fin: Option<u64>,
    /// The fin was acknowledged: nothing more will be uploaded.
    pub(crate) done: bool,
    /// The server refused the batch (`!{q}`): the stream is gone there.
    pub(crate) failed: bool,
}

impl Upload {
    /// The id the next packet will get.
    pub(crate) fn end(&self) -> u64 {
        self.base + self.kept.len() as u64
    }

    /// Drops the packets below `next`; `false` if `next` is outside what
    /// was queued.
    pub(crate) fn ack(&mut self, next: u64) -> bool {
        if next < self.base || next > self.end() {
            return false;
        }
        for _ in self.base..next {
            self.kept.pop_front();
        }
        self.base = next;
        self.sent = self.sent.max(next);
        true
    }

    /// Whether every queued packet was acknowledged.
    pub(crate) fn drained(&self) -> bool {
        self.kept.is_empty()
    }
}

/// The download direction.
#[derive(Debug, Default)]
pub(crate) struct Download {
    /// The next packet id expected from the server.
    pub(crate) recv: u64,
    /// Packets the application has read.
    pub(crate) consumed: u64,
    /// The last acknowledgement the server has (an ack, or a `d`'s start).
    pub(crate) acked: u64,
    /// The open `d` batch.
    pub(crate) batch: Option<Batch>,
    /// The server said the target closed (`!{q}` after the last payload).
    pub(crate) eof: bool,
}

/// What the client knows of one stream.
#[derive(Debug)]
pub(crate) struct Stream {
    /// The server's stream id, once the `c` query was answered.
    pub(crate) id: Option<String>,
    pub(crate) up: Upload,
    pub(crate) down: Download,
    /// The application is done with the stream: send `q` once the upload
    /// is acknowledged.
    pub(crate) closing: bool,
    /// The `q` query is out.
    pub(crate) close_sent: bool,
}

impl Stream {
    pub(crate) fn new() -> Stream {
        Stream {
            id: None,
            up: Upload::default(),
            down: Download::default(),
            closing: false,
            close_sent: false,
        }
    }
}
