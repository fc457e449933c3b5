//! The conformance suite: what every broker engine must do, checked the same way for each.
//!
//! An engine's tests call [`run_all`] with a factory that builds a fresh engine around
//! the given [`Delivery`]. Each check states one invariant of the [`Broker`] trait.
//! Tests run on Tokio's paused clock where time matters (start the test with
//! `#[tokio::test(start_paused = true)]`), so TTLs are checked without waiting.
#![allow(clippy::unwrap_used)]

use crate::{
    Broker, Content, Delivery, HistoryPolicy, HistoryQuery, PresenceMember, Publication, PublicationDraft, Recovery,
};
use bytes::Bytes;
use parking_lot::Mutex;
use serde_json::value::RawValue;
use std::sync::Arc;
use std::time::Duration;
use wshub_protocol::binary::{self, BinaryKind, Upload};
use wshub_protocol::{ConnectionId, Epoch, EventId, EventName, Offset, Topic};

/// Records every delivered publication, in delivery order.
#[derive(Default)]
pub struct Recorder {
    delivered: Mutex<Vec<Arc<Publication>>>,
    notify: tokio::sync::Notify,
}

impl Delivery for Recorder {
    fn deliver(&self, publication: Arc<Publication>) {
        self.delivered.lock().push(publication);
        self.notify.notify_waiters();
    }
}

impl Recorder {
    /// (topic, offset) of everything delivered so far.
    pub fn offsets(&self) -> Vec<(String, u64)> {
        self.delivered
            .lock()
            .iter()
            .map(|p| (p.topic().to_string(), p.offset.0))
            .collect()
    }

    /// Waits until at least `n` publications were delivered (engines that deliver
    /// asynchronously, such as cluster engines, need this).
    pub async fn wait_for(&self, n: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let notified = self.notify.notified();
            if self.delivered.lock().len() >= n {
                return;
            }
            assert!(
                tokio::time::timeout_at(deadline, notified).await.is_ok(),
                "expected {n} deliveries"
            );
        }
    }
}

/// Builds a fresh engine delivering into the given recorder.
pub trait Factory {
    /// The engine type.
    type Engine: Broker;
    /// A new engine with an empty state.
    fn build(&self, delivery: Arc<Recorder>) -> Self::Engine;
}

impl<F, B> Factory for F
where
    F: Fn(Arc<Recorder>) -> B,
    B: Broker,
{
    type Engine = B;
    fn build(&self, delivery: Arc<Recorder>) -> B {
        self(delivery)
    }
}

/// A policy with plenty of room.
pub const ROOMY: HistoryPolicy = HistoryPolicy {
    size: 100,
    ttl: Duration::from_secs(300),
};

fn topic(name: &str) -> Topic {
    Topic::parse(name).unwrap()
}

/// A draft with payload `{"n": n}`.
pub fn draft(topic_name: &str, n: u64) -> PublicationDraft {
    PublicationDraft {
        topic: topic(topic_name),
        content: Content::Json {
            event: EventName::parse("e").unwrap(),
            payload: Arc::from(RawValue::from_string(format!("{{\"n\":{n}}}")).unwrap()),
        },
        id: EventId::new(format!("evt_{topic_name}_{n}")),
        timestamp: n,
        sender_id: Arc::from("server"),
    }
}

