//! The broker contract every engine implements.

use crate::error::BrokerError;
use crate::publication::{Publication, PublicationDraft};
use async_trait::async_trait;
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;
use wshub_protocol::{ConnectionId, Epoch, Offset, Topic};

/// Where a topic's stream stands: the last offset given out, in which epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamPosition {
    /// Last offset given out (0 before the first publication).
    pub offset: Offset,
    /// The stream's current epoch.
    pub epoch: Epoch,
}

/// How much history a topic keeps; decided by the hub's topic rules, sent with each publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryPolicy {
    /// Events kept (0: none, but offsets still advance).
    pub size: usize,
    /// How long a stream lives after its last publish.
    pub ttl: Duration,
}

/// A `history` read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryQuery {
    /// Exclusive lower bound: with it, the oldest `limit` events after it; without, the newest `limit`.
    pub since: Option<Offset>,
    /// At most this many events.
    pub limit: usize,
}

/// The answer to a history read: events oldest first, and the stream's position.
#[derive(Debug, Clone)]
pub struct HistoryPage {
    /// Where the stream stands.
    pub position: StreamPosition,
    /// The events, oldest first.
    pub publications: Vec<Arc<Publication>>,
}

/// The answer to a recovery attempt.
#[derive(Debug, Clone)]
pub enum Recovery {
    /// Every event after the requested offset, oldest first, and the position after them.
    Complete {
        position: StreamPosition,
        publications: Vec<Arc<Publication>>,
    },
    /// History no longer holds them (or the epoch differs); the client must refetch state.
    Incomplete { position: StreamPosition },
}

/// One connection present on a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceMember {
    /// The connection.
    pub connection_id: ConnectionId,
    /// Its user (`None` when anonymous).
    pub user: Option<String>,
    /// Its `client_id`, if it gave one.
    pub client_id: Option<String>,
}

/// Who is on a topic: the full count and at most `limit` members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresencePage {
    /// Connections present, all nodes together.
    pub count: usize,
    /// Members, at most the limit asked for, ordered by connection id.
    pub clients: Vec<PresenceMember>,
    /// Whether members were left out.
    pub truncated: bool,
}

/// Whether the broker can serve right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerHealth {
    /// Publishing works.
    Ok,
    /// The backing service is unreachable; publishes fail with [`BrokerError::Unavailable`].
    Down,
}

/// Receives every publication the node must fan out — local and remote alike.
///
/// Called by the engine in stream order for each topic; it must not block
/// (the hub's implementation only enqueues onto bounded per-connection queues).
pub trait Delivery: Send + Sync + 'static {
    /// Fans one publication out to the node's subscribers of its topic.
    fn deliver(&self, publication: Arc<Publication>);
}

/// A broker engine.
///
/// Invariants every engine upholds (checked by the shared conformance suite):
/// 1. **One delivery path.** A successful [`publish`](Broker::publish) reaches
///    subscribers only through [`Delivery::deliver`], on this node and on every other
///    node of a cluster — the publisher's node gets no shortcut, so all nodes see the
///    same order.
/// 2. **Atomic per topic.** Assigning the offset, appending to history and handing
///    the publication to delivery happen as one step per topic: no reader of history
///    sees offset `n` before delivery of `n` was started, and deliveries of one topic
///    happen in offset order, never concurrently.
/// 3. **Offsets** are strictly increasing within an epoch, start at 1, have no gaps,
///    and the epoch changes whenever the stream is reset (engine restart, or the
///    topic expired `ttl` after its last publish and was re-created).
/// 4. **History** keeps at most `policy.size` newest events of a topic for
///    `policy.ttl` after the last publish; engines may also bound the total.
/// 5. **Records are shared and claimed once.** [`claim`](Broker::claim) succeeds for
///    exactly one caller per key until the key expires, on every node of a cluster; this
///    is what makes reconnection tokens single-use wherever they are presented.
/// 6. **Failure is explicit.** When the backing service is down, operations return
///    [`BrokerError::Unavailable`] rather than pretending success.
#[async_trait]
pub trait Broker: Send + Sync + 'static {
    /// The engine's name for `/ws/status` (`memory`, `redis`, `nats`).
    fn kind(&self) -> &'static str;

    /// Current health (cheap; no I/O).
    fn health(&self) -> BrokerHealth;

    /// Places a publication in its topic's stream, stores it per `policy`, and delivers it.
    async fn publish(&self, draft: PublicationDraft, policy: HistoryPolicy) -> Result<StreamPosition, BrokerError>;

    /// Where a topic's stream stands (offset 0 and a fresh epoch for a topic never published to).
    async fn position(&self, topic: &Topic) -> Result<StreamPosition, BrokerError>;

    /// Reads a topic's history.
    async fn history(&self, topic: &Topic, query: HistoryQuery) -> Result<HistoryPage, BrokerError>;

    /// Every event after `offset` in `epoch`, if history still holds all of them.
    async fn recover(&self, topic: &Topic, epoch: &Epoch, offset: Offset) -> Result<Recovery, BrokerError>;

    /// This node now has subscribers on `topic` (cluster engines start receiving it).
    async fn listen(&self, topic: &Topic) -> Result<(), BrokerError>;

    /// This node has no subscriber left on `topic`.
    async fn unlisten(&self, topic: &Topic) -> Result<(), BrokerError>;

    /// Every topic that currently has a stream (history or a live offset), with its position.
    async fn streams(&self) -> Result<Vec<(Topic, StreamPosition)>, BrokerError>;

    // Presence: who is on a topic (only for topics whose rule enables it).

    /// Adds (or refreshes) a member of `topic`.
    async fn presence_join(&self, topic: &Topic, member: PresenceMember) -> Result<(), BrokerError>;

    /// Removes a connection from `topic`.
    async fn presence_leave(&self, topic: &Topic, connection: &ConnectionId) -> Result<(), BrokerError>;

    /// Who is on `topic`, with at most `limit` members listed.
    async fn presence(&self, topic: &Topic, limit: usize) -> Result<PresencePage, BrokerError>;

    // Records: small values with a lifetime, shared by all nodes (reconnection tokens'
    // single use, the state a closed connection left for its resumption, revocations).

    /// Creates `key` for `ttl` if it does not exist; `true` for the one caller that created it.
    async fn claim(&self, key: &str, ttl: Duration) -> Result<bool, BrokerError>;

    /// Stores `value` under `key` for `ttl`, replacing any previous value.
    async fn put_record(&self, key: &str, value: Bytes, ttl: Duration) -> Result<(), BrokerError>;

    /// The value under `key`, unless it expired.
    async fn record(&self, key: &str) -> Result<Option<Bytes>, BrokerError>;
}
