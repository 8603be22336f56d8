//! One cell's bands and the requests waiting for one.
//!
//! A band carries one request at a time. A request takes a free band (the
//! most recently freed, so surplus bands stay idle and get closed) or waits
//! in line; for each waiting request that no band is on its way for, the
//! pool asks the cell for one more band ([`PoolAction::NeedBand`], sent on
//! the leash as `NeedBand{count: 1}`: the Go cell opens one band per frame
//! whatever the count says). The bounds the Go queen lacks:
//! - at most `max_bands` bands (open plus asked for) per cell;
//! - at most `max_waiters` requests in line, more fail at once (503);
//! - a request in line fails after `band_wait` (503) instead of hanging;
//! - a band that fails its login fails the oldest waiting request at once
//!   (502): the Go queen leaves it waiting forever;
//! - a band free for `band_idle` is closed (the Go queen checks every 120 s
//!   for bands idle 60 s; we close each one when its time comes).
//!
//! Time is passed in; the driver calls [`BandPool::handle_timeout`] at
//! [`BandPool::poll_timeout`] and carries out [`BandPool::poll_action`].

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use super::Failure;

/// A band's id, chosen by the driver, unique within the pool.
pub type BandId = u64;
/// A waiting request's id, chosen by the driver, unique within the pool.
pub type WaiterId = u64;

/// The pool's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolLimits {
    /// Bands per cell, open and asked for together.
    pub max_bands: usize,
    /// Requests waiting for a band.
    pub max_waiters: usize,
    /// How long a request waits for a band (and how long an asked-for band
    /// counts as on its way).
    pub band_wait: Duration,
    /// How long a band may stay free before it is closed.
    pub band_idle: Duration,
}

impl Default for PoolLimits {
    fn default() -> Self {
        PoolLimits {
            max_bands: 64,
            max_waiters: 256,
            band_wait: Duration::from_secs(10),
            band_idle: Duration::from_secs(60),
        }
    }
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoolAction {
    /// Send `NeedBand{count: 1}` on the leash.
    NeedBand,
    /// Give `band` to the request `waiter` (it is now busy).
    Grant {
        /// The request.
        waiter: WaiterId,
        /// The band.
        band: BandId,
    },
    /// Fail the request `waiter`.
    Fail {
        /// The request.
        waiter: WaiterId,
        /// Why.
        failure: Failure,
    },
    /// Close the free band (idle too long, or the cell is gone).
    CloseBand(BandId),
}

/// One cell's bands.
#[derive(Debug)]
pub struct BandPool {
    limits: PoolLimits,
    /// Free bands and when each became free, most recent last.
    free: Vec<(BandId, Instant)>,
    busy: HashSet<BandId>,
    /// Waiting requests and their deadlines, oldest first.
    waiters: VecDeque<(WaiterId, Instant)>,
    /// Bands asked for and not arrived, by when we stop counting on them.
    asked: VecDeque<Instant>,
    actions: VecDeque<PoolAction>,
    closed: bool,
}

impl BandPool {
    /// An empty pool.
    pub fn new(limits: PoolLimits) -> BandPool {
        BandPool {
            limits: PoolLimits {
                max_bands: limits.max_bands.max(1),
                ..limits
            },
            free: Vec::new(),
            busy: HashSet::new(),
            waiters: VecDeque::new(),
            asked: VecDeque::new(),
            actions: VecDeque::new(),
            closed: false,
        }
    }

    /// Bands logged in (free and busy).
    pub fn open_bands(&self) -> usize {
        self.free.len() + self.busy.len()
    }

    /// Bands free now.
    pub fn free_bands(&self) -> usize {
        self.free.len()
    }

    /// Requests waiting for a band.
    pub fn waiting(&self) -> usize {
        self.waiters.len()
    }

    /// Whether `band` is free (logged in, carrying no request).
    pub fn is_free(&self, band: BandId) -> bool {
        self.free.iter().any(|(b, _)| *b == band)
    }

    /// Bands asked for that have not arrived yet.
    pub fn asked(&self) -> usize {
        self.asked.len()
    }

    /// A request wants a band: `Ok(Some(band))` at once, `Ok(None)` when it
    /// waits in line (a later [`PoolAction::Grant`] or [`PoolAction::Fail`]
    /// answers it), or an error when it cannot even wait.
    pub fn take(&mut self, now: Instant, waiter: WaiterId) -> Result<Option<BandId>, Failure> {
        if self.closed {
            return Err(Failure::CellGone);
        }
        if let Some((band, _)) = self.free.pop() {
            self.busy.insert(band);
            return Ok(Some(band));
        }
        if self.waiters.len() >= self.limits.max_waiters {
            return Err(Failure::Saturated);
        }
        self.waiters
            .push_back((waiter, now + self.limits.band_wait));
        self.ask_for_bands(now);
        Ok(None)
    }