/// A binary draft (CONTRACT §12) whose body is `n` as 8 big-endian bytes.
pub fn binary_draft(topic_name: &str, n: u64) -> PublicationDraft {
    let metadata = format!(r#"{{"topic":"{topic_name}","n":{n}}}"#);
    let body = Bytes::copy_from_slice(&n.to_be_bytes());
    let upload = Upload::from_parts(BinaryKind::Raw, Bytes::from(metadata), body).unwrap();
    PublicationDraft {
        topic: topic(topic_name),
        content: Content::Binary(upload),
        id: EventId::new(format!("evt_{topic_name}_{n}")),
        timestamp: n,
        sender_id: Arc::from("server"),
    }
}

/// Runs every single-threaded check, each on a fresh engine, on a paused clock.
/// Run [`concurrent_publishers_are_serialised_per_topic`] separately on a
/// multi-threaded runtime, where publishers really race.
pub async fn run_all<F: Factory>(factory: &F) {
    offsets_start_at_one_and_increase_without_gaps(factory).await;
    every_publication_is_delivered_in_offset_order(factory).await;
    topics_have_independent_streams(factory).await;
    history_keeps_the_newest_and_pages_correctly(factory).await;
    history_is_never_behind_delivery(factory).await;
    size_zero_keeps_no_history_but_counts(factory).await;
    recovery_is_complete_only_when_nothing_is_missing(factory).await;
    position_of_an_unused_topic_is_zero_and_stable(factory).await;
    expired_streams_restart_with_a_new_epoch(factory).await;
    streams_lists_live_topics(factory).await;
    presence_follows_joins_and_leaves(factory).await;
    records_are_claimed_once_and_expire(factory).await;
    binary_publications_share_the_stream(factory).await;
}

/// Invariant 3: offsets start at 1, increase by one, and share the epoch.
pub async fn offsets_start_at_one_and_increase_without_gaps<F: Factory>(factory: &F) {
    let engine = factory.build(Arc::default());
    let mut epoch = None;
    for n in 1..=20 {
        let position = engine.publish(draft("t", n), ROOMY).await.unwrap();
        assert_eq!(position.offset, Offset(n));
        assert_eq!(*epoch.get_or_insert(position.epoch.clone()), position.epoch);
    }
}

/// Invariant 1: publications reach subscribers only through `Delivery`, in offset order.
pub async fn every_publication_is_delivered_in_offset_order<F: Factory>(factory: &F) {
    let recorder = Arc::new(Recorder::default());
    let engine = factory.build(Arc::clone(&recorder));
    for n in 1..=10 {
        engine.publish(draft("d", n), ROOMY).await.unwrap();
    }
    recorder.wait_for(10).await;
    let expected: Vec<(String, u64)> = (1..=10).map(|n| ("d".to_owned(), n)).collect();
    assert_eq!(recorder.offsets(), expected);
}

/// Invariant 2: concurrent publishers on one topic are delivered one at a time, in offset order.
pub async fn concurrent_publishers_are_serialised_per_topic<F: Factory>(factory: &F)
where
    F::Engine: 'static,
{
    let recorder = Arc::new(Recorder::default());
    let engine = Arc::new(factory.build(Arc::clone(&recorder)));
    let tasks: Vec<_> = (0..8)
        .map(|worker| {
            let engine = Arc::clone(&engine);
            tokio::spawn(async move {
                for n in 0..50 {
                    engine.publish(draft("busy", worker * 100 + n), ROOMY).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    recorder.wait_for(400).await;
    let offsets: Vec<u64> = recorder.offsets().into_iter().map(|(_, o)| o).collect();
    assert_eq!(
        offsets,
        (1..=400).collect::<Vec<_>>(),
        "delivered in offset order, none missing"
    );
}

/// Offsets of one topic do not depend on another's.
pub async fn topics_have_independent_streams<F: Factory>(factory: &F) {
    let engine = factory.build(Arc::default());
    engine.publish(draft("a", 1), ROOMY).await.unwrap();
    engine.publish(draft("a", 2), ROOMY).await.unwrap();
    let b = engine.publish(draft("b", 1), ROOMY).await.unwrap();
    assert_eq!(b.offset, Offset(1));
}

/// Invariant 4: history keeps the newest `size`; `since` is exclusive; without it, the newest `limit`.
pub async fn history_keeps_the_newest_and_pages_correctly<F: Factory>(factory: &F) {
    let engine = factory.build(Arc::default());
    let policy = HistoryPolicy {
        size: 5,
        ttl: Duration::from_secs(300),
    };
    for n in 1..=8 {
        engine.publish(draft("h", n), policy).await.unwrap();
    }
    let offsets = |page: crate::HistoryPage| page.publications.iter().map(|p| p.offset.0).collect::<Vec<_>>();
    let all = engine
        .history(
            &topic("h"),
            HistoryQuery {
                since: None,
                limit: 100,
            },
        )
        .await
        .unwrap();
    assert_eq!(all.position.offset, Offset(8));
    assert_eq!(offsets(all), vec![4, 5, 6, 7, 8]);
    let newest = engine
        .history(&topic("h"), HistoryQuery { since: None, limit: 2 })
        .await
        .unwrap();
    assert_eq!(offsets(newest), vec![7, 8]);
    let after = engine
        .history(
            &topic("h"),
            HistoryQuery {
                since: Some(Offset(5)),
                limit: 2,
            },
        )
        .await
        .unwrap();
    assert_eq!(offsets(after), vec![6, 7]);
    let none = engine
        .history(
            &topic("h"),
            HistoryQuery {
                since: Some(Offset(8)),
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert!(none.publications.is_empty());
}

/// Invariant 2: once `publish` returned, history holds the publication and delivery has begun.
pub async fn history_is_never_behind_delivery<F: Factory>(factory: &F) {
    let recorder = Arc::new(Recorder::default());
    let engine = factory.build(Arc::clone(&recorder));
    for n in 1..=5 {
        let position = engine.publish(draft("hd", n), ROOMY).await.unwrap();
        let page = engine
            .history(&topic("hd"), HistoryQuery { since: None, limit: 1 })
            .await
            .unwrap();
        assert_eq!(page.publications.last().map(|p| p.offset), Some(position.offset));
    }
    recorder.wait_for(5).await;
}

/// `size: 0` keeps nothing but offsets still advance.
pub async fn size_zero_keeps_no_history_but_counts<F: Factory>(factory: &F) {
    let engine = factory.build(Arc::default());
    let policy = HistoryPolicy {
        size: 0,
        ttl: Duration::from_secs(60),
    };
    engine.publish(draft("z", 1), policy).await.unwrap();
    let second = engine.publish(draft("z", 2), policy).await.unwrap();
    assert_eq!(second.offset, Offset(2));
    let page = engine
        .history(&topic("z"), HistoryQuery { since: None, limit: 10 })
        .await
        .unwrap();
    assert!(page.publications.is_empty());
}

/// Recovery returns everything after the offset, or says it cannot.
pub async fn recovery_is_complete_only_when_nothing_is_missing<F: Factory>(factory: &F) {
    let engine = factory.build(Arc::default());
    let policy = HistoryPolicy {
        size: 3,
        ttl: Duration::from_secs(300),
    };
    let mut epoch = Epoch::new("");
    for n in 1..=5 {
        epoch = engine.publish(draft("r", n), policy).await.unwrap().epoch;
    }
    match engine.recover(&topic("r"), &epoch, Offset(3)).await.unwrap() {
        Recovery::Complete { publications, position } => {
            assert_eq!(publications.iter().map(|p| p.offset.0).collect::<Vec<_>>(), vec![4, 5]);
            assert_eq!(position.offset, Offset(5));
        }
        Recovery::Incomplete { .. } => panic!("offsets 4 and 5 are held"),
    }
    assert!(
        matches!(engine.recover(&topic("r"), &epoch, Offset(5)).await.unwrap(), Recovery::Complete { publications, .. } if publications.is_empty())
    );
    assert!(
        matches!(
            engine.recover(&topic("r"), &epoch, Offset(1)).await.unwrap(),
            Recovery::Incomplete { .. }
        ),
        "offset 2 was trimmed"
    );
    assert!(matches!(
        engine
            .recover(&topic("r"), &Epoch::new("other"), Offset(4))
            .await
            .unwrap(),
        Recovery::Incomplete { .. }
    ));
}

/// A never-published topic is at offset 0, and its epoch holds until it is reset.
pub async fn position_of_an_unused_topic_is_zero_and_stable<F: Factory>(factory: &F) {
    let engine = factory.build(Arc::default());
    let first = engine.position(&topic("fresh")).await.unwrap();
    assert_eq!(first.offset, Offset(0));
    let again = engine.position(&topic("fresh")).await.unwrap();
    assert_eq!(first.epoch, again.epoch);
    let published = engine.publish(draft("fresh", 1), ROOMY).await.unwrap();
    assert_eq!(
        published.epoch, first.epoch,
        "a subscriber's epoch stays valid for the first publication"
    );
    assert!(
        matches!(engine.recover(&topic("fresh"), &first.epoch, Offset(0)).await.unwrap(), Recovery::Complete { publications, .. } if publications.len() == 1)
    );
}

/// Invariant 3: a stream expires `ttl` after its last publish and comes back with a new epoch.
pub async fn expired_streams_restart_with_a_new_epoch<F: Factory>(factory: &F) {
    let engine = factory.build(Arc::default());
    let policy = HistoryPolicy {
        size: 10,
        ttl: Duration::from_secs(5),
    };
    let old = engine.publish(draft("ttl", 1), policy).await.unwrap();
    tokio::time::advance(Duration::from_secs(3)).await;
    let kept = engine.publish(draft("ttl", 2), policy).await.unwrap();
    assert_eq!(
        (kept.offset, &kept.epoch),
        (Offset(2), &old.epoch),
        "a publish renews the ttl"
    );
    tokio::time::advance(Duration::from_secs(6)).await;
    let fresh = engine.publish(draft("ttl", 3), policy).await.unwrap();
    assert_eq!(fresh.offset, Offset(1));
    assert_ne!(fresh.epoch, old.epoch);
    let page = engine
        .history(&topic("ttl"), HistoryQuery { since: None, limit: 10 })
        .await
        .unwrap();
    assert_eq!(page.publications.len(), 1, "expired history is gone");
}

/// `streams` lists topics with a live stream.
pub async fn streams_lists_live_topics<F: Factory>(factory: &F) {
    let engine = factory.build(Arc::default());
    engine.publish(draft("s1", 1), ROOMY).await.unwrap();
    engine.publish(draft("s2", 1), ROOMY).await.unwrap();
    let names: Vec<String> = engine
        .streams()
        .await
        .unwrap()
        .into_iter()
        .map(|(t, _)| t.to_string())
        .collect();
    assert!(
        names.contains(&"s1".to_owned()) && names.contains(&"s2".to_owned()),
        "{names:?}"
    );
}

fn member(id: &str) -> PresenceMember {
    PresenceMember {
        connection_id: ConnectionId::new(id),
        user: Some(format!("user-{id}")),
        client_id: Some(format!("client-{id}")),
    }
}

/// Presence counts every member, lists at most the limit, and forgets who left.
pub async fn presence_follows_joins_and_leaves<F: Factory>(factory: &F) {
    let engine = factory.build(Arc::default());
    let room = topic("room");
    for id in ["c1", "c2", "c3"] {
        engine.presence_join(&room, member(id)).await.unwrap();
    }
    engine.presence_join(&room, member("c2")).await.unwrap();
    let page = engine.presence(&room, 2).await.unwrap();
    assert_eq!((page.count, page.clients.len(), page.truncated), (3, 2, true));
    engine.presence_leave(&room, &ConnectionId::new("c2")).await.unwrap();
    let page = engine.presence(&room, 10).await.unwrap();
    assert_eq!(page.count, 2);
    assert!(!page.truncated);
    assert_eq!(page.clients, vec![member("c1"), member("c3")]);
    assert_eq!(engine.presence(&topic("empty"), 10).await.unwrap().count, 0);
}

/// Invariant 5: a key is claimed by one caller until it expires; records expire too.
pub async fn records_are_claimed_once_and_expire<F: Factory>(factory: &F) {
    let engine = factory.build(Arc::default());
    let ttl = Duration::from_secs(10);
    assert!(engine.claim("token:a", ttl).await.unwrap());
    assert!(!engine.claim("token:a", ttl).await.unwrap(), "a second claim fails");
    assert!(engine.claim("token:b", ttl).await.unwrap(), "keys are independent");
    engine
        .put_record("state:a", Bytes::from_static(b"one"), ttl)
        .await
        .unwrap();
    engine
        .put_record("state:a", Bytes::from_static(b"two"), ttl)
        .await
        .unwrap();
    assert_eq!(
        engine.record("state:a").await.unwrap(),
        Some(Bytes::from_static(b"two"))
    );
    assert_eq!(engine.record("state:missing").await.unwrap(), None);
    tokio::time::advance(ttl + Duration::from_secs(1)).await;
    assert_eq!(engine.record("state:a").await.unwrap(), None, "records expire");
    assert!(
        engine.claim("token:a", ttl).await.unwrap(),
        "an expired claim is free again"
    );
}

/// Binary publications take their place in the stream like JSON events (offsets, delivery
/// order, history), and the frame delivered and kept in history carries that place.
pub async fn binary_publications_share_the_stream<F: Factory>(factory: &F) {
    let recorder = Arc::new(Recorder::default());
    let engine = factory.build(Arc::clone(&recorder));
    engine.publish(draft("mixed", 1), ROOMY).await.unwrap();
    let position = engine.publish(binary_draft("mixed", 2), ROOMY).await.unwrap();
    engine.publish(draft("mixed", 3), ROOMY).await.unwrap();
    assert_eq!(position.offset, Offset(2));
    recorder.wait_for(3).await;
    assert_eq!(
        recorder.offsets(),
        vec![
            ("mixed".to_owned(), 1),
            ("mixed".to_owned(), 2),
            ("mixed".to_owned(), 3)
        ]
    );
    let delivered = Arc::clone(&recorder.delivered.lock()[1]);
    let page = engine
        .history(&topic("mixed"), HistoryQuery { since: None, limit: 10 })
        .await
        .unwrap();
    let kept = &page.publications[1];
    assert!(kept.is_binary() && delivered.is_binary());
    assert_eq!(kept.frame(), delivered.frame(), "history keeps the delivered frame");
    let frame = binary::decode(kept.frame(), usize::MAX).unwrap();
    assert_eq!(frame.get("offset").map(|v| v.get()), Some("2"));
    assert_eq!(
        frame.get("epoch").map(|v| v.get().to_owned()),
        Some(format!("\"{}\"", position.epoch))
    );
    assert_eq!(
        frame.get("n").map(|v| v.get()),
        Some("2"),
        "the publisher's metadata is kept"
    );
    assert_eq!(frame.body(), 2u64.to_be_bytes());
}
