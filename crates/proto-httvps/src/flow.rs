//! Credit windows of the `flow_control` extension, as plain arithmetic.
//!
//! The contract has no flow control: a receiver either buffers without bound
//! or stops reading the whole session, and one paused reader then stalls
//! every stream. With the extension each side grants the other credit, per
//! stream and per session, the way HTTP/2 and QUIC do:
//!
//! - both windows start at [`INITIAL_STREAM_WINDOW`] and
//!   [`INITIAL_SESSION_WINDOW`] payload bytes (fixed by the extension, so
//!   `hello` and `ready` carry nothing new);
//! - a sender spends credit on every `stream_data` payload byte (the address
//!   header included) and never sends more than it holds ([`SendWindow`]);
//! - a receiver grants more with `window_update` once its application has
//!   *consumed* half a window ([`RecvWindow`]), so its memory per stream is
//!   bounded by the window it granted, and a reader that pauses stalls only
//!   its own stream.
//!
//! Stream windows grow toward the bandwidth-delay product like quinn's and
//! h2's: when a receiver grants again less than two round trips after its
//! previous grant, the reader is keeping up with the link and the window was
//! the bottleneck, so it doubles, up to a configured maximum. A slow reader
//! never triggers that, so it never holds more than a small window of data.
//!
//! The session window bounds the bytes buffered for all streams together.
//! It must never be what stalls a stream whose own window is open, or
//! streams that paused (each holding its full window) would stall the
//! others: so it starts at 64 initial stream windows and grows by exactly
//! what any stream window grows ([`consume`]), and a stream window grows
//! only while the session window can follow, up to its maximum.

use std::time::{Duration, Instant};

pub use crate::frame::FEATURE_FLOW_CONTROL;

/// Credit each stream's sender holds when the stream opens.
pub const INITIAL_STREAM_WINDOW: u64 = 256 * 1024;

/// Credit the session's sender holds when the session starts: room for 64
/// streams at their initial window.
pub const INITIAL_SESSION_WINDOW: u64 = 64 * INITIAL_STREAM_WINDOW;

/// Largest `increment` a `window_update` may carry (HTTP/2's window bound).
pub const MAX_INCREMENT: u64 = 1 << 31;

/// Held credit is capped here, so a peer repeating large increments cannot
/// overflow the counter (`u64` arithmetic stays exact far below this).
const MAX_CREDIT: u64 = 1 << 62;

/// How a receiver sizes the windows it grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowLimits {
    /// Largest window one stream may grow to: the memory a paused reader can
    /// hold at most.
    pub max_stream_window: u64,
    /// Largest session window: bounds the bytes buffered for all streams.
    pub max_session_window: u64,
}

impl Default for WindowLimits {
    /// 16 MiB per stream (full speed up to ~130 ms at 1 Gbit/s), 96 MiB per
    /// session.
    fn default() -> Self {
        WindowLimits {
            max_stream_window: 16 * 1024 * 1024,
            max_session_window: 96 * 1024 * 1024,
        }
    }
}

/// The peer sent more than it was granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{received} bytes received with only {granted} bytes of credit granted")]
pub struct FlowViolation {
    /// Bytes received in total.
    pub received: u64,
    /// Bytes granted in total.
    pub granted: u64,
}

/// Credit to send: what the peer granted and this side has not spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendWindow {
    available: u64,
}

impl SendWindow {
    /// A window holding `initial` bytes of credit.
    pub fn new(initial: u64) -> SendWindow {
        SendWindow { available: initial }
    }

    /// Bytes that may be sent now.
    pub fn available(&self) -> u64 {
        self.available
    }

    /// How many of `want` bytes may be sent now.
    pub fn allow(&self, want: usize) -> usize {
        usize::try_from(self.available).map_or(want, |a| a.min(want))
    }

    /// Spends `n` bytes; callers send at most [`SendWindow::allow`].
    pub fn spend(&mut self, n: usize) {
        debug_assert!(n as u64 <= self.available, "spent more than the credit");
        self.available = self.available.saturating_sub(n as u64);
    }

    /// Gives back `n` unused bytes of what was spent.
    pub fn refund(&mut self, n: usize) {
        self.grant(n as u64);
    }

    /// Adds the peer's `window_update` increment. Returns whether the window
    /// was empty before: the moment a blocked sender must be woken.
    pub fn grant(&mut self, increment: u64) -> bool {
        let was_empty = self.available == 0;
        self.available = self.available.saturating_add(increment).min(MAX_CREDIT);
        was_empty
    }
}

