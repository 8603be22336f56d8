//! The reconnect policy of seed 004 §6.1: 1 s, ×2, at most 30 s, at most 10
//! attempts, with jitter so that many clients cut off together do not return
//! together.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// When to retry a lost session, and when to give up.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReconnectPolicy {
    /// Delay before the first retry.
    #[serde(with = "secs_f64")]
    pub initial_delay: Duration,
    /// Cap on any single delay.
    #[serde(with = "secs_f64")]
    pub max_delay: Duration,
    /// Growth factor between attempts.
    pub backoff_factor: f64,
    /// Attempts before giving up (0 = never reconnect).
    pub max_attempts: u32,
    /// Fraction of each delay that is randomised (0.2 = ±20 %).
    pub jitter: f64,
    /// After `max_attempts`, keep trying at `max_delay` instead of giving
    /// up (`httvps connect --keep-trying`, for a machine left unattended).
    pub keep_trying: bool,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        ReconnectPolicy {
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
            backoff_factor: 2.0,
            max_attempts: 10,
            jitter: 0.2,
            keep_trying: false,
        }
    }
}

impl ReconnectPolicy {
    /// The delay before attempt `attempt` (1-based), given a uniform sample
    /// `unit` in [0, 1) for the jitter; `None` once attempts are used up
    /// (never with `keep_trying`, unless reconnecting is off altogether).
    /// Pure, so the schedule is testable without a clock or a random source.
    pub fn delay(&self, attempt: u32, unit: f64) -> Option<Duration> {
        if attempt == 0 || self.max_attempts == 0 {
            return None;
        }
        if attempt > self.max_attempts && !self.keep_trying {
            return None;
        }
        // Capped before the power, so a long unattended run cannot overflow.
        let exponent = attempt.min(64) as i32 - 1;
        let base = self.initial_delay.as_secs_f64() * self.backoff_factor.powi(exponent);
        let capped = base.min(self.max_delay.as_secs_f64());
        let spread = capped * self.jitter.clamp(0.0, 1.0);
        let jittered = capped - spread + 2.0 * spread * unit.clamp(0.0, 1.0);
        Some(Duration::from_secs_f64(
            jittered.clamp(0.0, self.max_delay.as_secs_f64()),
        ))
    }
}

/// Durations as seconds (fractions allowed) in TOML and JSON; for
/// `#[serde(with = "secs_f64")]` in every protocol's profile.
pub mod secs_f64 {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    /// Writes seconds as a float.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    /// Reads non-negative, finite seconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        if !secs.is_finite() || secs < 0.0 {
            return Err(serde::de::Error::custom(
                "a duration must be a non-negative number of seconds",
            ));
        }
        Ok(Duration::from_secs_f64(secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_seed_schedule_without_jitter() {
        let policy = ReconnectPolicy {
            jitter: 0.0,
            ..Default::default()
        };
        let delays: Vec<u64> = (1..=10)
            .map(|a| policy.delay(a, 0.5).unwrap().as_secs())
            .collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30, 30, 30, 30]);
        assert_eq!(policy.delay(11, 0.5), None);
        assert_eq!(policy.delay(0, 0.5), None);
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let policy = ReconnectPolicy::default();
        for attempt in 1..=10 {
            let low = policy.delay(attempt, 0.0).unwrap();
            let high = policy.delay(attempt, 0.999).unwrap();
            let mid = policy.delay(attempt, 0.5).unwrap();
            assert!(low <= mid && mid <= high);
            assert!(high <= policy.max_delay);
            assert!(low.as_secs_f64() >= mid.as_secs_f64() * 0.79);
        }
    }

    #[test]
    fn keep_trying_goes_on_at_the_longest_interval() {
        let policy = ReconnectPolicy {
            jitter: 0.0,
            keep_trying: true,
            ..Default::default()
        };
        for attempt in [11, 12, 1_000, u32::MAX] {
            assert_eq!(
                policy.delay(attempt, 0.5),
                Some(policy.max_delay),
                "{attempt}"
            );
        }
        let off = ReconnectPolicy {
            max_attempts: 0,
            ..policy
        };
        assert_eq!(off.delay(1, 0.5), None, "reconnecting off stays off");
    }

    #[test]
    fn zero_attempts_means_never() {
        let policy = ReconnectPolicy {
            max_attempts: 0,
            ..Default::default()
        };
        assert_eq!(policy.delay(1, 0.5), None);
    }
}
