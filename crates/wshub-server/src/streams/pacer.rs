//! When a rate-limited raw stream may send its next frame.
//!
//! At most one frame per period, on average exactly `rate_hz` while payloads keep coming, and
//! no waiting when the stream was idle: a payload arriving a period or more after the last frame
//! goes out at once, not at the next tick of a fixed clock.

use std::time::Duration;
use tokio::time::Instant;

/// A send later than its slot by more than this starts the count over instead of catching up
/// (as tokio's `Interval` does), so a late wake-up never causes a burst.
const MAX_SLACK: Duration = Duration::from_millis(5);

/// Shortest and longest period: `rate_hz` is any positive number in the config.
const MIN_PERIOD: Duration = Duration::from_micros(100);
const MAX_PERIOD: Duration = Duration::from_secs(86_400);

/// The time between frames for `rate_hz` (validated above 0), kept within sane bounds.
pub fn period_of(rate_hz: f64) -> Duration {
    Duration::try_from_secs_f64(1.0 / rate_hz)
        .unwrap_or(MAX_PERIOD)
        .clamp(MIN_PERIOD, MAX_PERIOD)
}

/// The schedule of one stream's frames.
#[derive(Debug, Clone)]
pub struct Pacer {
    period: Duration,
    slack: Duration,
    /// When the next frame may go; `None` before the first.
    next: Option<Instant>,
}

impl Pacer {
    /// A schedule of at most one frame per `period`.
    pub fn new(period: Duration) -> Pacer {
        Pacer {
            period,
            slack: MAX_SLACK.min(period / 2),
            next: None,
        }
    }

    /// The earliest a frame may go, at `now`: `now` itself when the last frame went at least a
    /// period ago.
    pub fn earliest(&self, now: Instant) -> Instant {
        self.next.map_or(now, |next| next.max(now))
    }

    /// Records a frame sent at `now` (not before [`earliest`](Self::earliest)). The next slot is
    /// a period after the one this frame was due in, so small wake-up delays do not lower the
    /// rate; a frame sent well after its slot (after an idle spell, or a late wake-up) counts the
    /// period from `now`.
    pub fn sent(&mut self, now: Instant) {
        let due = self.next.unwrap_or(now);
        self.next = Some(if now > due + self.slack {
            now + self.period
        } else {
            due + self.period
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PERIOD: Duration = Duration::from_nanos(33_333_333);

    #[test]
    fn a_busy_stream_holds_the_rate_despite_late_wakeups() {
        let start = Instant::now();
        let end = start + Duration::from_secs(1);
        let mut pacer = Pacer::new(PERIOD);
        let mut now = start;
        let mut sent = Vec::new();
        // A payload is always waiting; every wake-up is 1–3 ms late.
        while now < end {
            let at = pacer.earliest(now);
            now = at + Duration::from_millis(1 + sent.len() as u64 % 3);
            if now >= end {
                break;
            }
            pacer.sent(now);
            sent.push(now);
        }
        assert_eq!(sent.len(), 30, "30 Hz for one second");
        for pair in sent.windows(2) {
            assert!(pair[1] - pair[0] >= PERIOD - MAX_SLACK, "never a burst");
        }
    }

    #[test]
    fn an_idle_stream_sends_at_once() {
        let start = Instant::now();
        let mut pacer = Pacer::new(PERIOD);
        assert_eq!(pacer.earliest(start), start, "the first frame waits for nothing");
        pacer.sent(start);
        let soon = start + Duration::from_millis(10);
        assert_eq!(pacer.earliest(soon), start + PERIOD, "too soon: held to the next slot");
        // A slow publisher (5 per second): each payload goes out the moment it arrives.
        for n in 1..10 {
            let now = start + Duration::from_millis(200 * n);
            assert_eq!(pacer.earliest(now), now);
            pacer.sent(now);
        }
    }

    #[test]
    fn a_late_send_restarts_the_count_instead_of_catching_up() {
        let start = Instant::now();
        let mut pacer = Pacer::new(PERIOD);
        pacer.sent(start);
        let late = start + PERIOD * 3;
        pacer.sent(late);
        assert_eq!(pacer.earliest(late), late + PERIOD);
    }

    #[test]
    fn periods_stay_within_bounds() {
        assert_eq!(period_of(2.0), Duration::from_millis(500));
        assert_eq!(period_of(f64::MIN_POSITIVE), MAX_PERIOD);
        assert_eq!(period_of(1e12), MIN_PERIOD);
    }
}
