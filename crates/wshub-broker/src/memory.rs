//! The in-memory engine: one process, streams kept in RAM, sharded by topic.

use crate::error::BrokerError;
use crate::presence::PresenceTable;
use crate::publication::PublicationDraft;
use crate::records::RecordTable;
use crate::stream::Stream;
use crate::traits::{
    Broker, BrokerHealth, Delivery, HistoryPage, HistoryPolicy, HistoryQuery, PresenceMember, PresencePage, Recovery,
    StreamPosition,
};
use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::time::Instant;
use wshub_protocol::{ConnectionId, Epoch, Offset, Topic};

const SHARDS: usize = 32;
/// How often expired streams are swept out.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

type StreamMap = HashMap<Topic, Arc<Mutex<Stream>>>;

/// The in-memory broker engine: the default, for a single node.
///
/// Epochs change on every restart, as the history is gone.
#[derive(Clone)]
pub struct MemoryBroker {
    shared: Arc<Shared>,
}

struct Shared {
    /// Topic → stream, sharded so publishers on different topics rarely meet on a lock.
    shards: Box<[Mutex<StreamMap>]>,
    hasher: RandomState,
    delivery: Arc<dyn Delivery>,
    /// Bytes held by all histories together, bounded by `max_bytes`.
    history_bytes: AtomicUsize,
    max_bytes: usize,
    /// Stream lifetime for topics that were read but never published to.
    idle_ttl: Duration,
    epoch_prefix: String,
    epoch_counter: AtomicU64,
    presence: PresenceTable,
    records: RecordTable,
}

impl MemoryBroker {
    /// Creates the engine. `max_bytes` bounds all histories together; `idle_ttl` is how
    /// long a stream that was only read lives. Must be called inside a Tokio runtime
    /// (it starts the sweeper of expired streams, which ends with the broker).
    pub fn new(delivery: Arc<dyn Delivery>, max_bytes: usize, idle_ttl: Duration) -> Self {
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let shared = Arc::new(Shared {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
            delivery,
            history_bytes: AtomicUsize::new(0),
            max_bytes,
            idle_ttl,
            epoch_prefix: nonce[..8].to_owned(),
            epoch_counter: AtomicU64::new(0),
            presence: PresenceTable::default(),
            records: RecordTable::default(),
        });
        tokio::spawn(sweep_expired(Arc::downgrade(&shared)));
        MemoryBroker { shared }
    }
}

impl Shared {
    fn shard(&self, topic: &Topic) -> &Mutex<StreamMap> {
        &self.shards[self.hasher.hash_one(topic.as_str()) as usize % SHARDS]
    }

    fn new_epoch(&self) -> Epoch {
        let n = self.epoch_counter.fetch_add(1, Ordering::Relaxed);
        Epoch::new(format!("{}{:x}", self.epoch_prefix, n))
    }

    /// The topic's live stream, re-created with a new epoch if it had expired.
    fn stream(&self, topic: &Topic, ttl: Duration, now: Instant) -> Arc<Mutex<Stream>> {
        let mut shard = self.shard(topic).lock();
        if let Some(stream) = shard.get(topic) {
            let expired = stream.lock().is_expired(now);
            if !expired {
                return Arc::clone(stream);
            }
            if let Some(old) = shard.remove(topic) {
                self.history_bytes.fetch_sub(old.lock().bytes(), Ordering::Relaxed);
            }
        }
        let stream = Arc::new(Mutex::new(Stream::new(self.new_epoch(), ttl, now)));
        shard.insert(topic.clone(), Arc::clone(&stream));
        stream
    }

    fn existing(&self, topic: &Topic, now: Instant) -> Option<Arc<Mutex<Stream>>> {
        let shard = self.shard(topic).lock();
        shard.get(topic).filter(|s| !s.lock().is_expired(now)).cloned()
    }

    /// Drops the least recently published streams until histories fit `max_bytes`.
    fn enforce_budget(&self) {
        while self.history_bytes.load(Ordering::Relaxed) > self.max_bytes {
            let mut oldest: Option<(Instant, Topic)> = None;
            for shard in self.shards.iter() {
                for (topic, stream) in shard.lock().iter() {
                    let s = stream.lock();
                    if s.bytes() > 0 && oldest.as_ref().is_none_or(|(t, _)| s.touched() < *t) {
                        oldest = Some((s.touched(), topic.clone()));
                    }
                }
            }
            let Some((_, topic)) = oldest else { return };
            if let Some(stream) = self.shard(&topic).lock().remove(&topic) {
                let bytes = stream.lock().bytes();
                self.history_bytes.fetch_sub(bytes, Ordering::Relaxed);
                tracing::info!(topic = %topic, bytes, "history budget exceeded: dropped the least recently published topic");
            }
        }
    }

