//! The queen's side of the protocol as plain machines, with time passed in:
//!
//! - [`login`]: the first frame of every connection, within a deadline, and
//!   what it claims (a leash with the cell key, a band with a cell's id and
//!   session key); [`Secret`] compares keys in constant time.
//! - [`pool`]: one cell's bands (free, busy), the requests waiting for one,
//!   when to ask the cell for more (`NeedBand`), when to close an idle band
//!   and when a waiting request gives up.
//! - [`exchange`]: one request on one band, from `ReqHead` to `ResEnd`.
//!
//! Every way a public request can fail is one [`Failure`], and
//! [`Failure::status`] is the one place that maps it to an HTTP status.
//! The `hlhv-queen` crate is the driver: sockets, TLS, timers, hyper.

pub mod exchange;
pub mod login;
pub mod pool;

pub use exchange::{Exchange, Step};
pub use login::{Claim, Login, LoginError, Secret};
pub use pool::{BandId, BandPool, PoolAction, PoolLimits, WaiterId};

use crate::frame::{FrameError, Kind};

/// Why a public request could not be answered by its cell.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Failure {
    /// No band became free within the bounded wait.
    #[error("no band became free in time")]
    BandWait,
    /// The cell already has as many requests waiting as allowed.
    #[error("the cell is saturated")]
    Saturated,
    /// The cell's leash closed before a band could be given.
    #[error("the cell disconnected")]
    CellGone,
    /// A band the cell opened failed its login (wrong session key), so the
    /// band this request waited for will not come.
    #[error("a band of the cell failed its login")]
    BandLogin,
    /// The band closed or failed (I/O) in the middle of the exchange.
    #[error("the band broke")]
    BandBroken,
    /// The cell sent a frame the exchange does not allow at this point.
    #[error("unexpected {0:?} frame from the cell")]
    Unexpected(Kind),
    /// The cell sent bytes that are not a frame, or a frame over the cap.
    #[error("bad frame from the cell: {0}")]
    BadFrame(FrameError),
    /// The response head's status is below 200 or not a status at all.
    #[error("the cell answered status {0}")]
    BadStatus(i64),
    /// The cell did not send its next frame in time.
    #[error("the cell did not answer in time")]
    Timeout,
    /// Reading the client's request body failed (the client went away).
    #[error("the request body could not be read")]
    ClientBody,
}

impl Failure {
    /// The HTTP status the public client gets. Failures where the cell
    /// misbehaved are 502 (as in the Go queen); where it is busy or gone
    /// before anything was sent, 503; where it is silent, 504.
    pub fn status(&self) -> u16 {
        match self {
            Failure::BandWait | Failure::Saturated | Failure::CellGone => 503,
            Failure::BandLogin
            | Failure::BandBroken
            | Failure::Unexpected(_)
            | Failure::BadFrame(_)
            | Failure::BadStatus(_) => 502,
            Failure::Timeout => 504,
            Failure::ClientBody => 400,
        }
    }

    /// A short label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Failure::BandWait => "band_wait",
            Failure::Saturated => "saturated",
            Failure::CellGone => "cell_gone",
            Failure::BandLogin => "band_login",
            Failure::BandBroken => "band_broken",
            Failure::Unexpected(_) => "unexpected_frame",
            Failure::BadFrame(_) => "bad_frame",
            Failure::BadStatus(_) => "bad_status",
            Failure::Timeout => "timeout",
            Failure::ClientBody => "client_body",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(Failure::BandLogin.status(), 502);
        assert_eq!(Failure::BadStatus(101).status(), 502);
        assert_eq!(Failure::Unexpected(Kind::Mount).status(), 502);
        assert_eq!(Failure::BandWait.status(), 503);
        assert_eq!(Failure::Timeout.status(), 504);
        assert_eq!(Failure::ClientBody.reason(), "client_body");
    }
}
