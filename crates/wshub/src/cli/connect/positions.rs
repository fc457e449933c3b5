//! Where `connect` stands in each topic's stream, per topic and epoch. It drops events seen twice
//! (after a reconnect the hub's replay can overlap what already arrived) without dropping late
//! ones that fill a gap, and gives the position to `recover` from.

use std::collections::{BTreeSet, HashMap};

/// Offsets above a gap that are remembered individually; past this, the oldest gaps are given up
/// (their events count as seen) so memory stays bounded.
const MAX_REMEMBERED: usize = 10_000;

/// A place in a topic's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// The stream's incarnation; offsets compare only within one epoch.
    pub epoch: String,
    /// Every event up to this offset has been seen (or predates the subscription).
    pub offset: u64,
}

/// One topic's stream as seen so far.
#[derive(Debug)]
struct Stream {
    epoch: String,
    /// Everything at or below this offset is seen.
    floor: u64,
    /// Offsets seen above `floor`, past a gap that a replay may still fill.
    above: BTreeSet<u64>,
}

impl Stream {
    fn new(epoch: &str, floor: u64) -> Stream {
        Stream {
            epoch: epoch.to_owned(),
            floor,
            above: BTreeSet::new(),
        }
    }

    /// Moves the floor up over offsets that are now contiguous with it.
    fn settle(&mut self) {
        while self.above.remove(&(self.floor + 1)) {
            self.floor += 1;
        }
        while self.above.len() > MAX_REMEMBERED {
            if let Some(oldest) = self.above.pop_first() {
                self.floor = oldest;
            }
            self.settle_below();
        }
    }

    fn settle_below(&mut self) {
        let floor = self.floor;
        self.above.retain(|offset| *offset > floor);
        while self.above.remove(&(self.floor + 1)) {
            self.floor += 1;
        }
    }
}

/// The position of every topic this command has heard of.
#[derive(Debug, Default)]
pub struct Positions {
    by_topic: HashMap<String, Stream>,
}

impl Positions {
    /// Records an event; `false` when it was seen already.
    pub fn accept(&mut self, topic: &str, epoch: &str, offset: u64) -> bool {
        match self.by_topic.get_mut(topic) {
            Some(stream) if stream.epoch == epoch => {
                if offset <= stream.floor || !stream.above.insert(offset) {
                    return false;
                }
                stream.settle();
            }
            // The first event of a topic, or of a new epoch (the hub restarted): older offsets
            // were never asked for.
            _ => {
                self.by_topic.insert(topic.to_owned(), Stream::new(epoch, offset));
            }
        }
        true
    }

    /// A `subscribed` entry that replays nothing: live events follow `offset`. Events that
    /// arrived before the reply (published while subscribing) may already be past it.
    pub fn subscribed(&mut self, topic: &str, epoch: &str, offset: u64) {
        match self.by_topic.get_mut(topic) {
            Some(stream) if stream.epoch == epoch => {
                stream.floor = stream.floor.max(offset);
                stream.settle_below();
            }
            _ => {
                self.by_topic.insert(topic.to_owned(), Stream::new(epoch, offset));
            }
        }
    }

    /// Where to `recover` `topic` from: everything up to it has been seen.
    pub fn get(&self, topic: &str) -> Option<Position> {
        self.by_topic.get(topic).map(|stream| Position {
            epoch: stream.epoch.clone(),
            offset: stream.floor,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offset(positions: &Positions, topic: &str) -> Option<u64> {
        positions.get(topic).map(|p| p.offset)
    }

    #[test]
    fn replayed_events_are_dropped_once_seen() {
        let mut positions = Positions::default();
        positions.subscribed("news", "e1", 2);
        assert!(positions.accept("news", "e1", 3));
        assert!(positions.accept("news", "e1", 4));
        // A replay after reconnecting repeats 3 and 4, then goes on.
        assert!(!positions.accept("news", "e1", 3));
        assert!(!positions.accept("news", "e1", 4));
        assert!(positions.accept("news", "e1", 5));
        assert_eq!(offset(&positions, "news"), Some(5));
        assert!(!positions.accept("news", "e1", 1), "older than the subscription");
    }

    #[test]
    fn late_events_that_fill_a_gap_are_kept() {
        let mut positions = Positions::default();
        positions.subscribed("news", "e1", 5);
        // 6 was lost in transit; 7 and 8 came with the resumed session.
        assert!(positions.accept("news", "e1", 7));
        assert!(positions.accept("news", "e1", 8));
        assert_eq!(offset(&positions, "news"), Some(5), "recover from before the gap");
        // The recover replay: 6 is new, 7 and 8 are not.
        assert!(positions.accept("news", "e1", 6));
        assert!(!positions.accept("news", "e1", 7));
        assert!(!positions.accept("news", "e1", 8));
        assert_eq!(offset(&positions, "news"), Some(8));
    }

    #[test]
    fn a_new_epoch_starts_over() {
        let mut positions = Positions::default();
        assert!(positions.accept("news", "e1", 7));
        assert!(
            positions.accept("news", "e2", 1),
            "the hub restarted: offsets begin again"
        );
        assert_eq!(
            positions.get("news"),
            Some(Position {
                epoch: "e2".into(),
                offset: 1
            })
        );
    }

    #[test]
    fn events_before_the_subscribe_reply_are_kept() {
        let mut positions = Positions::default();
        // Published while subscribing: the event overtakes the reply, whose offset includes it.
        assert!(positions.accept("news", "e1", 5));
        positions.subscribed("news", "e1", 5);
        assert!(positions.accept("news", "e1", 6));
        positions.subscribed("news", "e1", 4);
        assert_eq!(offset(&positions, "news"), Some(6), "never moves back");
    }

    #[test]
    fn gaps_that_never_fill_do_not_grow_memory() {
        let mut positions = Positions::default();
        positions.subscribed("t", "e", 0);
        let last = u64::try_from(MAX_REMEMBERED).expect("fits") + 10;
        for offset in 2..=last {
            assert!(positions.accept("t", "e", offset));
        }
        let stream = positions.by_topic.get("t").expect("known");
        assert!(stream.above.len() <= MAX_REMEMBERED);
        assert_eq!(
            stream.floor, last,
            "gave up on offset 1, then everything was contiguous"
        );
    }
}
