//! The seed's rate limits (§5.2; CONTRACTS.md §5): `auth` attempts per
//! source address and tunnel creations per `sub`. (Its third, heartbeats at
//! most one per 30 s, is `proto_relay::ServerSession`'s: a client that
//! reconnects to send one sooner is bounded by the `auth` limit.) Over a
//! limit the control channel answers RATE_LIMIT (3001) with
//! `details.retry_after` from [`RetryAfter::secs`].
//!
//! Each limit is a keyed GCRA limiter (`governor`): a quota of *n per
//! period* admits a burst of *n*, then one more every *period / n*. That is
//! "5 per minute" as a client sees it, without the cliff a fixed window has
//! at its edge.
//!
//! Keys: IPv4 sources by address, IPv6 sources by their /64 (the block one
//! subscriber usually gets, as `server_kit::admission` does), so one host
//! cannot mint fresh keys from its own prefix. Creations are keyed by `sub`
//! (only verified tokens reach that check).
//!
//! Memory stays bounded: a key whose state has returned to "fresh" carries
//! no information, and `governor`'s `retain_recent` drops those. It runs
//! when a limiter's key count reaches a threshold; the next threshold is
//! then twice the keys that remain (never below the configured one), so a
//! flood of live keys costs one sweep per doubling, not one per check. The
//! server may also call [`RateLimits::retain_recent`] on a timer.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};

/// A rate: `count` events per `per`, all of which may come at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateQuota {
    /// Events allowed per period (also the burst).
    pub count: NonZeroU32,
    /// The period.
    pub per: Duration,
}

impl RateQuota {
    /// `count` per `per`.
    pub const fn new(count: NonZeroU32, per: Duration) -> RateQuota {
        RateQuota { count, per }
    }

    fn quota(self) -> Option<Quota> {
        let interval = self.per / self.count.get();
        Quota::with_period(interval).map(|q| q.allow_burst(self.count))
    }
}

/// The limits; every one configurable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitsConfig {
    /// `auth` attempts per source (seed: 5 per minute).
    pub auth: RateQuota,
    /// Tunnel creations per `sub` (seed: 10 per hour). Resumes do not
    /// count: they create nothing.
    pub creation: RateQuota,
    /// A limiter tracking this many keys sweeps out the idle ones.
    pub retain_threshold: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            auth: RateQuota::new(NonZeroU32::new(5).expect("5"), Duration::from_secs(60)),
            creation: RateQuota::new(NonZeroU32::new(10).expect("10"), Duration::from_secs(3600)),
            retain_threshold: 10_000,
        }
    }
}

/// Why a [`LimitsConfig`] is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LimitsError {
    /// A quota's period is zero, or shorter than a nanosecond per event.
    #[error("the {limit} quota has a zero period")]
    ZeroPeriod {
        /// Which limit (`auth`, `creation`).
        limit: &'static str,
    },
    /// `retain_threshold` is zero.
    #[error("the retain threshold must be at least 1")]
    ZeroThreshold,
}

/// Over a limit: the first moment another attempt can succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("rate limited; retry after {0:?}")]
pub struct RetryAfter(pub Duration);

impl RetryAfter {
    /// Whole seconds to wait, rounded up and at least 1, for the error's
    /// `details.retry_after` (a client told "0" would retry at once).
    pub fn secs(&self) -> u64 {
        let secs = self.0.as_secs() + u64::from(self.0.subsec_nanos() > 0);
        secs.max(1)
    }
}

/// What an `auth` attempt is keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Source {
    V4(u32),
    /// The upper 64 bits of the address.
    V6(u64),
}

impl Source {
    fn of(ip: IpAddr) -> Source {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        match ip {
            IpAddr::V4(v4) => Source::V4(u32::from(v4)),
            IpAddr::V6(v6) => Source::V6((u128::from(v6) >> 64) as u64),
        }
    }
}

type Limiter<K, C> = RateLimiter<K, DashMapStateStore<K>, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// One keyed limiter with its sweep threshold.
struct Keyed<K: Hash + Eq + Clone, C: Clock> {
    limiter: Limiter<K, C>,
    base_threshold: usize,
    next_retain: AtomicUsize,
}

impl<K: Hash + Eq + Clone, C: Clock> Keyed<K, C> {
    fn new(quota: Quota, clock: C, threshold: usize) -> Keyed<K, C> {
        Keyed {
            limiter: RateLimiter::dashmap_with_clock(quota, clock),
            base_threshold: threshold,
            next_retain: AtomicUsize::new(threshold),
        }
    }

    fn check(&self, key: &K, clock: &C) -> Result<(), RetryAfter> {
        let outcome = self.limiter.check_key(key);
        if self.limiter.len() >= self.next_retain.load(Ordering::Relaxed) {
            self.retain_recent();
        }
        outcome.map_err(|not_until| RetryAfter(not_until.wait_time_from(clock.now())))
    }

    fn retain_recent(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
        let next = self
            .limiter
            .len()
            .saturating_mul(2)
            .max(self.base_threshold);
        self.next_retain.store(next, Ordering::Relaxed);
    }
}

/// The relay's rate limiters. Shared by every connection (`Arc`); each
/// check is a lock-free map update.
pub struct RateLimits<C: Clock = DefaultClock> {
    clock: C,
    auth: Keyed<Source, C>,
    creation: Keyed<String, C>,
}

impl<C: Clock> std::fmt::Debug for RateLimits<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("auth_keys", &self.auth.limiter.len())
            .field("creation_keys", &self.creation.limiter.len())
            .finish()
    }
}

impl RateLimits<DefaultClock> {
    /// Limiters on the monotonic clock.
    pub fn new(config: LimitsConfig) -> Result<RateLimits<DefaultClock>, LimitsError> {
        RateLimits::with_clock(config, DefaultClock::default())
    }
}

impl<C: Clock + Clone> RateLimits<C> {
    /// Limiters on `clock` (tests pass `governor`'s `FakeRelativeClock`).
    pub fn with_clock(config: LimitsConfig, clock: C) -> Result<RateLimits<C>, LimitsError> {
        if config.retain_threshold == 0 {
            return Err(LimitsError::ZeroThreshold);
        }
        let quota = |q: RateQuota, limit| q.quota().ok_or(LimitsError::ZeroPeriod { limit });
        let threshold = config.retain_threshold;
        Ok(RateLimits {
            auth: Keyed::new(quota(config.auth, "auth")?, clock.clone(), threshold),
            creation: Keyed::new(
                quota(config.creation, "creation")?,
                clock.clone(),
                threshold,
            ),
            clock,
        })
    }

    /// Counts an `auth` attempt from `ip` (every attempt, successful or
    /// not: the limit is on guessing, and a real client authenticates once
    /// per connection).
    pub fn check_auth(&self, ip: IpAddr) -> Result<(), RetryAfter> {
        self.auth.check(&Source::of(ip), &self.clock)
    }

    /// Counts a tunnel creation by `sub`.
    pub fn check_creation(&self, sub: &str) -> Result<(), RetryAfter> {
        self.creation.check(&sub.to_owned(), &self.clock)
    }

    /// Drops every key whose limit has fully recovered.
    pub fn retain_recent(&self) {
        self.auth.retain_recent();
        self.creation.retain_recent();
    }

    /// Keys held across all limiters (memory use, for metrics and tests).
    pub fn tracked_keys(&self) -> usize {
        self.auth.limiter.len() + self.creation.limiter.len()
    }
}
