//! The conflating slot of a rate-limited raw stream: the only queue between the fan-out and
//! the stream's writer.
//!
//! Overflow policy: conflate. A new payload replaces the one not sent yet, so the slot holds at
//! most one frame and nothing stale ever waits in it; the fan-out never waits on it.

use crate::session::outbox::EventFrame;
use parking_lot::Mutex;
use tokio::sync::Notify;

/// The newest payload of a topic not sent yet (or binary frame), and a signal that one arrived.
#[derive(Debug, Default)]
pub struct Latest {
    value: Mutex<Option<EventFrame>>,
    /// Holds at most one wake-up: several puts before the writer looks wake it once.
    changed: Notify,
}

impl Latest {
    /// Keeps `frame` as the next frame to send, replacing any not sent yet. Never waits.
    pub fn put(&self, frame: EventFrame) {
        *self.value.lock() = Some(frame);
        self.changed.notify_one();
    }

    /// Takes the newest payload not sent yet.
    pub fn take(&self) -> Option<EventFrame> {
        self.value.lock().take()
    }

    /// Whether a payload waits to be sent.
    pub fn is_pending(&self) -> bool {
        self.value.lock().is_some()
    }

    /// Resolves once a payload was put since it last resolved (a put made before the wait
    /// began counts).
    pub async fn changed(&self) {
        self.changed.notified().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::SharedText;
    use std::time::Duration;

    fn text(s: &str) -> EventFrame {
        EventFrame::Text(SharedText::from_vec(s.as_bytes().to_vec()).expect("utf-8"))
    }

    #[test]
    fn keeps_only_the_newest() {
        let latest = Latest::default();
        assert!(latest.take().is_none());
        latest.put(text("1"));
        latest.put(text("2"));
        assert!(latest.is_pending());
        let Some(EventFrame::Text(newest)) = latest.take() else {
            panic!("the newest text frame")
        };
        assert_eq!(newest.as_bytes(), b"2");
        assert!(latest.take().is_none(), "taken once");
        assert!(!latest.is_pending());
    }

    #[tokio::test]
    async fn a_put_before_the_wait_is_not_missed() {
        let latest = Latest::default();
        latest.put(text("1"));
        tokio::time::timeout(Duration::from_secs(1), latest.changed())
            .await
            .expect("the earlier put wakes the waiter");
    }
}
