//! What one receiver has seen of each sequence stream: whether a message is new, late (out of
//! order) or a duplicate. Memory is bounded: per stream, the highest sequence number and a ring
//! of the last [`WINDOW`] numbers; a message older than that counts as late, not checked for
//! duplication.

/// How far back duplicates are recognised, in messages per stream.
pub const WINDOW: u64 = 1024;
const WORDS: usize = (WINDOW / 64) as usize;
/// Streams a receiver tracks; stamps of higher streams are not from this run.
pub const MAX_STREAMS: u32 = 1 << 16;

/// How a message relates to what came before it on its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// The next one, or one after a gap.
    InOrder,
    /// Not seen before, but after a higher number: out of order.
    Late,
    /// Seen before.
    Duplicate,
    /// A stream number this run never used.
    Foreign,
}

/// One receiver's view of every stream.
#[derive(Debug, Default)]
pub struct Tracker {
    streams: Vec<Option<Stream>>,
}

#[derive(Debug)]
struct Stream {
    highest: u64,
    /// Bit `seq % WINDOW` is set when `seq` (within `WINDOW` of `highest`) has been seen.
    ring: [u64; WORDS],
}

impl Tracker {
    pub fn see(&mut self, stream: u32, seq: u64) -> Seen {
        if stream >= MAX_STREAMS {
            return Seen::Foreign;
        }
        let index = stream as usize;
        if self.streams.len() <= index {
            self.streams.resize_with(index + 1, || None);
        }
        let Some(state) = &mut self.streams[index] else {
            let mut fresh = Stream {
                highest: seq,
                ring: [0; WORDS],
            };
            fresh.mark(seq);
            self.streams[index] = Some(fresh);
            return Seen::InOrder;
        };
        if seq > state.highest {
            if seq - state.highest >= WINDOW {
                state.ring = [0; WORDS];
            } else {
                for skipped in state.highest + 1..seq {
                    state.clear(skipped);
                }
            }
            state.highest = seq;
            state.mark(seq);
            return Seen::InOrder;
        }
        if state.highest - seq >= WINDOW {
            return Seen::Late;
        }
        if state.is_marked(seq) {
            return Seen::Duplicate;
        }
        state.mark(seq);
        Seen::Late
    }
}

impl Stream {
    fn position(seq: u64) -> (usize, u64) {
        let bit = seq % WINDOW;
        ((bit / 64) as usize, 1 << (bit % 64))
    }

    fn mark(&mut self, seq: u64) {
        let (word, mask) = Stream::position(seq);
        self.ring[word] |= mask;
    }

    fn clear(&mut self, seq: u64) {
        let (word, mask) = Stream::position(seq);
        self.ring[word] &= !mask;
    }

    fn is_marked(&self, seq: u64) -> bool {
        let (word, mask) = Stream::position(seq);
        self.ring[word] & mask != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_streams_are_in_order() {
        let mut tracker = Tracker::default();
        for seq in 0..3000 {
            assert_eq!(tracker.see(0, seq), Seen::InOrder);
            assert_eq!(tracker.see(1, seq), Seen::InOrder);
        }
    }

    #[test]
    fn gaps_late_arrivals_and_duplicates_are_told_apart() {
        let mut tracker = Tracker::default();
        assert_eq!(tracker.see(0, 0), Seen::InOrder);
        assert_eq!(tracker.see(0, 2), Seen::InOrder, "a gap is not disorder by itself");
        assert_eq!(tracker.see(0, 1), Seen::Late);
        assert_eq!(tracker.see(0, 1), Seen::Duplicate);
        assert_eq!(tracker.see(0, 2), Seen::Duplicate);
        assert_eq!(tracker.see(0, 3), Seen::InOrder);
        // Far ahead: the ring is reset; what lies beyond the window is late, unchecked.
        assert_eq!(tracker.see(0, 10_000), Seen::InOrder);
        assert_eq!(tracker.see(0, 3), Seen::Late);
        assert_eq!(tracker.see(0, 10_000 - WINDOW + 1), Seen::Late);
        assert_eq!(tracker.see(0, 10_000 - WINDOW + 1), Seen::Duplicate);
    }

    #[test]
    fn ring_slots_of_skipped_numbers_are_cleared() {
        let mut tracker = Tracker::default();
        for seq in 0..=5 {
            tracker.see(0, seq);
        }
        // 1024 shares its ring slot with 0; it was skipped, so it is new, not a duplicate.
        assert_eq!(tracker.see(0, WINDOW + 4), Seen::InOrder);
        assert_eq!(tracker.see(0, WINDOW), Seen::Late);
        assert_eq!(tracker.see(0, 5), Seen::Duplicate, "5 is still inside the window");
    }

    #[test]
    fn foreign_streams_are_ignored() {
        let mut tracker = Tracker::default();
        assert_eq!(tracker.see(MAX_STREAMS, 0), Seen::Foreign);
        assert_eq!(tracker.see(7, 5), Seen::InOrder);
    }
}
