//! Counting what receivers get: each receiver keeps a small [`Tally`] and adds it to one shard
//! of the shared [`Collector`] every few hundred messages (or when its connection goes quiet),
//! so thousands of receivers on a few threads rarely meet on a lock. Only messages sent inside
//! the measuring [`Window`] count; warm-up traffic and stragglers from an earlier step do not.

use super::sequence::Seen;
use hdrhistogram::Histogram;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use wshub_client::Close;

/// Latencies above this are recorded as this (microseconds).
const HIGHEST_LATENCY_MICROS: u64 = 3_600_000_000;
/// A tally is added to the shared counts when it holds this many latencies.
pub const TALLY_CAPACITY: usize = 256;

/// A new latency histogram: 1 µs to an hour, three significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIGHEST_LATENCY_MICROS, 3).expect("constant bounds are valid")
}

/// The send times (on the run's clock) that count: `from` inclusive, `until` exclusive.
#[derive(Debug, Default)]
pub struct Window {
    from: AtomicU64,
    until: AtomicU64,
}

impl Window {
    pub fn open(&self, from: u64, until: u64) {
        // Close first: a reader that sees the new `until` then sees the new `from` too.
        self.until.store(0, Ordering::Release);
        self.from.store(from, Ordering::Release);
        self.until.store(until, Ordering::Release);
    }

    pub fn close(&self) {
        self.until.store(0, Ordering::Release);
    }

    pub fn contains(&self, sent_micros: u64) -> bool {
        sent_micros < self.until.load(Ordering::Acquire) && sent_micros >= self.from.load(Ordering::Acquire)
    }
}

/// Counts of messages received inside the window, all receivers together.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    pub received: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
}

impl Totals {
    /// Messages received at least once (each receiver counts its own).
    pub fn unique(&self) -> u64 {
        self.received - self.duplicates
    }

    fn add(&mut self, other: &Totals) {
        self.received += other.received;
        self.duplicates += other.duplicates;
        self.out_of_order += other.out_of_order;
    }
}

/// One receiver's counts since it last flushed.
#[derive(Debug)]
pub struct Tally {
    totals: Totals,
    latencies: Vec<u64>,
}

impl Default for Tally {
    fn default() -> Tally {
        Tally {
            totals: Totals::default(),
            latencies: Vec::with_capacity(TALLY_CAPACITY),
        }
    }
}

impl Tally {
    pub fn is_empty(&self) -> bool {
        self.totals.received == 0
    }

    pub fn is_full(&self) -> bool {
        self.latencies.len() >= TALLY_CAPACITY
    }

    /// One message received inside the window, `latency_micros` after it was sent.
    pub fn record(&mut self, seen: Seen, latency_micros: u64) {
        match seen {
            Seen::Foreign => return,
            Seen::Duplicate => self.totals.duplicates += 1,
            Seen::Late => self.totals.out_of_order += 1,
            Seen::InOrder => {}
        }
        self.totals.received += 1;
        // A duplicate's latency says nothing about delivery.
        if seen != Seen::Duplicate {
            self.latencies.push(latency_micros);
        }
    }
}

/// The shared counts and latencies.
#[derive(Debug)]
pub struct Collector {
    shards: Box<[Mutex<Shard>]>,
}

#[derive(Debug)]
struct Shard {
    totals: Totals,
    latencies: Histogram<u64>,
}

impl Collector {
    pub fn new(shards: usize) -> Collector {
        let shards = (0..shards.max(1))
            .map(|_| {
                Mutex::new(Shard {
                    totals: Totals::default(),
                    latencies: histogram(),
                })
            })
            .collect();
        Collector { shards }
    }

    /// Adds `tally` to shard `key % shards` and empties it.
    pub fn flush(&self, key: usize, tally: &mut Tally) {
        let mut shard = self.shards[key % self.shards.len()].lock();
        shard.totals.add(&tally.totals);
        for &latency in &tally.latencies {
            shard.latencies.saturating_record(latency.max(1));
        }
        drop(shard);
        tally.totals = Totals::default();
        tally.latencies.clear();
    }

