//! Fan-out: from one publication to every local subscriber's outbound queue.
//!
//! On the message path this is the hub's [`Delivery`]: the broker hands it each
//! publication in stream order, it wraps the encoded event once, and pushes the same
//! shared bytes onto each subscriber's [`Outbox`]. A full outbox closes that
//! connection (4008) instead of blocking the publisher or anyone else.
//!
//! A subscriber can be *held* while its subscription is being set up: deliveries for it
//! are kept aside until the session has queued its `subscribed` reply and any replay,
//! then released in order without the ones the replay already covered. That hand-over
//! is what makes recovery gap-free and duplicate-free (docs/architecture.md).

use crate::metrics::histogram::AtomicHistogram;
use crate::metrics::monotonic_micros;
use crate::session::outbox::{Outbox, Outgoing, StreamMark, SubscriptionSlot};
use crate::transport::SharedText;
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use wshub_broker::{Delivery, Publication};
use wshub_protocol::{CloseCode, Topic};

const SHARDS: usize = 64;

/// A connection's key in the registry: unique per process, cheaper than its id.
pub type ConnectionKey = u64;

type TopicMap = HashMap<Topic, HashMap<ConnectionKey, Subscriber>>;

/// One connection's subscription to one topic, as the fan-out sees it.
struct Subscriber {
    outbox: Outbox,
    slot: SubscriptionSlot,
    /// Set while the subscription is being set up: deliveries wait here.
    held: Option<Arc<Mutex<Held>>>,
}

/// Deliveries kept aside during a subscription's set-up, bounded like the outbox.
struct Held {
    publications: Vec<Arc<Publication>>,
    limit: usize,
}

impl Subscriber {
    fn deliver(&self, text: &SharedText, publication: &Arc<Publication>, published_at: u64) {
        let Some(held) = &self.held else {
            // A full outbox closes its own connection (4008); the others carry on.
            self.outbox.push(Outgoing::Event {
                text: text.clone(),
                mark: StreamMark {
                    slot: self.slot,
                    offset: publication.offset.0,
                    published_at,
                },
            });
            return;
        };
        let mut held = held.lock();
        if held.publications.len() >= held.limit {
            self.outbox.closer().close(
                CloseCode::SlowConsumer,
                "slow consumer: too many events during subscribe",
            );
            return;
        }
        held.publications.push(Arc::clone(publication));
    }
}

/// Which local connections are subscribed to which topic.
///
/// Sharded by topic behind read-mostly locks: publishers only take a read lock on one
/// shard, and subscribing only ever write-locks the shard of that one topic.
pub struct Registry {
    shards: Box<[RwLock<TopicMap>]>,
    hasher: RandomState,
    subscriptions: AtomicUsize,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
            subscriptions: AtomicUsize::new(0),
        }
    }
}

impl Registry {
    fn shard(&self, topic: &str) -> &RwLock<TopicMap> {
        &self.shards[self.hasher.hash_one(topic) as usize % SHARDS]
    }

    /// Adds a subscriber, held: its deliveries wait until [`release`](Self::release). An
    /// existing subscription of `key` is held again instead (a re-subscribe with recovery).
    /// Returns `true` when it is the topic's first subscriber on this node (so the broker
    /// should start listening to it).
    pub fn subscribe_held(&self, topic: &Topic, key: ConnectionKey, outbox: &Outbox, slot: SubscriptionSlot) -> bool {
        let limit = outbox.capacity();
        let held = Some(Arc::new(Mutex::new(Held {
            publications: Vec::new(),
            limit,
        })));
        let mut shard = self.shard(topic.as_str()).write();
        let subscribers = shard.entry(topic.clone()).or_default();
        let first = subscribers.is_empty();
        match subscribers.get_mut(&key) {
            Some(existing) => existing.held = held,
            None => {
                subscribers.insert(
                    key,
                    Subscriber {
                        outbox: outbox.clone(),
                        slot,
                        held,
                    },
                );
                self.subscriptions.fetch_add(1, Ordering::Relaxed);
            }
        }
        first
    }

    /// Takes the deliveries kept aside for a held subscriber, oldest first; once none are
    /// left, ends the hold (deliveries then go straight to its outbox) and returns `None`.
    ///
    /// The caller queues each batch and calls again until `None`: deliveries arriving
    /// meanwhile are kept aside too, and the hold ends under the shard's write lock, when
    /// no delivery can be half-way, so nothing slips between the kept ones and the live ones.
    pub fn take_held(&self, topic: &Topic, key: ConnectionKey) -> Option<Vec<Arc<Publication>>> {
        let mut shard = self.shard(topic.as_str()).write();
        let subscriber = shard.get_mut(topic).and_then(|s| s.get_mut(&key))?;
        let held = subscriber.held.as_ref()?;
        let publications = std::mem::take(&mut held.lock().publications);
        if publications.is_empty() {
            subscriber.held = None;
            return None;
        }
        Some(publications)
    }

    /// Removes a subscriber. Returns `true` when the topic has no subscriber left here.
    pub fn unsubscribe(&self, topic: &Topic, key: ConnectionKey) -> bool {
        let mut shard = self.shard(topic.as_str()).write();
        let Some(subscribers) = shard.get_mut(topic) else {
            return false;
        };
        if subscribers.remove(&key).is_some() {
            self.subscriptions.fetch_sub(1, Ordering::Relaxed);
        }
        let last = subscribers.is_empty();
        if last {
            shard.remove(topic);
        }
        last
    }

    /// Subscribers of one topic on this node.
    pub fn subscriber_count(&self, topic: &str) -> usize {
        self.shard(topic).read().get(topic).map_or(0, HashMap::len)
    }

    /// Subscriptions held by all local connections.
    pub fn subscription_count(&self) -> usize {
        self.subscriptions.load(Ordering::Relaxed)
    }

    /// Every topic with local subscribers and how many.
    pub fn topics(&self) -> Vec<(Topic, usize)> {
        let mut all: Vec<(Topic, usize)> = self
            .shards
            .iter()
            .flat_map(|s| {
                s.read()
                    .iter()
                    .map(|(t, subs)| (t.clone(), subs.len()))
                    .collect::<Vec<_>>()
            })
            .collect();
        all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        all
    }
}

/// The hub's delivery path: every publication, local or remote, arrives here.
pub struct FanOut {
    registry: Arc<Registry>,
    /// `broadcast_duration_seconds`: one observation per publication with subscribers.
    broadcast: AtomicHistogram,
}

impl FanOut {
    /// Fans out into `registry`'s subscribers, timing each broadcast into `broadcast`.
    pub fn new(registry: Arc<Registry>, broadcast: AtomicHistogram) -> Self {
        FanOut { registry, broadcast }
    }
}

impl Delivery for FanOut {
    fn deliver(&self, publication: Arc<Publication>) {
        let shard = self.registry.shard(publication.topic().as_str()).read();
        let Some(subscribers) = shard.get(publication.topic()) else {
            return;
        };
        // The broadcast is timed from here (encoding included) and every subscriber's
        // delivery latency counts from the same instant.
        let published_at = monotonic_micros();
        // Encoded and checked once; each subscriber gets a reference-counted clone.
        let Some(text) = SharedText::from_json(publication.frame().clone()) else {
            tracing::error!(topic = %publication.topic(), "encoded event is not UTF-8; dropped");
            return;
        };
        for subscriber in subscribers.values() {
            subscriber.deliver(&text, &publication, published_at);
        }
        let took = monotonic_micros().saturating_sub(published_at);
        self.broadcast.observe(took as f64 / 1e6);
    }
}
