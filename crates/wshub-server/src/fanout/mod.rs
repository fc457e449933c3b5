//! Fan-out: from one publication to every local subscriber's outbound queue.
//!
//! On the message path this is the hub's [`Delivery`]: the broker hands it each
//! publication in stream order, it wraps the encoded event once, and pushes the same
//! shared bytes onto each subscriber's [`Outbox`]. A full outbox closes that
//! connection (4008) instead of blocking the publisher or anyone else.

use crate::session::outbox::Outbox;
use crate::transport::{OutFrame, SharedText};
use parking_lot::RwLock;
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use wshub_broker::{Delivery, Publication};
use wshub_protocol::Topic;

const SHARDS: usize = 64;

/// A connection's key in the registry: unique per process, cheaper than its id.
pub type ConnectionKey = u64;

type TopicMap = HashMap<Topic, HashMap<ConnectionKey, Outbox>>;

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

    /// Adds a subscriber. Returns `true` when it is the topic's first on this node
    /// (so the broker should start listening to it).
    pub fn subscribe(&self, topic: &Topic, key: ConnectionKey, outbox: Outbox) -> bool {
        let mut shard = self.shard(topic.as_str()).write();
        let subscribers = shard.entry(topic.clone()).or_default();
        let first = subscribers.is_empty();
        if subscribers.insert(key, outbox).is_none() {
            self.subscriptions.fetch_add(1, Ordering::Relaxed);
        }
        first
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
}

impl FanOut {
    /// Fans out into `registry`'s subscribers.
    pub fn new(registry: Arc<Registry>) -> Self {
        FanOut { registry }
    }
}

impl Delivery for FanOut {
    fn deliver(&self, publication: Arc<Publication>) {
        let shard = self.registry.shard(publication.topic().as_str()).read();
        let Some(subscribers) = shard.get(publication.topic()) else {
            return;
        };
        // Encoded and checked once; each subscriber gets a reference-counted clone.
        let Some(text) = SharedText::from_json(publication.frame().clone()) else {
            tracing::error!(topic = %publication.topic(), "encoded event is not UTF-8; dropped");
            return;
        };
        let frame = OutFrame::Text(text);
        for outbox in subscribers.values() {
            // A full outbox closes its own connection (4008); the others carry on.
            outbox.push(frame.clone());
        }
    }
}
