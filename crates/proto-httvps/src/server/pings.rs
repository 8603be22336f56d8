//! How many pings a client may send: a token bucket, with time passed in.
//!
//! Every ping costs the gateway an answer. A client that floods pings and
//! never reads made the gateway queue pongs without bound (65 MB to 1.86 GB
//! in 15 s at one full core); the write buffer cap stops the memory, and this
//! budget stops the work: pings past it are not answered and count as
//! violations, so a flood ends the session after `max_violations` of them.

use std::time::{Duration, Instant};

/// The ping budget of a session: `burst` pings at once, refilled at `per_second`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PingLimit {
    /// Pings refilled per second.
    pub per_second: u32,
    /// Pings allowed in one burst (the bucket's size).
    pub burst: u32,
}

impl Default for PingLimit {
    /// Far above any keepalive (ours pings at most every few seconds), far
    /// below a flood.
    fn default() -> Self {
        PingLimit {
            per_second: 4,
            burst: 16,
        }
    }
}

/// The bucket itself.
#[derive(Debug, Clone)]
pub(crate) struct PingBudget {
    limit: PingLimit,
    /// Tokens, in thousandths of a ping (so refills need no floats).
    milli_tokens: u64,
    at: Instant,
}

impl PingBudget {
    pub(crate) fn new(limit: PingLimit, now: Instant) -> Self {
        PingBudget {
            limit,
            milli_tokens: u64::from(limit.burst) * 1000,
            at: now,
        }
    }

    /// Spends one ping; false when the budget is exhausted.
    pub(crate) fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at);
        // Refill in whole milliseconds; the remainder stays in `at`.
        let millis = elapsed.as_millis().min(u128::from(u32::MAX)) as u64;
        let cap = u64::from(self.limit.burst) * 1000;
        self.milli_tokens =
            (self.milli_tokens + millis * u64::from(self.limit.per_second)).min(cap);
        self.at += Duration::from_millis(millis);
        if self.milli_tokens >= 1000 {
            self.milli_tokens -= 1000;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_refill_rate() {
        let t0 = Instant::now();
        let mut b = PingBudget::new(
            PingLimit {
                per_second: 2,
                burst: 3,
            },
            t0,
        );
        assert!((0..3).all(|_| b.take(t0)));
        assert!(!b.take(t0), "the burst is spent");
        assert!(!b.take(t0 + Duration::from_millis(400)));
        assert!(b.take(t0 + Duration::from_millis(500)), "one refilled");
        assert!(!b.take(t0 + Duration::from_millis(500)));
        // A long pause refills only up to the burst.
        let later = t0 + Duration::from_secs(60);
        assert!((0..3).all(|_| b.take(later)));
        assert!(!b.take(later));
    }

    #[test]
    fn time_going_backwards_refills_nothing() {
        let t0 = Instant::now() + Duration::from_secs(10);
        let mut b = PingBudget::new(
            PingLimit {
                per_second: 100,
                burst: 1,
            },
            t0,
        );
        assert!(b.take(t0));
        assert!(!b.take(t0 - Duration::from_secs(5)));
    }
}
