//! The node: everything a connection or an HTTP handler needs, behind one cheap handle.

use crate::accept::{HandshakeRate, IpConnections, IpSlot, WarnThrottle};
use crate::auth::Authenticator;
use crate::config::Config;
use crate::fanout::{ConnectionKey, Registry};
use crate::handlers::HandlerRoutes;
use crate::metrics::Metrics;
use crate::metrics::sampler::Sampler;
use crate::permissions::TopicRules;
use crate::resume::ResumeKeys;
use crate::session::outbox::{Closer, Outbox};
use crate::shutdown::Shutdown;
use crate::stats::Stats;
use parking_lot::Mutex;
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;
use wshub_broker::{Broker, BrokerError, Content, PublicationDraft, StreamPosition};
use wshub_protocol::binary::Upload;
use wshub_protocol::{CloseCode, ConnectionId, EventId, EventName, Topic, now_millis};

/// How often a refused client IP may be warned about; other refusals are logged at debug level.
const REFUSAL_WARN_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Shared state of one hub process. Clone the [`Arc`], not the node.
pub struct Node {
    /// The validated configuration.
    pub config: Arc<Config>,
    /// Compiled topic rules.
    pub rules: TopicRules,
    /// Request types answered by handlers, in the order they are tried.
    pub handlers: HandlerRoutes,
    /// Token verification.
    pub auth: Authenticator,
    /// The broker engine.
    pub broker: Arc<dyn Broker>,
    /// Signs and checks reconnection tokens.
    pub resume_keys: ResumeKeys,
    /// Local subscriptions.
    pub registry: Arc<Registry>,
    /// Live connections, for the API and status, and the slots that bound them.
    pub connections: Arc<Connections>,
    /// Per-IP handshake buckets (`websocket.handshake_rate_per_ip`).
    pub handshake_rate: HandshakeRate,
    /// At most one warning per client IP per minute about refused (429) upgrades.
    pub refusal_warnings: WarnThrottle,
    /// Refusal counters.
    pub stats: Stats,
    /// Every metric of CONTRACT §10, counted on the message path.
    pub metrics: Arc<Metrics>,
    /// The latest `Snapshot` and the metric history (CONTRACT §8).
    pub sampler: Sampler,
    /// Draining state and task tracking.
    pub shutdown: Shutdown,
    /// When the node started.
    pub started: Instant,
    /// This node's name (`/ws/status`, `connection.established`).
    pub name: String,
    ids: IdGenerator,
}

impl Node {
    /// Assembles a node.
    pub fn new(
        config: Arc<Config>,
        rules: TopicRules,
        handlers: HandlerRoutes,
        auth: Authenticator,
        broker: Arc<dyn Broker>,
        registry: Arc<Registry>,
        metrics: Metrics,
    ) -> Node {
        let ids = IdGenerator::new();
        let sampler = Sampler::new(config.metrics.history_resolution, config.metrics.history_retention);
        let name = format!("wshub-{}", ids.prefix);
        let handshake_rate = HandshakeRate::new(config.websocket.handshake_rate_per_ip);
        let resume_keys = ResumeKeys::new(
            config.reconnection.secret.as_deref(),
            config.reconnection.token_ttl,
            &name,
        );
        Node {
            config,
            rules,
            handlers,
            auth,
            broker,
            resume_keys,
            registry,
            connections: Arc::default(),
            handshake_rate,
            refusal_warnings: WarnThrottle::new(REFUSAL_WARN_EVERY),
            stats: Stats::default(),
            sampler,
            metrics: Arc::new(metrics),
            shutdown: Shutdown::default(),
            started: Instant::now(),
            name,
            ids,
        }
    }

    /// A fresh `evt_…` id.
    pub fn event_id(&self) -> EventId {
        EventId::new(format!("evt_{}", self.ids.next()))
    }

    /// A fresh connection id and its registry key.
    pub fn connection_id(&self) -> (ConnectionId, ConnectionKey) {
        let key = self.ids.counter.fetch_add(1, Ordering::Relaxed);
        (ConnectionId::new(uuid::Uuid::new_v4().to_string()), key)
    }

