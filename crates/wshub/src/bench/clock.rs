//! The one clock of a run: microseconds since the Unix epoch, read from the wall clock once at
//! the start and advanced by the monotonic clock after that. Publishers stamp each message with
//! it and receivers subtract from it, so latency is never skewed by a wall-clock step.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Cheap to copy; every task of a run holds the same one.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    origin: Instant,
    origin_micros: u64,
}

impl Clock {
    pub fn start() -> Clock {
        let origin = Instant::now();
        // Before 1970 only on a broken clock; the figures stay right, only `t` is odd then.
        let origin_micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| u64::try_from(since.as_micros()).unwrap_or(u64::MAX));
        Clock { origin, origin_micros }
    }

    /// Now, in microseconds since the Unix epoch.
    pub fn now_micros(&self) -> u64 {
        self.micros_at(Instant::now())
    }

    /// `instant` on this clock.
    pub fn micros_at(&self, instant: Instant) -> u64 {
        let elapsed = instant.saturating_duration_since(self.origin).as_micros();
        self.origin_micros
            .saturating_add(u64::try_from(elapsed).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_clock_moves_with_instants() {
        let clock = Clock::start();
        let now = Instant::now();
        let later = now + Duration::from_millis(5);
        assert_eq!(clock.micros_at(later) - clock.micros_at(now), 5000);
        assert!(clock.now_micros() > 1_600_000_000_000_000, "micros since 1970");
    }
}
