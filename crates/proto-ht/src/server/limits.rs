//! The server's bounds, all configurable, and why each exists.

use std::time::Duration;

use crate::query::MAX_PAYLOAD;

/// Every bound the server machine enforces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Sessions at once; a new PHPSESSID beyond it is answered `503`.
    pub max_sessions: usize,
    /// Transport connections of one session at once (a client opens 4 by
    /// default); more are answered `503`.
    pub max_connections_per_session: usize,
    /// Streams of one session, dials in progress included; a `c` beyond it
    /// is answered `!{q}`.
    pub max_streams: usize,
    /// Largest chunk accepted from a client (the contract's default is
    /// 64 KiB of payload plus the header); a larger one ends its connection.
    pub max_chunk: usize,
    /// Bytes one stream keeps per direction: download packets not yet
    /// acknowledged, and upload bytes not yet written to the target beyond
    /// which acknowledgements are withheld.
    pub max_buffer: usize,
    /// Download bytes one session keeps across its streams (packets not yet
    /// acknowledged, datagrams waiting): without it a session could hold
    /// `max_streams × max_buffer` (4 GiB by default). A TCP stream waits
    /// for room before its next read; a UDP datagram that finds none is
    /// dropped, the oldest of its stream first.
    pub max_session_buffer: usize,
    /// Upload packets a client may send past a withheld acknowledgement
    /// (its window); one more ends the connection. With `max_buffer` it
    /// bounds what an upload can make the server hold.
    pub max_upload_ahead: u64,
    /// Queries of one connection waiting for an answer or open as batches;
    /// one more is answered `!{q}`.
    pub max_in_flight: usize,
    /// Datagrams waiting per UDP stream; the oldest is dropped when full.
    pub max_datagrams: usize,
    /// Largest read from a target: one download packet.
    pub read_size: usize,
    /// A session with no transport connection this long is reclaimed.
    pub session_idle: Duration,
    /// How long a reclaimed PHPSESSID is remembered (and answered `403`).
    /// The contract asks for at least an hour.
    pub remember_reclaimed: Duration,
    /// Reclaimed ids remembered at most; the oldest is forgotten first.
    pub max_reclaimed: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_sessions: 1024,
            max_connections_per_session: 32,
            max_streams: 1024,
            // `U` + a 16-character id + a space, rounded up generously.
            max_chunk: MAX_PAYLOAD + 64,
            max_buffer: 4 * 1024 * 1024,
            max_session_buffer: 64 * 1024 * 1024,
            max_upload_ahead: 64,
            max_in_flight: 4096,
            max_datagrams: 256,
            read_size: MAX_PAYLOAD,
            session_idle: Duration::from_secs(180),
            remember_reclaimed: Duration::from_secs(3600),
            max_reclaimed: 65_536,
        }
    }
}

impl Limits {
    /// Download packets kept per stream: the byte bound in reads.
    pub(crate) fn download_packets(&self) -> usize {
        (self.max_buffer / self.read_size.max(1)).max(1)
    }

    /// The largest window a download batch gets (larger ones are capped
    /// silently, as the contract allows): no more than the stream keeps.
    pub(crate) fn max_window(&self) -> u64 {
        self.download_packets() as u64
    }

    /// Checks that every bound is usable.
    pub fn check(&self) -> Result<(), LimitsError> {
        let bad = |what| Err(LimitsError(what));
        if self.max_sessions == 0 || self.max_connections_per_session == 0 {
            return bad("sessions and connections per session must be at least 1");
        }
        if self.max_streams == 0 || self.max_in_flight == 0 {
            return bad("streams and queries in flight must be at least 1");
        }
        if self.max_chunk < 64 {
            return bad("the chunk limit must be at least 64 bytes");
        }
        if self.read_size == 0 || self.read_size > MAX_PAYLOAD {
            return bad("the read size must be 1 byte to 64 KiB");
        }
        if self.max_buffer == 0 || self.max_datagrams == 0 {
            return bad("the stream buffer and datagram queue must hold something");
        }
        if self.max_session_buffer < self.read_size {
            return bad("the session buffer must hold at least one read");
        }
        if self.session_idle.is_zero() {
            return bad("the session idle time must be positive");
        }
        if self.remember_reclaimed < Duration::from_secs(3600) {
            return bad("reclaimed sessions must be remembered at least an hour");
        }
        Ok(())
    }
}

/// A [`Limits`] value that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid HT server limits: {0}")]
pub struct LimitsError(pub &'static str);
