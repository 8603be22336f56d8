//! The client machine's limits. Every one has a default and can be changed.

/// Limits and windows of one client session.
#[derive(Debug, Clone)]
pub struct Config {
    /// Download packets the server may send ahead of the client's last
    /// acknowledgement (the `w` of `d{q} {stream} {p} {w}`). 64 packets of
    /// up to 64 KiB is 4 MiB in flight per stream: on loopback 16 ran at
    /// 0.35× ss-libev, 64 at about 0.7× (bench/README.md, issue 12). A stream's
    /// unread download never exceeds twice this (see [`super::Client`]).
    pub download_window: u32,
    /// Upload packets sent ahead of the server's acknowledgement and kept
    /// until acknowledged, for a resume on another connection.
    pub upload_window: u32,
    /// Download packets after which the client acknowledges at the latest
    /// (capped at half the window, the contract's minimum). Small on
    /// purpose: the server may cap the window below what was asked (ours
    /// keeps 64 packets per stream by default), and an acknowledgement only
    /// every half of *our* window would then drain its pipeline each time
    /// (with a server window of 16, acknowledging every 16 ran at 0.35×
    /// ss-libev's download speed; every 4 did better at once).
    pub ack_every: u32,
    /// Streams (TCP and UDP) open at once.
    pub max_streams: u32,
    /// Length of the random query ids (1–16).
    pub query_id_len: usize,
    /// Seed of the query-id generator (the driver passes real randomness:
    /// this crate has no source of its own).
    pub seed: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            download_window: 64,
            upload_window: 32,
            ack_every: 4,
            max_streams: 1024,
            query_id_len: 8,
            seed: 0x5eed,
        }
    }
}

impl Config {
    /// The values clamped to what the protocol allows (windows ≥ 1, ids of
    /// 1–16 characters), so a bad setting cannot stall or break the wire.
    pub(crate) fn sanitized(mut self) -> Config {
        self.download_window = self.download_window.max(1);
        self.upload_window = self.upload_window.max(1);
        self.max_streams = self.max_streams.max(1);
        self.ack_every = self.ack_every.max(1);
        self.query_id_len = self.query_id_len.clamp(1, crate::query::MAX_QUERY_ID);
        self
    }

    /// Packets after which the client acknowledges at the latest: the
    /// configured cadence, never more than `ceil(w/2)` (docs/ht.md,
    /// "Download payloads are never empty").
    pub fn ack_every(&self) -> u64 {
        u64::from(self.ack_every.max(1)).min(u64::from(self.download_window).div_ceil(2))
    }
}
