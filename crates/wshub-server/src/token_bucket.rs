//! A token bucket: `capacity` requests at once, refilled continuously at `refill_per_sec`.
//! Used per connection and request type (`session::rate_limit`) and per client IP for
//! handshakes (`accept::handshake_rate`).

use crate::config::Bucket;
use tokio::time::Instant;

/// A token bucket: up to `capacity` requests at once, refilled continuously.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    tokens: f64,
    capacity: f64,
    refill_per_sec: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(config: Bucket, now: Instant) -> Self {
        let capacity = f64::from(config.capacity);
        TokenBucket {
            tokens: capacity,
            capacity,
            refill_per_sec: config.refill_per_sec,
            last: now,
        }
    }

    /// When a token was last taken or refused.
    pub fn last(&self) -> Instant {
        self.last
    }

    /// Takes one token, or returns the seconds until one is back.
    pub fn try_take(&mut self, now: Instant) -> Result<(), f64> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.refill_per_sec).min(self.capacity);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err((1.0 - self.tokens) / self.refill_per_sec)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn bucket_allows_a_burst_then_reports_exact_retry_after() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(Bucket::new(3, 2.0), start);
        for _ in 0..3 {
            assert_eq!(bucket.try_take(start), Ok(()));
        }
        let retry = bucket.try_take(start).expect_err("empty");
        assert!(
            (retry - 0.5).abs() < 1e-9,
            "one token at 2/s is 0.5 s away, got {retry}"
        );
        let later = start + Duration::from_millis(250);
        let retry = bucket.try_take(later).expect_err("half a token");
        assert!((retry - 0.25).abs() < 1e-9, "{retry}");
        assert_eq!(bucket.try_take(start + Duration::from_millis(500)), Ok(()));
    }

    #[tokio::test(start_paused = true)]
    async fn refill_never_exceeds_capacity() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(Bucket::new(2, 10.0), start);
        let much_later = start + Duration::from_secs(3600);
        assert!(bucket.try_take(much_later).is_ok());
        assert!(bucket.try_take(much_later).is_ok());
        assert!(bucket.try_take(much_later).is_err());
    }
}
