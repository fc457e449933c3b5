//! Graceful shutdown: readiness off, refuse new work, flush, close with 1001, exit.
//!
//! The order (CONTRACT §3): [`Shutdown::begin`] flips readiness and makes new
//! upgrades answer 503 and new requests `unavailable`; sessions then finish what is
//! in flight, flush their queues and close with 1001; the server waits for their
//! tasks at most `server.shutdown_timeout`.

use std::sync::atomic::{AtomicBool, Ordering};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Draining state shared by the accept loop, the HTTP handlers and every session.
#[derive(Debug, Default)]
pub struct Shutdown {
    draining: AtomicBool,
    drain: CancellationToken,
    /// Every connection task, so the server can wait for them.
    pub tasks: TaskTracker,
}

impl Shutdown {
    /// Starts draining.
    pub fn begin(&self) {
        self.draining.store(true, Ordering::Release);
        self.drain.cancel();
        self.tasks.close();
    }

    /// Whether the node is draining.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Resolves when draining starts.
    pub async fn draining(&self) {
        self.drain.cancelled().await
    }
}