/// A receiver's side of one window: what it granted, received and consumed.
#[derive(Debug, Clone)]
pub struct RecvWindow {
    /// The current window size (auto-tuned).
    window: u64,
    max_window: u64,
    /// Bytes the peer may have sent in total: the initial window plus every
    /// increment granted.
    granted: u64,
    received: u64,
    consumed: u64,
    last_grant: Option<Instant>,
    /// A session window: streams that paused hold part of it, so grants are
    /// judged against the part they do not hold.
    shared: bool,
}

impl RecvWindow {
    /// A window that starts at `initial` bytes and may grow to `max`.
    pub fn new(initial: u64, max: u64) -> RecvWindow {
        RecvWindow {
            window: initial,
            max_window: max.max(initial),
            granted: initial,
            received: 0,
            consumed: 0,
            last_grant: None,
            shared: false,
        }
    }

    /// A session's window: like [`RecvWindow::new`], but the grant is due
    /// once half of what buffered bytes leave free was used, not half the
    /// window. With paused streams holding more than half the window, the
    /// half-window rule would never grant again, and every stream would
    /// stall once the sender spent what it held.
    pub fn session(initial: u64, max: u64) -> RecvWindow {
        RecvWindow {
            shared: true,
            ..RecvWindow::new(initial, max)
        }
    }

    /// The window size now.
    pub fn window(&self) -> u64 {
        self.window
    }

    /// Bytes received and not yet consumed.
    pub fn buffered(&self) -> u64 {
        self.received - self.consumed
    }

    /// Counts `n` bytes that arrived; an error when the peer overran its
    /// credit (the bytes are not counted then).
    pub fn on_receive(&mut self, n: usize) -> Result<(), FlowViolation> {
        let received = self.received + n as u64;
        if received > self.granted {
            return Err(FlowViolation {
                received,
                granted: self.granted,
            });
        }
        self.received = received;
        Ok(())
    }

    /// Room left to grow.
    fn room(&self) -> u64 {
        self.max_window - self.window
    }

    /// Grows the window by `by` (capped at its maximum); the credit follows
    /// with the next grant.
    pub fn raise(&mut self, by: u64) {
        self.window = (self.window + by).min(self.max_window);
    }

    /// Counts `n` bytes the application consumed (or that were dropped) at
    /// `now`; returns the increment to grant, when one is due. `rtt` is the
    /// round-trip estimate that decides whether the window grows, by at
    /// most `growth_cap` bytes.
    pub fn on_consume(
        &mut self,
        n: usize,
        now: Instant,
        rtt: Duration,
        growth_cap: u64,
    ) -> Option<u64> {
        self.consumed = (self.consumed + n as u64).min(self.received);
        // Credit the peer lacks to fill the window again.
        let owed = (self.consumed + self.window).saturating_sub(self.granted);
        let due = if self.shared {
            (self.window.saturating_sub(self.buffered()) / 2).max(1)
        } else {
            self.window / 2
        };
        if owed < due {
            return None;
        }
        let grow = self.window.min(self.room()).min(growth_cap);
        if grow > 0
            && self
                .last_grant
                .is_some_and(|at| now.saturating_duration_since(at) < rtt * 2)
        {
            self.window += grow;
        }
        self.last_grant = Some(now);
        let increment = (self.consumed + self.window - self.granted).min(MAX_INCREMENT);
        self.granted += increment;
        Some(increment)
    }
}

/// Increments to grant after `n` bytes of a stream were consumed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Grants {
    /// For the stream's window.
    pub stream: Option<u64>,
    /// For the session's window.
    pub session: Option<u64>,
}

/// Counts `n` consumed bytes of a stream in its window and the session's.
/// The stream window grows only as far as the session window can grow with
/// it, and the session window grows by what the stream window grew, so the
/// session window always covers every stream's (module doc).
pub fn consume(
    stream: &mut RecvWindow,
    session: &mut RecvWindow,
    n: usize,
    now: Instant,
    rtt: Duration,
) -> Grants {
    let before = stream.window();
    let stream_grant = stream.on_consume(n, now, rtt, session.room());
    session.raise(stream.window() - before);
    Grants {
        stream: stream_grant,
        session: session.on_consume(n, now, rtt, 0),
    }
}

