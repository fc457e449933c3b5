//! The node: everything a connection or an HTTP handler needs, behind one cheap handle.

use crate::auth::Authenticator;
use crate::config::Config;
use crate::fanout::{ConnectionKey, Registry};
use crate::permissions::TopicRules;
use crate::session::outbox::Closer;
use crate::shutdown::Shutdown;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;
use wshub_broker::Broker;
use wshub_protocol::{CloseCode, ConnectionId, EventId};

/// Shared state of one hub process. Clone the [`Arc`], not the node.
pub struct Node {
    /// The validated configuration.
    pub config: Arc<Config>,
    /// Compiled topic rules.
    pub rules: TopicRules,
    /// Token verification.
    pub auth: Authenticator,
    /// The broker engine.
    pub broker: Arc<dyn Broker>,
    /// Local subscriptions.
    pub registry: Arc<Registry>,
    /// Live connections, for the API and status.
    pub connections: Arc<Connections>,
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
        auth: Authenticator,
        broker: Arc<dyn Broker>,
        registry: Arc<Registry>,
    ) -> Node {
        let ids = IdGenerator::new();
        let name = format!("wshub-{}", ids.prefix);
        Node {
            config,
            rules,
            auth,
            broker,
            registry,
            connections: Arc::default(),
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
    /// Closes the connection.
    pub closer: Closer,
}

/// Live connections by id.
#[derive(Default)]
pub struct Connections {
    table: Mutex<HashMap<ConnectionId, ConnectionInfo>>,
    /// Connections holding a slot, counted from the upgrade on (before the session registers).
    slots: AtomicUsize,
}

impl Connections {
    /// Takes a connection slot if fewer than `max` are held.
    pub fn try_reserve(self: &Arc<Self>, max: usize) -> Option<ConnectionSlot> {
        self.slots
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1))
            .ok()
            .map(|_| ConnectionSlot {
                connections: Arc::clone(self),
            })
    }

    /// Connections currently holding a slot.
    pub fn count(&self) -> usize {
        self.slots.load(Ordering::Acquire)
    }

    /// Registers a connection once its identity is known (or updates it after `auth`).
    pub fn register(&self, id: &ConnectionId, info: ConnectionInfo) {
        self.table.lock().insert(id.clone(), info);
    }

    /// Forgets a connection.
    pub fn unregister(&self, id: &ConnectionId) {
        self.table.lock().remove(id);
    }

    /// Closes every connection matching `user` or `connection_id`; returns how many.
    pub fn disconnect(&self, user: Option<&str>, connection_id: Option<&str>, code: CloseCode, reason: &str) -> usize {
        let table = self.table.lock();
        let mut closed = 0;
        for (id, info) in table.iter() {
            let by_id = connection_id.is_some_and(|c| c == id.as_str());
            let by_user = user.is_some_and(|u| info.user.as_deref() == Some(u));
            if by_id || by_user {
                info.closer.close(code, reason.to_owned());
                closed += 1;
            }
        }
        closed
    }

    /// Asks every connection to close.
    pub fn close_all(&self, code: CloseCode, reason: &'static str) {
        for info in self.table.lock().values() {
            info.closer.close(code, reason);
        }
    }
}

/// A held connection slot; released on drop.
pub struct ConnectionSlot {
    connections: Arc<Connections>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.connections.slots.fetch_sub(1, Ordering::AcqRel);
    }
}