    /// A waiting request gave up on its own (its client went away).
    pub fn cancel(&mut self, waiter: WaiterId) {
        self.waiters.retain(|(w, _)| *w != waiter);
    }

    /// A band logged in. Refused (and to be closed) when the pool is full
    /// or the cell is gone.
    pub fn handle_band_joined(&mut self, now: Instant, band: BandId) -> Result<(), Failure> {
        if self.closed {
            return Err(Failure::CellGone);
        }
        if self.open_bands() >= self.limits.max_bands {
            return Err(Failure::Saturated);
        }
        self.asked.pop_front();
        self.put_free(now, band);
        Ok(())
    }

    /// A band of this cell failed its login: the band the oldest waiting
    /// request counts on will not come, so that request fails now.
    pub fn handle_band_login_failed(&mut self, now: Instant) {
        self.asked.pop_front();
        if let Some((waiter, _)) = self.waiters.pop_front() {
            self.actions.push_back(PoolAction::Fail {
                waiter,
                failure: Failure::BandLogin,
            });
        }
        self.ask_for_bands(now);
    }

    /// An exchange on `band` ended: `reusable` when it completed cleanly
    /// (the band goes back to the pool), otherwise the band is gone.
    pub fn release(&mut self, now: Instant, band: BandId, reusable: bool) {
        if !self.busy.remove(&band) {
            return;
        }
        if reusable && !self.closed {
            self.put_free(now, band);
        } else {
            self.ask_for_bands(now);
        }
    }

    /// A free band closed on its own (the cell closed it, or it sent
    /// something while idle).
    pub fn handle_band_closed(&mut self, now: Instant, band: BandId) {
        let before = self.free.len();
        self.free.retain(|(b, _)| *b != band);
        if self.free.len() != before || self.busy.remove(&band) {
            self.ask_for_bands(now);
        }
    }

    /// The leash closed: every waiting request fails, every free band is
    /// closed, and busy bands will not come back.
    pub fn handle_leash_closed(&mut self) {
        self.closed = true;
        for (waiter, _) in self.waiters.drain(..) {
            self.actions.push_back(PoolAction::Fail {
                waiter,
                failure: Failure::CellGone,
            });
        }
        for (band, _) in self.free.drain(..) {
            self.actions.push_back(PoolAction::CloseBand(band));
        }
        self.asked.clear();
    }

