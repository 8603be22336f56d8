//! The cell's side of HLHV as machines with no I/O.
//!
//! ```text
//!   driver (hlhv-cell)                    this module
//!   ──────────────────                    ───────────
//!   frames read from the leash ──────▶ Leash::handle_frame
//!   timer fired                ──────▶ Leash::handle_timeout
//!                              ◀────── Leash::poll_transmit (IAm, Mount, Unmount)
//!                              ◀────── Leash::poll_event    (Accepted, NeedBands)
//!
//!   frames read from a band    ──────▶ Band::handle_frame
//!                              ◀────── Band::poll_transmit  (IAm, ResWant, Res*)
//!                              ◀────── Band::poll_event     (LoggedIn, Request, Refused)
//!   the local app's response   ──────▶ Band::send_head / send_body / send_end
//! ```
//!
//! - [`Leash`]: log in with the cell key, mount, then turn `NeedBand` into
//!   "open N bands" events.
//! - [`Band`]: log in with the session key, then one request at a time:
//!   decide whether the request has a body, ask for it (bounded) or refuse
//!   it with 413, and frame the response.
//! - [`map`]: the pure header mapping between the queen's request head and
//!   the request the local app gets, and back.
//!
//! Time is an argument (`now`), so every timeout is tested without waiting.

mod band;
mod leash;
pub mod map;

use std::fmt;
use std::time::{Duration, Instant};

pub use band::{Band, BandConfig, BandEvent, DEFAULT_MAX_BODY, DEFAULT_MAX_PIECE, Request};
pub use leash::{Leash, LeashConfig, LeashEvent};

use crate::frame::{FrameError, Kind};

/// What the queen's leash `Accept` gives: the cell's id and the key its
/// bands log in with. `Debug` never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct Session {
    /// The cell's id, chosen by the queen.
    pub uuid: String,
    key: String,
}

impl Session {
    /// A session as the queen's `Accept` describes it.
    pub fn new(uuid: impl Into<String>, key: impl Into<String>) -> Session {
        Session {
            uuid: uuid.into(),
            key: key.into(),
        }
    }

    /// The session key, for a band's `IAm` only.
    pub fn key(&self) -> &str {
        &self.key
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("uuid", &self.uuid)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// Why a cell connection cannot go on. Each ends the connection it
/// happened on (the leash, or one band).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CellError {
    /// No `Accept` arrived within the login timeout.
    #[error("the queen did not accept the login within {0} ms")]
    LoginTimeout(u64),
    /// The queen sent a frame this connection does not expect now (a
    /// request on the leash, a second `Accept`, a new request head while a
    /// response is being sent).
    #[error("the queen sent an unexpected {kind:?} frame while {state}")]
    Unexpected {
        /// What the connection was doing.
        state: &'static str,
        /// The frame's kind.
        kind: Kind,
    },
    /// The leash `Accept` carries no cell id, so no band could log in.
    #[error("the queen's Accept carries no cell id")]
    EmptyUuid,
    /// Bytes from the queen that are not a frame.
    #[error("bad frame from the queen: {0}")]
    Frame(#[from] FrameError),
    /// The driver called a mutator at the wrong time (a response head twice,
    /// a body before the head). A bug in the driver, not in the queen.
    #[error("cell API misuse: {0}")]
    ApiMisuse(&'static str),
}

/// The login step both connection kinds share: an error once `now` has
/// reached the deadline of a login still waiting for its `Accept`.
fn check_login(
    deadline: Option<Instant>,
    now: Instant,
    timeout: Duration,
) -> Result<(), CellError> {
    match deadline {
        Some(deadline) if now >= deadline => Err(CellError::LoginTimeout(
            timeout.as_millis().try_into().unwrap_or(u64::MAX),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_key_is_never_printed() {
        let session = Session::new("u-1", "very-secret-session-key");
        let text = format!("{session:?}");
        assert!(
            text.contains("u-1") && !text.contains("very-secret"),
            "{text}"
        );
        assert_eq!(session.key(), "very-secret-session-key");
    }
}
