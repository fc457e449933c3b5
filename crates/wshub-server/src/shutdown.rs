//! Graceful shutdown: readiness off, refuse new work, flush, close with 1001, exit.
//!
//! The order (CONTRACT §3): [`Shutdown::begin`] flips readiness and makes new
//! upgrades answer 503 and new requests `unavailable`; sessions then finish what is
//! in flight (handler calls, until [`Shutdown::deadline`]), flush their queues and close
//! with 1001; the server waits for their tasks at most `server.shutdown_timeout`.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long before the end of `shutdown_timeout` in-flight handler calls are given up (at most
/// a tenth of it).
const CLOSE_MARGIN: Duration = Duration::from_millis(100);

/// Draining state shared by the accept loop, the HTTP handlers and every session.
#[derive(Debug, Default)]
pub struct Shutdown {
    draining: AtomicBool,
    drain: CancellationToken,
    /// When in-flight handler calls are given up: just before the drain's `shutdown_timeout` ends.
    deadline: OnceLock<Instant>,
    /// Every connection task, so the server can wait for them.
    pub tasks: TaskTracker,
}

impl Shutdown {
    /// Starts draining; in-flight work may take `grace` to finish.
    pub fn begin(&self, grace: Duration) {
        // Calls are given up a little before `grace` runs out, so their `unavailable` replies
        // are queued before the server closes whatever is still open at `grace`.
        let margin = CLOSE_MARGIN.min(grace / 10);
        // Set before the flag and the token, so whoever sees the drain sees the deadline.
        let _ = self.deadline.set(Instant::now() + grace - margin);
        self.draining.store(true, Ordering::Release);
        self.drain.cancel();
        self.tasks.close();
    }

    /// Whether the node is draining.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// When in-flight handler calls are given up (answered `unavailable`); `None` until
    /// draining starts.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline.get().copied()
    }

    /// Resolves when draining starts.
    pub async fn draining(&self) {
        self.drain.cancelled().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn calls_are_given_up_just_before_the_grace_ends() {
        for (grace, before) in [(10_000, 100), (1_000, 100), (200, 20)] {
            let shutdown = Shutdown::default();
            assert_eq!(shutdown.deadline(), None);
            let started = Instant::now();
            shutdown.begin(Duration::from_millis(grace));
            assert!(shutdown.is_draining());
            let deadline = shutdown.deadline().expect("set by begin");
            assert_eq!(
                deadline - started,
                Duration::from_millis(grace - before),
                "grace {grace} ms"
            );
        }
    }
}
