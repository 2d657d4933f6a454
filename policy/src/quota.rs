//! Per-credential rate limits (governor, GCRA): a burst allowance refilled at a steady rate.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// The rate limiter for all credentials of one server.
pub struct Quotas {
    limiter: DefaultKeyedRateLimiter<i64>,
    clock: DefaultClock,
    burst: u32,
}

/// A call over its quota: when to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverQuota {
    /// Wait at least this long.
    pub retry_after: Duration,
    /// The burst size, for the RateLimit-Limit header.
    pub limit: u32,
}

impl Quotas {
    /// `per_second` requests per second sustained (fractions allowed: 0.5 is one every two
    /// seconds), bursts of up to `burst`. Values below the minimum are raised to it.
    pub fn new(per_second: f64, burst: u32) -> Self {
        let period = Duration::from_secs_f64(1.0 / per_second.max(1e-6));
        let burst_nz = NonZeroU32::new(burst.max(1)).expect("at least one");
        let quota = Quota::with_period(period.max(Duration::from_nanos(1)))
            .expect("a non-zero period")
            .allow_burst(burst_nz);
        Self {
            limiter: RateLimiter::keyed(quota),
            clock: DefaultClock::default(),
            burst: burst_nz.get(),
        }
    }

    /// Takes one request from `credential_id`'s allowance, or says how long to wait.
    pub fn check(&self, credential_id: i64) -> Result<(), OverQuota> {
        self.limiter.check_key(&credential_id).map_err(|not_until| OverQuota {
            retry_after: not_until.wait_time_from(self.clock.now()),
            limit: self.burst,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_allowed_then_refused_per_credential() {
        let quotas = Quotas::new(0.001, 3);
        for _ in 0..3 {
            assert!(quotas.check(1).is_ok());
        }
        let over = quotas.check(1).unwrap_err();
        assert!(over.retry_after > Duration::from_secs(100), "{over:?}");
        assert_eq!(over.limit, 3);
        assert!(quotas.check(2).is_ok(), "another credential has its own allowance");
    }
}