    fn sweep(&self, now: Instant) {
        for shard in self.shards.iter() {
            shard.lock().retain(|_, stream| {
                let s = stream.lock();
                let keep = !s.is_expired(now);
                if !keep {
                    self.history_bytes.fetch_sub(s.bytes(), Ordering::Relaxed);
                }
                keep
            });
        }
        self.records.sweep(now);
    }
}

async fn sweep_expired(shared: Weak<Shared>) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(shared) = shared.upgrade() else { return };
        shared.sweep(Instant::now());
    }
}

#[async_trait]
impl Broker for MemoryBroker {
    fn kind(&self) -> &'static str {
        "memory"
    }

    fn health(&self) -> BrokerHealth {
        BrokerHealth::Ok
    }

    async fn publish(&self, draft: PublicationDraft, policy: HistoryPolicy) -> Result<StreamPosition, BrokerError> {
        let shared = &self.shared;
        let now = Instant::now();
        let stream = shared.stream(&draft.topic, policy.ttl, now);
        let position = {
            let mut stream = stream.lock();
            let (publication, delta) = stream.append(draft, policy, now);
            // Delivered under the stream lock: this is what keeps deliveries of one
            // topic in offset order and history never ahead of delivery (invariant 2).
            shared.delivery.deliver(publication);
            if delta >= 0 {
                shared.history_bytes.fetch_add(delta as usize, Ordering::Relaxed);
            } else {
                shared.history_bytes.fetch_sub(delta.unsigned_abs(), Ordering::Relaxed);
            }
            stream.position()
        };
        shared.enforce_budget();
        Ok(position)
    }

    async fn position(&self, topic: &Topic) -> Result<StreamPosition, BrokerError> {
        let stream = self.shared.stream(topic, self.shared.idle_ttl, Instant::now());
        Ok(stream.lock().position())
    }

    async fn history(&self, topic: &Topic, query: HistoryQuery) -> Result<HistoryPage, BrokerError> {
        let stream = self.shared.stream(topic, self.shared.idle_ttl, Instant::now());
        let stream = stream.lock();
        Ok(HistoryPage {
            position: stream.position(),
            publications: stream.page(query),
        })
    }

    async fn recover(&self, topic: &Topic, epoch: &Epoch, offset: Offset) -> Result<Recovery, BrokerError> {
        let stream = self.shared.stream(topic, self.shared.idle_ttl, Instant::now());
        let stream = stream.lock();
        let position = stream.position();
        Ok(match stream.recover(epoch, offset) {
            Some(publications) => Recovery::Complete { position, publications },
            None => Recovery::Incomplete { position },
        })
    }

    async fn listen(&self, _topic: &Topic) -> Result<(), BrokerError> {
        Ok(())
    }

    async fn unlisten(&self, _topic: &Topic) -> Result<(), BrokerError> {
        Ok(())
    }

    async fn streams(&self) -> Result<Vec<(Topic, StreamPosition)>, BrokerError> {
        let now = Instant::now();
        let mut all = Vec::new();
        for shard in self.shared.shards.iter() {
            for (topic, stream) in shard.lock().iter() {
                let s = stream.lock();
                if !s.is_expired(now) {
                    all.push((topic.clone(), s.position()));
                }
            }
        }
        all.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(all)
    }

    async fn presence_join(&self, topic: &Topic, member: PresenceMember) -> Result<(), BrokerError> {
        self.shared.presence.join(topic, member);
        Ok(())
    }

    async fn presence_leave(&self, topic: &Topic, connection: &ConnectionId) -> Result<(), BrokerError> {
        self.shared.presence.leave(topic, connection);
        Ok(())
    }

    async fn presence(&self, topic: &Topic, limit: usize) -> Result<PresencePage, BrokerError> {
        Ok(self.shared.presence.page(topic, limit))
    }

    async fn claim(&self, key: &str, ttl: Duration) -> Result<bool, BrokerError> {
        Ok(self.shared.records.claim(key, ttl, Instant::now()))
    }

    async fn put_record(&self, key: &str, value: Bytes, ttl: Duration) -> Result<(), BrokerError> {
        self.shared.records.put(key, value, ttl, Instant::now());
        Ok(())
    }

    async fn record(&self, key: &str) -> Result<Option<Bytes>, BrokerError> {
        Ok(self.shared.records.get(key, Instant::now()))
    }
}

impl MemoryBroker {
    /// Whether a topic currently has a live stream (used by tests and the channel API).
    pub fn has_stream(&self, topic: &Topic) -> bool {
        self.shared.existing(topic, Instant::now()).is_some()
    }

    /// Bytes held by all histories together.
    pub fn history_bytes(&self) -> usize {
        self.shared.history_bytes.load(Ordering::Relaxed)
    }
}
