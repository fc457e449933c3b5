//! Per-connection rate limits: a token bucket per request type and the abuse counter.
//!
//! On the message path this runs between decoding a frame and dispatching it: a
//! request whose bucket is empty is refused with `rate_limited` and never executed.
//! Refusals of every kind are counted over a sliding 10 s window; past
//! `abuse_close_after` the connection is closed with 1008.

use crate::config::RateLimitsConfig;
use crate::token_bucket::TokenBucket;
use std::collections::VecDeque;
use std::time::Duration;
use tokio::time::Instant;

/// The window over which refusals are counted for the abuse close.
pub const ABUSE_WINDOW: Duration = Duration::from_secs(10);

/// Which bucket a request is charged to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BucketKind {
    /// `ping`.
    Ping,
    /// `subscribe`.
    Subscribe,
    /// `unsubscribe`.
    Unsubscribe,
    /// Everything else, malformed frames included.
    Default,
}

impl BucketKind {
    /// The bucket of a request type.
    pub fn of(kind: &str) -> BucketKind {
        match kind {
            "ping" => BucketKind::Ping,
            "subscribe" => BucketKind::Subscribe,
            "unsubscribe" => BucketKind::Unsubscribe,
            _ => BucketKind::Default,
        }
    }

    /// The request type named in a `rate_limited` message.
    pub fn name(self) -> &'static str {
        match self {
            BucketKind::Ping => "ping",
            BucketKind::Subscribe => "subscribe",
            BucketKind::Unsubscribe => "unsubscribe",
            BucketKind::Default => "default",
        }
    }
}

/// What the limiter decided about one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    /// Go ahead.
    Allowed,
    /// Refuse with `rate_limited`; a token is back after this many seconds.
    Limited { retry_after: f64 },
    /// Too many refusals: close the connection with 1008.
    Abusive,
}

/// One connection's buckets and refusal history.
#[derive(Debug)]
pub struct RateLimiter {
    ping: TokenBucket,
    subscribe: TokenBucket,
    unsubscribe: TokenBucket,
    default: TokenBucket,
    abuse_close_after: usize,
    /// Times of recent refusals, at most `abuse_close_after + 1` of them.
    refusals: VecDeque<Instant>,
}

impl RateLimiter {
    /// Full buckets per the configuration.
    pub fn new(config: &RateLimitsConfig, now: Instant) -> Self {
        RateLimiter {
            ping: TokenBucket::new(config.ping, now),
            subscribe: TokenBucket::new(config.subscribe, now),
            unsubscribe: TokenBucket::new(config.unsubscribe, now),
            default: TokenBucket::new(config.default, now),
            abuse_close_after: config.abuse_close_after as usize,
            refusals: VecDeque::new(),
        }
    }

    /// Charges one request to its bucket.
    pub fn check(&mut self, kind: BucketKind, now: Instant) -> Verdict {
        let bucket = match kind {
            BucketKind::Ping => &mut self.ping,
            BucketKind::Subscribe => &mut self.subscribe,
            BucketKind::Unsubscribe => &mut self.unsubscribe,
            BucketKind::Default => &mut self.default,
        };
        match bucket.try_take(now) {
            Ok(()) => Verdict::Allowed,
            Err(retry_after) => self.refused(now).unwrap_or(Verdict::Limited { retry_after }),
        }
    }

    /// Counts a refusal that was not a rate limit (a malformed frame). Returns
    /// [`Verdict::Abusive`] when it tips the connection over the abuse threshold.
    pub fn refused(&mut self, now: Instant) -> Option<Verdict> {
        while self
            .refusals
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= ABUSE_WINDOW)
        {
            self.refusals.pop_front();
        }
        self.refusals.push_back(now);
        // Only whether the count exceeds the threshold matters: keep no more than that.
        while self.refusals.len() > self.abuse_close_after + 1 {
            self.refusals.pop_front();
        }
        if self.refusals.len() > self.abuse_close_after {
            return Some(Verdict::Abusive);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> RateLimitsConfig {
        RateLimitsConfig::default()
    }

    #[tokio::test(start_paused = true)]
    async fn request_types_use_their_own_buckets() {
        let now = Instant::now();
        let mut limiter = RateLimiter::new(&config(), now);
        for _ in 0..30 {
            assert_eq!(limiter.check(BucketKind::Subscribe, now), Verdict::Allowed);
        }
        assert!(matches!(
            limiter.check(BucketKind::Subscribe, now),
            Verdict::Limited { .. }
        ));
        assert_eq!(
            limiter.check(BucketKind::Unsubscribe, now),
            Verdict::Allowed,
            "separate bucket"
        );
        assert_eq!(limiter.check(BucketKind::Default, now), Verdict::Allowed);
        assert_eq!(BucketKind::of("publish"), BucketKind::Default);
        assert_eq!(BucketKind::of("token.create"), BucketKind::Default);
    }

    #[tokio::test(start_paused = true)]
    async fn more_than_abuse_close_after_refusals_in_ten_seconds_is_abusive() {
        let mut cfg = config();
        cfg.abuse_close_after = 3;
        let start = Instant::now();
        let mut limiter = RateLimiter::new(&cfg, start);
        for _ in 0..3 {
            assert_eq!(limiter.refused(start), None);
        }
        // Refusals older than the window no longer count.
        let later = start + ABUSE_WINDOW;
        assert_eq!(limiter.refused(later), None);
        assert_eq!(limiter.refused(later), None);
        assert_eq!(limiter.refused(later), None);
        assert_eq!(limiter.refused(later), Some(Verdict::Abusive));
    }
}