/// Gives a session back `n` bytes that will never be consumed through a
/// stream (late bytes of a closed stream, or what it still buffered).
pub fn release(session: &mut RecvWindow, n: u64, now: Instant, rtt: Duration) -> Option<u64> {
    session.on_consume(usize::try_from(n).unwrap_or(usize::MAX), now, rtt, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RTT: Duration = Duration::from_millis(50);

    #[test]
    fn a_sender_never_exceeds_its_credit() {
        let mut w = SendWindow::new(10);
        assert_eq!(w.allow(64), 10);
        w.spend(10);
        assert_eq!(w.allow(64), 0);
        assert!(w.grant(5), "an empty window reports the wake-up");
        assert!(!w.grant(5));
        assert_eq!(w.allow(64), 10);
        w.refund(3);
        assert_eq!(w.available(), 13);
        w.grant(u64::MAX);
        assert_eq!(w.available(), MAX_CREDIT, "credit saturates");
    }

    #[test]
    fn overrunning_the_grant_is_a_violation() {
        let mut r = RecvWindow::new(100, 100);
        r.on_receive(60).unwrap();
        r.on_receive(40).unwrap();
        let err = r.on_receive(1).unwrap_err();
        assert_eq!(
            err,
            FlowViolation {
                received: 101,
                granted: 100
            }
        );
        assert_eq!(r.buffered(), 100, "the overrun is not counted");
    }

    #[test]
    fn credit_comes_back_only_as_the_application_consumes() {
        let t0 = Instant::now();
        let mut r = RecvWindow::new(100, 100);
        r.on_receive(100).unwrap();
        // A paused reader: nothing consumed, nothing granted, memory bounded.
        assert_eq!(r.buffered(), 100);
        assert_eq!(r.on_consume(0, t0, RTT, u64::MAX), None);
        assert_eq!(
            r.on_consume(49, t0, RTT, u64::MAX),
            None,
            "less than half a window"
        );
        assert_eq!(r.on_consume(1, t0, RTT, u64::MAX), Some(50));
        r.on_receive(50).unwrap();
        assert!(r.on_receive(1).is_err(), "still exactly one window");
    }

    /// Fills the window the peer was granted and consumes it all, `rounds`
    /// times, `step` apart; returns the final window.
    fn run(step: Duration, rounds: u32) -> u64 {
        let mut w = RecvWindow::new(100, 400);
        let mut t = Instant::now();
        for _ in 0..rounds {
            let room = (w.granted - w.received) as usize;
            w.on_receive(room).unwrap();
            t += step;
            let _ = w.on_consume(room, t, RTT, u64::MAX);
        }
        w.window()
    }

    #[test]
    fn a_fast_reader_grows_the_window_a_slow_one_does_not() {
        assert_eq!(run(RTT / 4, 6), 400, "grew to the maximum");
        assert_eq!(run(RTT * 4, 6), 100, "stayed at the initial window");
    }

    #[test]
    fn consuming_more_than_received_is_clamped() {
        let mut r = RecvWindow::new(100, 100);
        r.on_receive(10).unwrap();
        let _ = r.on_consume(1000, Instant::now(), RTT, u64::MAX);
        assert_eq!(r.buffered(), 0);
        // The grant is still bounded by what was granted.
        r.on_receive(90).unwrap();
        assert!(r.on_receive(1).is_err());
    }

    #[test]
    fn the_session_window_grows_with_its_streams_and_caps_them() {
        let t0 = Instant::now();
        let mut session = RecvWindow::new(300, 500);
        let mut a = RecvWindow::new(100, 1000);
        let mut t = t0;
        for _ in 0..8 {
            let room = (a.granted - a.received) as usize;
            a.on_receive(room).unwrap();
            session.on_receive(room).unwrap();
            t += RTT / 4;
            let grants = consume(&mut a, &mut session, room, t, RTT);
            assert!(grants.stream.is_some());
        }
        // The stream grew by 200 (100 -> 200 -> 300), the session by the
        // same 200 to its 500 cap, and the stream could grow no further.
        assert_eq!(a.window(), 300);
        assert_eq!(session.window(), 500);
        assert!(session.window() - a.window() >= 200, "covers the rest");
        assert_eq!(release(&mut session, 0, t, RTT), None);
    }

    #[test]
    fn paused_streams_holding_most_of_the_session_do_not_stop_its_grants() {
        let t0 = Instant::now();
        let mut session = RecvWindow::session(1000, 1000);
        // A paused stream holds 700 of the 1000; another stream reads.
        session.on_receive(700).unwrap();
        session.on_receive(300).unwrap();
        // The reader consumed its 300: the sender holds nothing; grant.
        assert_eq!(session.on_consume(300, t0, RTT, 0), Some(300));
        session.on_receive(300).unwrap();
        assert!(session.on_receive(1).is_err());
        // A plain window would never grant here: 300 owed < half of 1000.
        let mut plain = RecvWindow::new(1000, 1000);
        plain.on_receive(1000).unwrap();
        assert_eq!(plain.on_consume(300, t0, RTT, 0), None);
    }
}
