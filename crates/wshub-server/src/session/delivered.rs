//! How far each subscription of a connection has been written to its socket.
//!
//! The writer records the offset of every event it flushed; a reconnection token and
//! the state a closing connection leaves behind are built from this, so a resumed
//! session replays exactly what never reached the socket.

use super::outbox::{StreamMark, SubscriptionSlot};
use parking_lot::Mutex;
use std::sync::Arc;

/// The last offset written per subscription slot. Shared by a session and its writer.
///
/// A connection has a handful of subscriptions, so a short list searched in order beats a
/// hash map here: the writer updates it after every flush.
#[derive(Debug, Clone, Default)]
pub struct Delivered {
    slots: Arc<Mutex<Vec<(SubscriptionSlot, u64)>>>,
}

impl Delivered {
    /// A subscription starts: everything up to `offset` counts as delivered.
    pub fn start(&self, slot: SubscriptionSlot, offset: u64) {
        let mut slots = self.slots.lock();
        match slots.iter_mut().find(|(s, _)| *s == slot) {
            Some((_, last)) => *last = offset,
            None => slots.push((slot, offset)),
        }
    }

    /// A subscription ended; events of it still queued are no longer tracked.
    pub fn stop(&self, slot: SubscriptionSlot) {
        self.slots.lock().retain(|(s, _)| *s != slot);
    }

    /// Events were written (one lock per flushed batch, not per event).
    pub fn record(&self, marks: &[StreamMark]) {
        if marks.is_empty() {
            return;
        }
        let mut slots = self.slots.lock();
        for mark in marks {
            if let Some((_, offset)) = slots.iter_mut().find(|(s, _)| *s == mark.slot) {
                *offset = mark.offset;
            }
        }
    }

    /// The last offset written for a subscription.
    pub fn get(&self, slot: SubscriptionSlot) -> Option<u64> {
        let slots = self.slots.lock();
        slots.iter().find(|(s, _)| *s == slot).map(|(_, offset)| *offset)
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