    /// Publishes an event as the server (`sender_id` `"server"`), with the topic's history
    /// policy: the last step of `POST /api/publish` and of a handler's
    /// [`publish`](crate::handlers::HandlerRequest::publish), after their own checks of the
    /// topic rule, the name and the size.
    pub async fn publish_as_server(
        &self,
        topic: Topic,
        event: EventName,
        payload: Arc<RawValue>,
    ) -> Result<StreamPosition, BrokerError> {
        self.publish_content_as_server(topic, Content::Json { event, payload })
            .await
    }

    /// Publishes a binary frame as the server, like [`publish_as_server`](Self::publish_as_server):
    /// the last step of `POST /api/publish/{topic}`, after its checks of the topic rule and the
    /// size of the frame subscribers will receive.
    pub async fn publish_binary_as_server(&self, upload: Upload) -> Result<StreamPosition, BrokerError> {
        let topic = upload.topic().clone();
        self.publish_content_as_server(topic, Content::Binary(upload)).await
    }

    async fn publish_content_as_server(&self, topic: Topic, content: Content) -> Result<StreamPosition, BrokerError> {
        let policy = self.rules.history_for(topic.as_str());
        let draft = PublicationDraft {
            topic,
            content,
            id: self.event_id(),
            timestamp: now_millis(),
            sender_id: Arc::from("server"),
        };
        self.broker.publish(draft, policy).await
    }

    /// Seconds since start.
    pub fn uptime_seconds(&self) -> u64 {
        self.started.elapsed().as_secs()
    }
}

/// Makes ids unique across nodes (random prefix) and cheap (a counter).
struct IdGenerator {
    prefix: String,
    counter: AtomicU64,
}

impl IdGenerator {
    fn new() -> Self {
        let prefix = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
        IdGenerator {
            prefix,
            counter: AtomicU64::new(1),
        }
    }

    fn next(&self) -> String {
        format!("{}{:x}", self.prefix, self.counter.fetch_add(1, Ordering::Relaxed))
    }
}

/// What the node knows about one live connection.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    /// The authenticated user, if any.
    pub user: Option<String>,
    /// Closes the connection, and tells when it has fully ended (`Closer::ended`).
    pub closer: Closer,
    /// Its outbound queue, read for `buffered_events` (a conflating raw stream has none).
    pub outbox: Option<Outbox>,
}

/// Live connections by id.
#[derive(Default)]
pub struct Connections {
    table: Mutex<HashMap<ConnectionId, ConnectionInfo>>,
    /// Connections holding a slot, counted from the upgrade on (before the session registers).
    slots: AtomicUsize,
    /// The same connections counted per client IP (`max_connections_per_ip`).
    per_ip: Arc<IpConnections>,
}

/// Why [`Connections::reserve`] gave no slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotRefused {
    /// The client IP already holds `max_connections_per_ip` connections (HTTP 429).
    PerIp,
    /// The hub holds `max_connections` connections (HTTP 503).
    Full,
}