    /// Fails requests that waited too long and closes bands idle too long.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(waiter, deadline)) = self.waiters.front() {
            if deadline > now {
                break;
            }
            self.waiters.pop_front();
            self.actions.push_back(PoolAction::Fail {
                waiter,
                failure: Failure::BandWait,
            });
        }
        while self.asked.front().is_some_and(|&t| t <= now) {
            self.asked.pop_front();
        }
        let idle = self.limits.band_idle;
        let actions = &mut self.actions;
        self.free.retain(|&(band, since)| {
            let keep = since + idle > now;
            if !keep {
                actions.push_back(PoolAction::CloseBand(band));
            }
            keep
        });
        // Asked-for bands that never came no longer block asking again.
        self.ask_for_bands(now);
    }

    /// The next time [`handle_timeout`](Self::handle_timeout) has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let idle = self.limits.band_idle;
        [
            self.waiters.front().map(|&(_, t)| t),
            self.asked.front().copied(),
            self.free.iter().map(|&(_, since)| since + idle).min(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The next thing the driver must do.
    pub fn poll_action(&mut self) -> Option<PoolAction> {
        self.actions.pop_front()
    }

    fn put_free(&mut self, now: Instant, band: BandId) {
        if let Some((waiter, _)) = self.waiters.pop_front() {
            self.busy.insert(band);
            self.actions.push_back(PoolAction::Grant { waiter, band });
        } else {
            self.free.push((band, now));
        }
    }

    /// Asks for one band per waiting request no band is on its way for,
    /// within `max_bands`.
    fn ask_for_bands(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        let wanted = self.waiters.len().saturating_sub(self.asked.len());
        let room = self
            .limits
            .max_bands
            .saturating_sub(self.open_bands() + self.asked.len());
        for _ in 0..wanted.min(room) {
            self.asked.push_back(now + self.limits.band_wait);
            self.actions.push_back(PoolAction::NeedBand);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> PoolLimits {
        PoolLimits {
            max_bands: 2,
            max_waiters: 3,
            band_wait: Duration::from_secs(10),
            band_idle: Duration::from_secs(60),
        }
    }

    fn actions(p: &mut BandPool) -> Vec<PoolAction> {
        std::iter::from_fn(|| p.poll_action()).collect()
    }

    #[test]
    fn waiting_asks_for_bands_up_to_the_cap() {
        let t0 = Instant::now();
        let mut p = BandPool::new(limits());
        assert_eq!(p.take(t0, 1), Ok(None));
        assert_eq!(actions(&mut p), vec![PoolAction::NeedBand]);
        assert_eq!(p.take(t0, 2), Ok(None));
        assert_eq!(p.take(t0, 3), Ok(None));
        assert_eq!(
            actions(&mut p),
            vec![PoolAction::NeedBand],
            "two bands at most"
        );
        assert_eq!(p.take(t0, 4), Err(Failure::Saturated));
        p.handle_band_joined(t0, 10).unwrap();
        p.handle_band_joined(t0, 11).unwrap();
        assert_eq!(p.handle_band_joined(t0, 12), Err(Failure::Saturated));
        assert_eq!(
            actions(&mut p),
            vec![
                PoolAction::Grant {
                    waiter: 1,
                    band: 10
                },
                PoolAction::Grant {
                    waiter: 2,
                    band: 11
                }
            ]
        );
        // A completed exchange hands its band to the next in line.
        p.release(t0, 10, true);
        assert_eq!(
            actions(&mut p),
            vec![PoolAction::Grant {
                waiter: 3,
                band: 10
            }]
        );
        // A broken one frees room for a new band.
        p.release(t0, 11, false);
        assert_eq!(p.open_bands(), 1);
        assert_eq!(p.take(t0, 5), Ok(None));
        assert_eq!(actions(&mut p), vec![PoolAction::NeedBand]);
    }

    #[test]
    fn free_bands_are_reused_then_closed_when_idle() {
        let t0 = Instant::now();
        let mut p = BandPool::new(limits());
        p.handle_band_joined(t0, 1).unwrap();
        p.handle_band_joined(t0, 2).unwrap();
        let t1 = t0 + Duration::from_secs(30);
        assert_eq!(p.take(t1, 9), Ok(Some(2)), "the most recently freed");
        p.release(t1, 2, true);
        assert_eq!(p.poll_timeout(), Some(t0 + Duration::from_secs(60)));
        p.handle_timeout(t0 + Duration::from_secs(60));
        assert_eq!(actions(&mut p), vec![PoolAction::CloseBand(1)]);
        assert_eq!(p.open_bands(), 1);
        p.handle_timeout(t1 + Duration::from_secs(60));
        assert_eq!(actions(&mut p), vec![PoolAction::CloseBand(2)]);
        assert_eq!(p.poll_timeout(), None);
    }

    #[test]
    fn waiters_give_up_and_failed_band_logins_fail_one_at_once() {
        let t0 = Instant::now();
        let mut p = BandPool::new(limits());
        p.take(t0, 1).unwrap();
        p.take(t0 + Duration::from_secs(1), 2).unwrap();
        actions(&mut p);
        p.handle_band_login_failed(t0);
        assert_eq!(
            actions(&mut p),
            vec![PoolAction::Fail {
                waiter: 1,
                failure: Failure::BandLogin
            },],
            "the other asked-for band is still on its way for waiter 2"
        );
        assert_eq!(p.poll_timeout(), Some(t0 + Duration::from_secs(11)));
        p.handle_timeout(t0 + Duration::from_secs(11));
        assert_eq!(
            actions(&mut p),
            vec![PoolAction::Fail {
                waiter: 2,
                failure: Failure::BandWait
            }]
        );
        // The asked-for bands that never came stop counting.
        assert_eq!(p.asked(), 0);
        p.take(t0 + Duration::from_secs(12), 3).unwrap();
        p.cancel(3);
        assert_eq!(p.waiting(), 0);
        assert_eq!(actions(&mut p), vec![PoolAction::NeedBand]);
    }

    #[test]
    fn a_closed_leash_fails_everyone_and_refuses_bands() {
        let t0 = Instant::now();
        let mut p = BandPool::new(limits());
        p.handle_band_joined(t0, 1).unwrap();
        p.handle_band_joined(t0, 2).unwrap();
        assert_eq!(p.take(t0, 7), Ok(Some(2)));
        p.handle_leash_closed();
        assert_eq!(actions(&mut p), vec![PoolAction::CloseBand(1)]);
        p.release(t0, 2, true);
        assert_eq!(p.open_bands(), 0, "a busy band does not come back");
        assert_eq!(p.take(t0, 10), Err(Failure::CellGone));
        assert_eq!(p.handle_band_joined(t0, 3), Err(Failure::CellGone));
        let mut w = BandPool::new(limits());
        w.take(t0, 8).unwrap();
        w.take(t0, 9).unwrap();
        actions(&mut w);
        w.handle_leash_closed();
        assert_eq!(
            actions(&mut w),
            vec![
                PoolAction::Fail {
                    waiter: 8,
                    failure: Failure::CellGone
                },
                PoolAction::Fail {
                    waiter: 9,
                    failure: Failure::CellGone
                }
            ]
        );
        // A free band that died on its own is forgotten.
        let mut q = BandPool::new(limits());
        q.handle_band_joined(t0, 5).unwrap();
        q.handle_band_closed(t0, 5);
        assert_eq!(q.open_bands(), 0);
    }
}
