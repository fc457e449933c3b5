//! How far each subscription of a connection has been written to its socket.
//!
//! The writer records the offset of every event it flushed; a reconnection token and
//! the state a closing connection leaves behind are built from this, so a resumed
//! session replays exactly what never reached the socket.

use super::outbox::{StreamMark, SubscriptionSlot};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;

/// The last offset written per subscription slot. Shared by a session and its writer.
#[derive(Debug, Clone, Default)]
pub struct Delivered {
    slots: Arc<Mutex<HashMap<SubscriptionSlot, u64>>>,
}

impl Delivered {
    /// A subscription starts: everything up to `offset` counts as delivered.
    pub fn start(&self, slot: SubscriptionSlot, offset: u64) {
        self.slots.lock().insert(slot, offset);
    }

    /// A subscription ended; events of it still queued are no longer tracked.
    pub fn stop(&self, slot: SubscriptionSlot) {
        self.slots.lock().remove(&slot);
    }

    /// Events were written (one lock per flushed batch, not per event).
    pub fn record(&self, marks: &[StreamMark]) {
        if marks.is_empty() {
            return;
        }
        let mut slots = self.slots.lock();
        for mark in marks {
            if let Some(offset) = slots.get_mut(&mark.slot) {
                *offset = mark.offset;
            }
        }
    }

    /// The last offset written for a subscription.
    pub fn get(&self, slot: SubscriptionSlot) -> Option<u64> {
        self.slots.lock().get(&slot).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(slot: u32, offset: u64) -> StreamMark {
        StreamMark {
            slot,
            offset,
            published_at: 0,
        }
    }

    #[test]
    fn records_only_live_slots() {
        let delivered = Delivered::default();
        delivered.start(1, 10);
        delivered.record(&[mark(1, 11), mark(2, 5)]);
        assert_eq!(delivered.get(1), Some(11));
        assert_eq!(delivered.get(2), None, "an unknown slot is not tracked");
        delivered.stop(1);
        delivered.record(&[mark(1, 12)]);
        assert_eq!(delivered.get(1), None);
    }
}
