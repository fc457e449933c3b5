//! Fan-out: from one publication to every local subscriber's outbound queue.
//!
//! On the message path this is the hub's `Delivery`: the broker hands it each
//! publication in stream order, it wraps the encoded event once (a JSON event as a text
//! frame, a binary publication as a binary one), and pushes the same shared bytes onto each
//! subscriber's `Outbox`. A full outbox closes that connection (4008) instead of blocking
//! the publisher or anyone else.
//!
//! A subscriber can be *held* while its subscription is being set up: deliveries for it
//! are kept aside until the session has queued its `subscribed` reply and any replay,
//! then released in order without the ones the replay already covered. That hand-over
//! is what makes recovery gap-free and duplicate-free (docs/architecture.md).
//!
//! A raw stream connection (`streams/`) subscribes with a `Sink` of its own: it gets the
//! payload alone (a binary publication's whole frame), onto its outbox or, when rate-limited,
//! into a conflating `Latest` slot. Each form of a publication is encoded once, and only if
//! someone needs it.

use crate::metrics::histogram::AtomicHistogram;
use crate::metrics::monotonic_micros;
use crate::session::outbox::{EventFrame, Outbox, Outgoing, StreamMark, SubscriptionSlot};
use crate::streams::Latest;
use parking_lot::{Mutex, RwLock};
use std::cell::OnceCell;
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use wshub_broker::{Delivery, Publication};
use wshub_protocol::{CloseCode, Topic};

#[cfg(test)]
mod tests;

const SHARDS: usize = 64;

/// A connection's key in the registry: unique per process, cheaper than its id.
pub type ConnectionKey = u64;

type TopicMap = HashMap<Topic, HashMap<ConnectionKey, Sink>>;

/// Where one connection's deliveries of one topic go.
pub(crate) enum Sink {
    /// A `/ws` session: the event (JSON envelope or binary frame) with its stream position,
    /// onto the outbox (overflow: 4008).
    Session {
        /// The connection's queue.
        outbox: Outbox,
        /// The subscription's number within the connection.
        slot: SubscriptionSlot,
        /// Set while the subscription is being set up: deliveries wait here.
        held: Option<Arc<Mutex<Held>>>,
    },
    /// A raw stream sending every event: the payload alone (a binary publication's whole
    /// frame), onto the outbox (overflow: 4008).
    Payload(Outbox),
    /// A rate-limited raw stream: the payload alone (or binary frame), into a slot that keeps
    /// only the newest (overflow: conflate).
    Latest(Arc<Latest>),
}

/// Deliveries kept aside during a subscription's set-up, bounded like the outbox.
pub(crate) struct Held {
    publications: Vec<Arc<Publication>>,
    limit: usize,
}

/// The frames of one publication, each wrapped (and a text frame checked) on first need only.
struct Frames<'a> {
    publication: &'a Publication,
    /// When the fan-out began ([`monotonic_micros`]): where delivery latency counts from.
    published_at: u64,
    event: OnceCell<Option<EventFrame>>,
    payload: OnceCell<Option<EventFrame>>,
}

impl<'a> Frames<'a> {
    fn new(publication: &'a Publication, published_at: u64) -> Self {
        Frames {
            publication,
            published_at,
            event: OnceCell::new(),
            payload: OnceCell::new(),
        }
    }

    /// The event as `/ws` sessions receive it (`Publication::frame`, encoded once and shared
    /// with `history`): the JSON envelope, or the binary frame with the hub's metadata.
    fn event(&self) -> Option<&EventFrame> {
        self.event.get_or_init(|| EventFrame::event(self.publication)).as_ref()
    }

    /// What raw streams receive (`Publication::payload_frame`): the publisher's payload
    /// bytes, or the same binary frame as sessions.
    fn payload(&self) -> Option<&EventFrame> {
        self.payload
            .get_or_init(|| EventFrame::payload(self.publication))
            .as_ref()
    }
}

impl Sink {
    fn deliver(&self, frames: &Frames<'_>, publication: &Arc<Publication>) {
        match self {
            Sink::Session {
                outbox,
                slot,
                held: None,
            } => {
                let Some(frame) = frames.event() else { return };
                // A full outbox closes its own connection (4008); the others carry on.
                outbox.push(Outgoing::Event {
                    frame: frame.clone(),
                    mark: StreamMark {
                        slot: *slot,
                        offset: publication.offset.0,
                        published_at: frames.published_at,
                    },
                });
            }
            Sink::Session {
                outbox,
                held: Some(held),
                ..
            } => {
                let mut held = held.lock();
                if held.publications.len() >= held.limit {
                    outbox.closer().close(
                        CloseCode::SlowConsumer,
                        "slow consumer: too many events during subscribe",
                    );
                    return;
                }
                held.publications.push(Arc::clone(publication));
            }
            Sink::Payload(outbox) => {
                if let Some(frame) = frames.payload() {
                    outbox.push(Outgoing::Frame(frame.clone().into()));
                }
            }
            Sink::Latest(latest) => {
                if let Some(frame) = frames.payload() {
                    latest.put(frame.clone());
                }
            }
        }
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
            Some(Sink::Session { held: existing, .. }) => *existing = held,
            // Keys are unique per connection, and a raw stream never subscribes twice.
            Some(Sink::Payload(_) | Sink::Latest(_)) => {}
            None => {
                subscribers.insert(
                    key,
                    Sink::Session {
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

    /// Adds a raw stream's subscriber: live at once, nothing held (a raw stream starts with the
    /// next event and never recovers). Returns `true` when it is the topic's first subscriber on
    /// this node.
    pub(crate) fn subscribe_raw(&self, topic: &Topic, key: ConnectionKey, sink: Sink) -> bool {
        let mut shard = self.shard(topic.as_str()).write();
        let subscribers = shard.entry(topic.clone()).or_default();
        let first = subscribers.is_empty();
        if subscribers.insert(key, sink).is_none() {
            self.subscriptions.fetch_add(1, Ordering::Relaxed);
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
        let Some(Sink::Session { held, .. }) = shard.get_mut(topic).and_then(|s| s.get_mut(&key)) else {
            return None;
        };
        let publications = std::mem::take(&mut held.as_ref()?.lock().publications);
        if publications.is_empty() {
            *held = None;
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
        // Each form is encoded and checked once; each subscriber gets a reference-counted clone.
        let frames = Frames::new(&publication, published_at);
        for sink in subscribers.values() {
            sink.deliver(&frames, &publication);
        }
        let took = monotonic_micros().saturating_sub(published_at);
        self.broadcast.observe(took as f64 / 1e6);
    }
}
