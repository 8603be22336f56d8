//! The rate limits on `governor`'s fake clock: no sleeps.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::FakeRelativeClock;
use relay_server::limits::{LimitsConfig, LimitsError, RateLimits, RateQuota, RetryAfter};

fn limits(config: LimitsConfig) -> (RateLimits<FakeRelativeClock>, FakeRelativeClock) {
    let clock = FakeRelativeClock::default();
    (
        RateLimits::with_clock(config, clock.clone()).unwrap(),
        clock,
    )
}

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn five_auth_attempts_per_minute_per_source() {
    let (limits, clock) = limits(LimitsConfig::default());
    for _ in 0..5 {
        limits.check_auth(ip(1)).unwrap();
    }
    // Spent: one more attempt every 12 s.
    assert_eq!(limits.check_auth(ip(1)), Err(RetryAfter(secs(12))));
    limits.check_auth(ip(2)).unwrap();
    clock.advance(secs(11));
    assert_eq!(limits.check_auth(ip(1)), Err(RetryAfter(secs(1))));
    clock.advance(secs(1));
    limits.check_auth(ip(1)).unwrap();
    assert_eq!(limits.check_auth(ip(1)), Err(RetryAfter(secs(12))));
    // A full minute of quiet restores the whole burst.
    clock.advance(secs(60));
    for _ in 0..5 {
        limits.check_auth(ip(1)).unwrap();
    }
    assert!(limits.check_auth(ip(1)).is_err());
}

#[test]
fn ipv6_sources_are_keyed_by_their_64() {
    let (limits, _clock) = limits(LimitsConfig::default());
    let host = |a: u16, last: u16| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, a, 0, 0, 0, last));
    for last in 1..=5 {
        limits.check_auth(host(1, last)).unwrap();
    }
    assert!(
        limits.check_auth(host(1, 99)).is_err(),
        "same /64, new address"
    );
    limits.check_auth(host(2, 1)).unwrap();

    // An IPv4-mapped address is its IPv4 address.
    let v4 = Ipv4Addr::new(198, 51, 100, 7);
    for _ in 0..5 {
        limits.check_auth(IpAddr::V4(v4)).unwrap();
    }
    assert!(limits.check_auth(IpAddr::V6(v4.to_ipv6_mapped())).is_err());
}

#[test]
fn ten_creations_per_hour_per_sub() {
    let (limits, clock) = limits(LimitsConfig::default());
    for _ in 0..10 {
        limits.check_creation("alice").unwrap();
    }
    let err = limits.check_creation("alice").unwrap_err();
    assert_eq!(err, RetryAfter(secs(360)));
    assert_eq!(err.secs(), 360);
    limits.check_creation("bob").unwrap();
    clock.advance(secs(360));
    limits.check_creation("alice").unwrap();
    assert!(limits.check_creation("alice").is_err());
}

#[test]
fn quotas_are_configurable() {
    let config = LimitsConfig {
        auth: RateQuota::new(NonZeroU32::new(2).unwrap(), secs(10)),
        creation: RateQuota::new(NonZeroU32::new(1).unwrap(), secs(100)),
        ..LimitsConfig::default()
    };
    let (limits, _clock) = limits(config);
    limits.check_auth(ip(1)).unwrap();
    limits.check_auth(ip(1)).unwrap();
    assert_eq!(limits.check_auth(ip(1)), Err(RetryAfter(secs(5))));
    limits.check_creation("alice").unwrap();
    assert_eq!(limits.check_creation("alice"), Err(RetryAfter(secs(100))));
}

#[test]
fn idle_keys_are_dropped_at_the_threshold() {
    let config = LimitsConfig {
        retain_threshold: 100,
        ..LimitsConfig::default()
    };
    let (limits, clock) = limits(config);
    for last in 0..99 {
        limits.check_auth(ip(last)).unwrap();
    }
    assert_eq!(limits.tracked_keys(), 99);
    // A minute later every one of them has recovered; the hundredth key
    // triggers the sweep.
    clock.advance(secs(61));
    limits.check_auth(ip(200)).unwrap();
    assert_eq!(limits.tracked_keys(), 1);
}

#[test]
fn live_keys_survive_a_sweep_and_limits_still_hold() {
    let config = LimitsConfig {
        retain_threshold: 10,
        ..LimitsConfig::default()
    };
    let (limits, _clock) = limits(config);
    for _ in 0..5 {
        limits.check_auth(ip(1)).unwrap();
    }
    // Many fresh sources push past the threshold several times over.
    for last in 2..60 {
        limits.check_auth(ip(last)).unwrap();
    }
    assert_eq!(limits.tracked_keys(), 59, "no key had recovered");
    assert!(
        limits.check_auth(ip(1)).is_err(),
        "the sweep forgot a spent source"
    );
}

#[test]
fn retain_recent_on_demand() {
    let (limits, clock) = limits(LimitsConfig::default());
    limits.check_auth(ip(1)).unwrap();
    limits.check_creation("alice").unwrap();
    assert_eq!(limits.tracked_keys(), 2);
    limits.retain_recent();
    assert_eq!(limits.tracked_keys(), 2, "none has recovered yet");
    clock.advance(secs(3600));
    limits.retain_recent();
    assert_eq!(limits.tracked_keys(), 0);
}

#[test]
fn retry_after_in_whole_seconds() {
    assert_eq!(RetryAfter(Duration::from_millis(1200)).secs(), 2);
    assert_eq!(RetryAfter(Duration::ZERO).secs(), 1);
    assert_eq!(RetryAfter(Duration::from_millis(1)).secs(), 1);
    assert_eq!(RetryAfter(secs(12)).secs(), 12);
}

#[test]
fn unusable_configurations() {
    let zero = LimitsConfig {
        auth: RateQuota::new(NonZeroU32::new(5).unwrap(), Duration::ZERO),
        ..LimitsConfig::default()
    };
    assert_eq!(
        RateLimits::with_clock(zero, FakeRelativeClock::default()).unwrap_err(),
        LimitsError::ZeroPeriod { limit: "auth" }
    );
    let no_threshold = LimitsConfig {
        retain_threshold: 0,
        ..LimitsConfig::default()
    };
    assert_eq!(
        RateLimits::new(no_threshold).unwrap_err(),
        LimitsError::ZeroThreshold
    );
    assert!(RateLimits::new(LimitsConfig::default()).is_ok());
}
