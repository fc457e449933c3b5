//! The handshake rate limit (`websocket.handshake_rate_per_ip`): a token bucket per client IP,
//! charged once per WebSocket upgrade that passed the origin check.
//!
//! It runs in `upgrade` before a connection slot is taken or a session spawned, so a reconnect
//! storm from one address costs one map lookup per attempt and a 429, and cannot crowd out other
//! clients. All buckets sit behind one short lock, never held across an `.await`.

use crate::config::Bucket;
use crate::token_bucket::TokenBucket;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;
use tokio::time::Instant;

/// A bucket untouched for this long is forgotten (if it has refilled completely by then).
pub const IDLE_AFTER: Duration = Duration::from_secs(60);
/// …and whatever its rate, after this long: bounds memory for very slow refill rates.
const FORGET_AFTER: Duration = Duration::from_secs(3600);
/// How often a check also sweeps idle buckets.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// Per-IP handshake buckets.
#[derive(Debug)]
pub struct HandshakeRate {
    config: Bucket,
    /// Idle time after which a bucket is full again and can be dropped without loss:
    /// at least [`IDLE_AFTER`], at most [`FORGET_AFTER`].
    idle_ttl: Duration,
    state: Mutex<Buckets>,
}

#[derive(Debug)]
struct Buckets {
    by_ip: HashMap<IpAddr, TokenBucket>,
    next_sweep: Option<Instant>,
}

impl HandshakeRate {
    /// Buckets of `config.capacity` tokens refilled at `config.refill_per_sec` (validated: ≥ 1, > 0).
    pub fn new(config: Bucket) -> Self {
        let capacity = f64::from(config.capacity.max(1));
        let refill_per_sec = config.refill_per_sec;
        // A bucket dropped before it is full would hand a slow-refill client a fresh burst.
        let to_full = Duration::try_from_secs_f64(capacity / refill_per_sec).unwrap_or(FORGET_AFTER);
        HandshakeRate {
            config,
            idle_ttl: to_full.clamp(IDLE_AFTER, FORGET_AFTER),
            state: Mutex::new(Buckets {
                by_ip: HashMap::new(),
                next_sweep: None,
            }),
        }
    }

    /// Charges one handshake from `ip` at `now`. `Err` carries the seconds until a token is
    /// back; a refused handshake costs nothing.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), f64> {
        let mut state = self.state.lock();
        if state.next_sweep.is_none_or(|at| now >= at) {
            let idle_ttl = self.idle_ttl;
            state
                .by_ip
                .retain(|_, bucket| now.saturating_duration_since(bucket.last()) < idle_ttl);
            state.next_sweep = Some(now + SWEEP_EVERY);
        }
        let config = self.config;
        state
            .by_ip
            .entry(ip)
            .or_insert_with(|| TokenBucket::new(config, now))
            .try_take(now)
    }

    /// Addresses with a bucket (handshakes within the idle time, or not yet swept).
    pub fn tracked(&self) -> usize {
        self.state.lock().by_ip.len()
    }
}

/// A `Retry-After` value for a wait of `seconds`: whole seconds, rounded up, at least 1.
pub fn retry_after_secs(seconds: f64) -> u64 {
    // `as` saturates: an absurd wait (a tiny refill rate) becomes u64::MAX, not a panic.
    seconds.ceil().max(1.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1));
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 2));

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_burst_of_capacity_then_refused_until_a_token_is_back() {
        let rate = HandshakeRate::new(Bucket::new(5, 1.0));
        let t0 = Instant::now();
        for i in 0..5 {
            assert_eq!(rate.check(A, t0), Ok(()), "handshake {i}");
        }
        let wait = rate.check(A, t0).expect_err("the 6th is over the limit");
        assert!((wait - 1.0).abs() < 1e-9, "one token at 1/s is 1 s away: {wait}");
        assert_eq!(rate.check(B, t0), Ok(()), "another address has its own bucket");

        let wait = rate.check(A, t0 + ms(400)).expect_err("not refilled yet");
        assert!((wait - 0.6).abs() < 1e-9, "refusals cost nothing: {wait}");
        assert_eq!(rate.check(A, t0 + ms(1000)), Ok(()));
        assert!(rate.check(A, t0 + ms(1000)).is_err());
    }

    #[test]
    fn refill_never_exceeds_capacity() {
        let rate = HandshakeRate::new(Bucket::new(2, 10.0));
        let t0 = Instant::now();
        assert_eq!(rate.check(A, t0), Ok(()));
        let later = t0 + Duration::from_secs(30);
        assert_eq!(rate.check(A, later), Ok(()));
        assert_eq!(rate.check(A, later), Ok(()));
        assert!(
            rate.check(A, later).is_err(),
            "a long pause refills to capacity, not beyond"
        );
    }

    #[test]
    fn idle_buckets_are_swept() {
        let rate = HandshakeRate::new(Bucket::new(5, 1.0));
        let t0 = Instant::now();
        rate.check(A, t0).expect("first");
        rate.check(B, t0 + Duration::from_secs(30)).expect("first");
        assert_eq!(rate.tracked(), 2);
        // A has been idle for IDLE_AFTER, B for half of it: only A goes.
        rate.check(B, t0 + IDLE_AFTER).expect("B still has tokens");
        assert_eq!(rate.tracked(), 1);
        rate.check(B, t0 + IDLE_AFTER * 3).expect("refilled");
        assert_eq!(rate.tracked(), 1, "B was idle, swept and started afresh");
    }

    #[test]
    fn a_slow_bucket_is_kept_until_it_would_be_full() {
        // 100 tokens at 1/s: 100 s to refill, so dropping it after 60 s would reset it early.
        let rate = HandshakeRate::new(Bucket::new(100, 1.0));
        let t0 = Instant::now();
        for _ in 0..100 {
            rate.check(A, t0).expect("burst");
        }
        rate.check(B, t0 + Duration::from_secs(61)).expect("another address");
        assert_eq!(rate.tracked(), 2, "A is not full yet at 61 s");
        rate.check(B, t0 + Duration::from_secs(101)).expect("another address");
        assert_eq!(rate.tracked(), 1, "A is full by 100 s and forgotten");
    }

    #[test]
    fn retry_after_is_whole_seconds_at_least_one() {
        assert_eq!(retry_after_secs(0.0), 1);
        assert_eq!(retry_after_secs(0.2), 1);
        assert_eq!(retry_after_secs(1.0), 1);
        assert_eq!(retry_after_secs(1.01), 2);
        assert_eq!(retry_after_secs(f64::INFINITY), u64::MAX);
    }
}
