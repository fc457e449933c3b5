//! One topic's stream: its epoch, its last offset and the history it keeps.
//!
//! Engine-neutral data structure; the memory engine keeps one per topic behind a lock.

use crate::publication::{Publication, PublicationDraft};
use crate::traits::{HistoryPolicy, HistoryQuery, StreamPosition};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use wshub_protocol::{Epoch, Offset};

#[derive(Debug)]
pub(crate) struct Stream {
    epoch: Epoch,
    last: Offset,
    events: VecDeque<Arc<Publication>>,
    /// Approximate bytes held by `events`, for the engine-wide budget.
    bytes: usize,
    /// The stream expires `ttl` after this instant (its creation or last publish).
    touched: Instant,
    ttl: Duration,
}

impl Stream {
    pub(crate) fn new(epoch: Epoch, ttl: Duration, now: Instant) -> Self {
        Stream {
            epoch,
            last: Offset(0),
            events: VecDeque::new(),
            bytes: 0,
            touched: now,
            ttl,
        }
    }

    pub(crate) fn position(&self) -> StreamPosition {
        StreamPosition {
            offset: self.last,
            epoch: self.epoch.clone(),
        }
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(crate) fn touched(&self) -> Instant {
        self.touched
    }

    pub(crate) fn is_expired(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.touched) >= self.ttl
    }

    /// Gives the draft the next offset and keeps it per `policy`. Returns the
    /// publication and the change in bytes held (may be negative after trimming).
    pub(crate) fn append(
        &mut self,
        draft: PublicationDraft,
        policy: HistoryPolicy,
        now: Instant,
    ) -> (Arc<Publication>, isize) {
        self.last = Offset(self.last.0 + 1);
        self.touched = now;
        self.ttl = policy.ttl;
        let publication = Arc::new(Publication::new(draft, self.last, self.epoch.clone()));
        let before = self.bytes as isize;
        if policy.size > 0 {
            if publication.is_binary() {
                // History keeps the frame subscribers get, never the upload it is built from
                // (which may share a connection's read buffer and keep all of it alive).
                publication.frame();
            }
            self.bytes += publication.approx_size();
            self.events.push_back(Arc::clone(&publication));
        }
        while self.events.len() > policy.size {
            if let Some(old) = self.events.pop_front() {
                self.bytes -= old.approx_size();
            }
        }
        (publication, self.bytes as isize - before)
    }

    pub(crate) fn page(&self, query: HistoryQuery) -> Vec<Arc<Publication>> {
        match query.since {
            Some(since) => self
                .events
                .iter()
                .filter(|p| p.offset > since)
                .take(query.limit)
                .cloned()
                .collect(),
            None => {
                let skip = self.events.len().saturating_sub(query.limit);
                self.events.iter().skip(skip).cloned().collect()
            }
        }
    }

    /// Every event after `offset` if this epoch still holds all of them.
    pub(crate) fn recover(&self, epoch: &Epoch, offset: Offset) -> Option<Vec<Arc<Publication>>> {
        if *epoch != self.epoch || offset > self.last {
            return None;
        }
        if offset == self.last {
            return Some(Vec::new());
        }
        let first_needed = offset.0 + 1;
        match self.events.front() {
            Some(first) if first.offset.0 <= first_needed => {
                Some(self.events.iter().filter(|p| p.offset > offset).cloned().collect())
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publication::Content;
    use serde_json::value::RawValue;
    use wshub_protocol::{EventId, EventName, Topic};

    fn draft(n: u64) -> PublicationDraft {
        PublicationDraft {
            topic: Topic::parse("t").expect("valid"),
            content: Content::Json {
                event: EventName::parse("e").expect("valid"),
                payload: Arc::from(RawValue::from_string(format!("{{\"n\":{n}}}")).expect("json")),
            },
            id: EventId::new(format!("evt_{n}")),
            timestamp: n,
            sender_id: Arc::from("server"),
        }
    }

    const POLICY: HistoryPolicy = HistoryPolicy {
        size: 3,
        ttl: Duration::from_secs(60),
    };

    #[test]
    fn offsets_increase_and_history_is_trimmed() {
        let now = Instant::now();
        let mut s = Stream::new(Epoch::new("e1"), POLICY.ttl, now);
        for n in 1..=5 {
            let (p, _) = s.append(draft(n), POLICY, now);
            assert_eq!(p.offset, Offset(n));
        }
        let offsets: Vec<u64> = s
            .page(HistoryQuery { since: None, limit: 10 })
            .iter()
            .map(|p| p.offset.0)
            .collect();
        assert_eq!(offsets, vec![3, 4, 5]);
        let offsets: Vec<u64> = s
            .page(HistoryQuery {
                since: Some(Offset(3)),
                limit: 1,
            })
            .iter()
            .map(|p| p.offset.0)
            .collect();
        assert_eq!(offsets, vec![4]);
        let offsets: Vec<u64> = s
            .page(HistoryQuery { since: None, limit: 2 })
            .iter()
            .map(|p| p.offset.0)
            .collect();
        assert_eq!(offsets, vec![4, 5]);
    }

    #[test]
    fn recovery_needs_the_same_epoch_and_unbroken_history() {
        let now = Instant::now();
        let mut s = Stream::new(Epoch::new("e1"), POLICY.ttl, now);
        for n in 1..=5 {
            s.append(draft(n), POLICY, now);
        }
        let e1 = Epoch::new("e1");
        assert_eq!(s.recover(&e1, Offset(2)).map(|v| v.len()), Some(3));
        assert_eq!(s.recover(&e1, Offset(5)).map(|v| v.len()), Some(0));
        assert!(s.recover(&e1, Offset(1)).is_none(), "offset 2 is gone");
        assert!(s.recover(&Epoch::new("other"), Offset(4)).is_none());
        assert!(s.recover(&e1, Offset(9)).is_none(), "offset from the future");
    }

    #[test]
    fn size_zero_keeps_nothing_but_counts() {
        let now = Instant::now();
        let policy = HistoryPolicy {
            size: 0,
            ttl: Duration::from_secs(1),
        };
        let mut s = Stream::new(Epoch::new("e"), policy.ttl, now);
        let (p, delta) = s.append(draft(1), policy, now);
        assert_eq!((p.offset, delta, s.bytes()), (Offset(1), 0, 0));
        assert!(s.is_expired(now + Duration::from_secs(1)));
    }
}
