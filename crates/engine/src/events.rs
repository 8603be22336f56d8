//! What the engine tells its front-ends (CLI, desktop app, tray).
//!
//! One enum, serialized as `{"type": …, "data": …}`, published on a bounded
//! broadcast channel. A receiver that lags loses the oldest events and can
//! resynchronise from [`crate::Engine::snapshot`]; the data path never waits
//! for a front-end.

use net::ErrorCode;
use serde::Serialize;

use crate::state::SessionState;
use crate::table::{StreamInfo, Totals};

/// Events kept for slow subscribers before the oldest are dropped.
pub(crate) const EVENT_BUFFER: usize = 1024;

/// An engine event.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum EngineEvent {
    /// The session state changed.
    State(SessionState),
    /// A proxied connection got its tunnel stream.
    StreamOpened(StreamInfo),
    /// A proxied connection ended (or failed to open).
    StreamClosed(StreamInfo),
    /// Byte counts and rates of the open streams; coalesced, a few per second
    /// at most, and only while something changes. The rates are the stats
    /// ticker's samples, the same ones [`crate::Engine::snapshot`] shows.
    Streams {
        /// Open streams.
        open: Vec<StreamInfo>,
        /// Totals.
        totals: Totals,
    },
    /// Something went wrong; `code` is stable (contract or SDK code), `message`
    /// is for people.
    Error {
        /// Stable code (`auth_failed`, `handshake_failed`, `session_lost`, …).
        code: ErrorCode,
        /// Human sentence.
        message: String,
    },
}
