//! Publishers: each sequence stream (a publishing WebSocket connection in [`ws`], or one lane of
//! HTTP keep-alive requests in [`http`]) sends stamped messages at its share of the rate of the
//! current [`Plan`], catching up when it falls behind, and stops at the plan's end. What they
//! share — counts, the first refusal, a reason to stop the run — is in [`Publishing`].

mod http;
mod ws;

pub use http::{HttpLane, publish_http};
pub use ws::publish_ws;

use super::adapter::Adapter;
use super::clock::Clock;
use parking_lot::Mutex;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// How long a wait for a frame lasts when nothing else happens.
const QUIET: Duration = Duration::from_secs(3600);
/// What to do about a hub that rate-limits the benchmark's publishes.
pub const RATE_LIMIT_HINT: &str = "the hub rate-limits publishes: for a benchmark, start it with --set \
     rate_limits.default.capacity=1000000000 --set rate_limits.default.refill_per_sec=1000000000";
/// Replies that mean no publish from this connection will ever be accepted.
const FATAL_CODES: [&str; 3] = ["forbidden", "unauthorized", "token_expired"];

/// What publishers do in one step of a run.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Step number, from 1.
    pub step: u64,
    /// When sending starts (the warm-up, if any, begins here).
    pub start: Instant,
    /// Messages stamped from here (run clock, µs) count.
    pub from: u64,
    /// Sending stops here (run clock, µs)…
    pub until: u64,
    /// …which is this instant.
    pub ends: Instant,
    /// Messages per second, per stream.
    pub rate: f64,
    /// How many streams share the rate. Their schedules are staggered evenly, so the hub sees
    /// one even stream of messages rather than bursts of one message per stream.
    pub streams: u32,
}

impl Plan {
    /// Where `stream`'s schedule starts within one period, as a fraction of it (0 ≤ phase < 1).
    fn phase(&self, stream: u32) -> f64 {
        f64::from(stream % self.streams.max(1)) / f64::from(self.streams.max(1))
    }

    /// When `stream`'s message number `index` (from 0) falls due: `(index + phase) / rate`
    /// after the start, or the plan's end if that is not representable.
    pub fn due_at(&self, stream: u32, index: u64) -> Instant {
        Duration::try_from_secs_f64((index as f64 + self.phase(stream)) / self.rate)
            .ok()
            .and_then(|offset| self.start.checked_add(offset))
            .unwrap_or(self.ends)
    }
}

/// Counts every publisher adds to.
#[derive(Debug)]
pub struct Publishing {
    /// Messages sent, ever.
    pub sent: AtomicU64,
    /// Messages sent inside the current window (reset between steps).
    pub sent_in_window: AtomicU64,
    /// wshub: publishes sent inside the window and acknowledged (`published`, or HTTP 2xx).
    pub acked_in_window: AtomicU64,
    /// wshub: publishes sent inside the window and refused (`error`, or HTTP 4xx/5xx).
    pub refused_in_window: AtomicU64,
    /// The first refusal, as the hub worded it.
    first_refusal: Mutex<Option<String>>,
    /// Why a publisher had to stop: the run cannot go on.
    fatal: Mutex<Option<String>>,
    /// Per stream: the last step it finished.
    finished: Box<[AtomicU64]>,
    /// Woken whenever a stream finishes a step.
    step_finished: Notify,
}

impl Publishing {
    pub fn new(streams: usize) -> Publishing {
        Publishing {
            sent: AtomicU64::new(0),
            sent_in_window: AtomicU64::new(0),
            acked_in_window: AtomicU64::new(0),
            refused_in_window: AtomicU64::new(0),
            first_refusal: Mutex::new(None),
            fatal: Mutex::new(None),
            finished: (0..streams).map(|_| AtomicU64::new(0)).collect(),
            step_finished: Notify::new(),
        }
    }

    /// Starts counting a new window.
    pub fn reset_window(&self) {
        self.sent_in_window.store(0, Ordering::Relaxed);
        self.acked_in_window.store(0, Ordering::Relaxed);
        self.refused_in_window.store(0, Ordering::Relaxed);
    }