impl Connections {
    /// Takes a connection slot for a client at `ip`: refused if that address already holds
    /// `max_per_ip` connections, then if the hub holds `max`. The slot (and the address's share)
    /// is released when the returned [`ConnectionSlot`] is dropped.
    pub fn reserve(self: &Arc<Self>, ip: IpAddr, max_per_ip: usize, max: usize) -> Result<ConnectionSlot, SlotRefused> {
        let ip_slot = self.per_ip.try_acquire(ip, max_per_ip).ok_or(SlotRefused::PerIp)?;
        // On refusal `ip_slot` drops here and gives the address's share back.
        self.slots
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1))
            .map_err(|_| SlotRefused::Full)?;
        Ok(ConnectionSlot {
            connections: Arc::clone(self),
            ip: Some(ip_slot),
        })
    }

    /// Connections currently holding a slot.
    pub fn count(&self) -> usize {
        self.slots.load(Ordering::Acquire)
    }

    /// Messages queued for the sockets of registered connections and not yet written.
    pub fn buffered(&self) -> usize {
        self.table
            .lock()
            .values()
            .filter_map(|info| info.outbox.as_ref())
            .map(Outbox::queued)
            .sum()
    }

    /// Connections currently held by the client at `ip`.
    pub fn count_from(&self, ip: IpAddr) -> usize {
        self.per_ip.count(ip)
    }

    /// Registers a connection once its identity is known (or updates it after `auth`).
    pub fn register(&self, id: &ConnectionId, info: ConnectionInfo) {
        self.table.lock().insert(id.clone(), info);
    }

    /// Forgets a connection.
    pub fn unregister(&self, id: &ConnectionId) {
        self.table.lock().remove(id);
    }

    /// Closes every open connection matching `user` or `connection_id`; returns how many.
    pub fn disconnect(&self, user: Option<&str>, connection_id: Option<&str>, code: CloseCode, reason: &str) -> usize {
        let table = self.table.lock();
        let mut closed = 0;
        for (id, info) in table.iter() {
            let by_id = connection_id.is_some_and(|c| c == id.as_str());
            let by_user = user.is_some_and(|u| info.user.as_deref() == Some(u));
            // A connection already closing (an earlier disconnect, its client leaving) stays
            // listed until its session has finished; it is not closed, or counted, twice.
            if (by_id || by_user) && !info.closer.is_closing() {
                info.closer.close(code, reason.to_owned());
                closed += 1;
            }
        }
        closed
    }

    /// Closes a connection whose session is being resumed elsewhere; returns its closer (to
    /// wait for its end), if it was still open here.
    pub fn close_for_resumption(&self, connection_id: &str) -> Option<Closer> {
        let table = self.table.lock();
        let info = table.get(connection_id)?;
        let (code, reason) = crate::session::RESUMED_ELSEWHERE;
        info.closer.close(code, reason);
        Some(info.closer.clone())
    }

    /// Asks every connection to close.
    pub fn close_all(&self, code: CloseCode, reason: &'static str) {
        for info in self.table.lock().values() {
            info.closer.close(code, reason);
        }
    }
}

/// A held connection slot, kept by the session for the connection's whole life; released
/// (with its client IP's share) on drop.
pub struct ConnectionSlot {
    connections: Arc<Connections>,
    /// The client IP's share; `None` only while dropping.
    ip: Option<IpSlot>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        // The address's share first: once `count()` (and `/ws/status`) shows the connection gone,
        // its client can connect again.
        drop(self.ip.take());
        self.connections.slots.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const A: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn per_ip_limit_is_checked_before_the_global_one() {
        let connections = Arc::new(Connections::default());
        let _a1 = connections.reserve(A, 1, 2).expect("first");
        assert!(matches!(connections.reserve(A, 1, 2), Err(SlotRefused::PerIp)));
        let _b1 = connections.reserve(B, 1, 2).expect("second address");
        // Both limits are reached for A; the per-IP one answers.
        assert!(matches!(connections.reserve(A, 1, 2), Err(SlotRefused::PerIp)));
        assert_eq!(connections.count(), 2);
    }

    #[test]
    fn a_full_hub_gives_the_address_share_back() {
        let connections = Arc::new(Connections::default());
        let _a1 = connections.reserve(A, 5, 1).expect("first");
        assert!(matches!(connections.reserve(B, 5, 1), Err(SlotRefused::Full)));
        assert_eq!(connections.count_from(B), 0, "a refused reservation holds nothing");
        assert_eq!(connections.per_ip.addresses(), 1);
    }

    #[test]
    fn dropping_the_slot_releases_both_counts() {
        let connections = Arc::new(Connections::default());
        let slot = connections.reserve(A, 1, 1).expect("first");
        assert_eq!((connections.count(), connections.count_from(A)), (1, 1));
        drop(slot);
        assert_eq!((connections.count(), connections.count_from(A)), (0, 0));
        assert_eq!(connections.per_ip.addresses(), 0, "the address is forgotten at 0");
        let _again = connections.reserve(A, 1, 1).expect("free again");
    }
}