    /// The counts so far.
    pub fn totals(&self) -> Totals {
        let mut totals = Totals::default();
        for shard in self.shards.iter() {
            totals.add(&shard.lock().totals);
        }
        totals
    }

    /// The counts and latencies so far, leaving every shard empty for the next step.
    pub fn take(&self) -> (Totals, Histogram<u64>) {
        let mut totals = Totals::default();
        let mut latencies = histogram();
        for shard in self.shards.iter() {
            let mut shard = shard.lock();
            totals.add(&shard.totals);
            // Same bounds on both sides: adding cannot fail.
            let _ = latencies.add(&shard.latencies);
            shard.totals = Totals::default();
            shard.latencies.reset();
        }
        (totals, latencies)
    }
}

/// Connections the server closed (or that dropped) while they were meant to stay open.
#[derive(Debug, Default)]
pub struct Closes {
    inner: Mutex<ClosesInner>,
}

#[derive(Debug, Default)]
struct ClosesInner {
    count: u64,
    /// Close code (`None`: no close frame) → how many, and the first reason given.
    by_code: BTreeMap<Option<u16>, (u64, String)>,
}

impl Closes {
    pub fn record(&self, close: &Close) {
        let mut inner = self.inner.lock();
        inner.count += 1;
        let entry = inner
            .by_code
            .entry(close.code)
            .or_insert_with(|| (0, close.reason.clone()));
        entry.0 += 1;
    }

    pub fn count(&self) -> u64 {
        self.inner.lock().count
    }

    /// `"4008 slow consumer: 12"`-style lines, most frequent first.
    pub fn summary(&self) -> Vec<String> {
        let inner = self.inner.lock();
        let mut lines: Vec<(u64, String)> = inner
            .by_code
            .iter()
            .map(|(code, (count, reason))| {
                let code = code.map_or_else(|| "no close frame".to_owned(), |code| code.to_string());
                let label = if reason.is_empty() {
                    code
                } else {
                    format!("{code} {reason}")
                };
                (*count, format!("{label}: {count}"))
            })
            .collect();
        lines.sort_by_key(|line| std::cmp::Reverse(line.0));
        lines.into_iter().map(|(_, line)| line).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_bounds_what_counts() {
        let window = Window::default();
        assert!(!window.contains(5), "closed at first");
        window.open(10, 20);
        assert!(window.contains(10) && window.contains(19));
        assert!(!window.contains(9) && !window.contains(20));
        window.close();
        assert!(!window.contains(15));
    }

    #[test]
    fn tallies_add_up_across_shards_and_take_resets() {
        let collector = Collector::new(4);
        for key in 0..10 {
            let mut tally = Tally::default();
            tally.record(Seen::InOrder, 100);
            tally.record(Seen::Late, 300);
            tally.record(Seen::Duplicate, 5);
            tally.record(Seen::Foreign, 5);
            collector.flush(key, &mut tally);
            assert!(tally.is_empty());
        }
        let expected = Totals {
            received: 30,
            duplicates: 10,
            out_of_order: 10,
        };
        assert_eq!(collector.totals(), expected);
        let (totals, latencies) = collector.take();
        assert_eq!(totals, expected);
        assert_eq!(totals.unique(), 20);
        assert_eq!(latencies.len(), 20, "duplicates carry no latency");
        assert_eq!(latencies.max(), 300);
        assert_eq!(collector.totals(), Totals::default());
    }

    #[test]
    fn closes_are_grouped_by_code() {
        let closes = Closes::default();
        let slow = Close {
            code: Some(4008),
            reason: "slow consumer".into(),
        };
        closes.record(&slow);
        closes.record(&slow);
        closes.record(&Close::default());
        assert_eq!(closes.count(), 3);
        assert_eq!(closes.summary(), ["4008 slow consumer: 2", "no close frame: 1"]);
    }
}