    /// The hub answered a publish: accepted it or not; sent inside the window or not.
    fn answered(&self, in_window: bool, accepted: bool) {
        if in_window {
            let counter = if accepted {
                &self.acked_in_window
            } else {
                &self.refused_in_window
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Whether every stream has finished `step` (or stopped for good).
    pub fn all_finished(&self, step: u64) -> bool {
        self.finished.iter().all(|done| done.load(Ordering::Acquire) >= step)
    }

    pub fn first_refusal(&self) -> Option<String> {
        self.first_refusal.lock().clone()
    }

    /// Why the run cannot go on, if a publisher had to stop.
    pub fn fatal(&self) -> Option<String> {
        self.fatal.lock().clone()
    }

    fn finish(&self, stream: u32, step: u64) {
        if let Some(done) = self.finished.get(stream as usize) {
            done.fetch_max(step, Ordering::AcqRel);
        }
        self.step_finished.notify_waiters();
    }

    /// Waits until every stream has finished `step`, or until `deadline`; whether they all did.
    pub async fn wait_all_finished(&self, step: u64, deadline: tokio::time::Instant) -> bool {
        loop {
            let finished = self.step_finished.notified();
            tokio::pin!(finished);
            // Registered before the check, so a finish in between still wakes this.
            finished.as_mut().enable();
            if self.all_finished(step) {
                return true;
            }
            if tokio::time::timeout_at(deadline, finished).await.is_err() {
                return self.all_finished(step);
            }
        }
    }

    fn refuse(&self, reason: String) {
        self.first_refusal.lock().get_or_insert(reason);
    }

    fn fail(&self, stream: u32, reason: String) {
        self.fatal.lock().get_or_insert(reason);
        self.finish(stream, u64::MAX);
    }
}

/// What every publisher of a run shares.
#[derive(Debug)]
pub struct Shared {
    pub clock: Clock,
    pub adapter: Arc<Adapter>,
    pub publishing: Arc<Publishing>,
    pub payload_bytes: usize,
    pub stop: CancellationToken,
}

/// Messages of `stream` in `plan` due by now and not yet sent.
fn due(plan: &Plan, stream: u32, sent: u64) -> u64 {
    let periods = plan.start.elapsed().as_secs_f64() * plan.rate - plan.phase(stream);
    if periods < 0.0 {
        return 0;
    }
    (periods.floor() as u64 + 1).saturating_sub(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_due_follows_the_rate() {
        let plan = Plan {
            step: 1,
            start: Instant::now() - Duration::from_millis(500),
            from: 0,
            until: u64::MAX,
            ends: Instant::now() + Duration::from_secs(60),
            rate: 1000.0,
            streams: 1,
        };
        let owed = due(&plan, 0, 0);
        assert!((500..600).contains(&owed), "{owed}");
        assert_eq!(due(&plan, 0, 10_000), 0, "never negative");
    }

    #[test]
    fn streams_are_staggered_over_one_period() {
        let start = Instant::now();
        let plan = Plan {
            step: 1,
            start,
            from: 0,
            until: u64::MAX,
            ends: start + Duration::from_secs(60),
            rate: 10.0,
            streams: 4,
        };
        let firsts: Vec<Duration> = (0..4).map(|s| plan.due_at(s, 0) - start).collect();
        assert_eq!(
            firsts,
            [0, 25, 50, 75].map(Duration::from_millis),
            "four streams at 10/s each make one message every 25 ms"
        );
        assert_eq!(plan.due_at(1, 2) - start, Duration::from_millis(225));
    }

    #[test]
    fn steps_finish_per_stream() {
        let publishing = Publishing::new(2);
        assert!(publishing.all_finished(0));
        publishing.finish(0, 1);
        assert!(!publishing.all_finished(1));
        publishing.fail(1, "gone".into());
        assert!(publishing.all_finished(1), "a failed stream is done with every step");
        assert_eq!(publishing.fatal().as_deref(), Some("gone"));
        publishing.refuse("rate_limited: slow down".into());
        publishing.refuse("other".into());
        assert_eq!(publishing.first_refusal().as_deref(), Some("rate_limited: slow down"));
        publishing.answered(true, true);
        publishing.answered(true, false);
        publishing.answered(false, true);
        assert_eq!(publishing.acked_in_window.load(Ordering::Relaxed), 1);
        assert_eq!(publishing.refused_in_window.load(Ordering::Relaxed), 1);
        publishing.reset_window();
        assert_eq!(publishing.acked_in_window.load(Ordering::Relaxed), 0);
    }
}
