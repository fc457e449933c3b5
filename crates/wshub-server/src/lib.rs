//! wshub as a library: build a hub from a [`Config`](config::Config) and serve it.
//!
//! The path of one published message, in module order:
//! [`accept`] (TCP, HTTP, upgrade) → [`auth`] (token → identity) → [`session`]
//! (read, decode, dispatch) → [`permissions`] (topic rules) → the broker
//! (`wshub-broker`: offset, history) → [`fanout`] (to each subscriber's outbox) →
//! the session's writer (onto the socket). Backends enter through [`http`].
//!
//! ```no_run
//! # async fn run() -> Result<(), wshub_server::ServerError> {
//! let config = wshub_server::config::Config::default();
//! let server = wshub_server::Server::bind(config).await?;
//! println!("listening on {}", server.local_addr());
//! server.run(async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```

pub mod accept;
pub mod auth;
pub mod config;
mod error;
pub mod fanout;
pub mod http;
pub mod node;
pub mod permissions;
pub mod session;
mod shutdown;
pub mod stats;
pub mod token_bucket;
pub mod transport;

pub use error::ServerError;

use crate::auth::Authenticator;
use crate::config::{BrokerKind, Config};
use crate::fanout::{FanOut, Registry};
use crate::node::Node;
use crate::permissions::TopicRules;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use wshub_broker::{Broker, MemoryBroker};
use wshub_protocol::CloseCode;

/// A bound, not yet running hub.
pub struct Server {
    node: Arc<Node>,
    listener: TcpListener,
    local_addr: SocketAddr,
}

impl Server {
    /// Builds the hub and binds `server.host:server.port` (port 0 picks a free port).
    pub async fn bind(config: Config) -> Result<Server, ServerError> {
        let addr = format!("{}:{}", config.server.host, config.server.port);
        let listener = TcpListener::bind(&addr)
            .await
            .map_err(|source| ServerError::Bind { addr, source })?;
        Server::with_listener(config, listener)
    }

    /// Builds the hub on an already bound listener.
    pub fn with_listener(config: Config, listener: TcpListener) -> Result<Server, ServerError> {
        if config.server.tls.cert.is_some() {
            return Err(ServerError::Unsupported(
                "server.tls: TLS termination is not built in yet; put a TLS proxy in front".into(),
            ));
        }
        let rules = TopicRules::new(&config).map_err(|e| ServerError::Config(e.to_string()))?;
        let auth = Authenticator::new(&config.auth.jwt).map_err(|e| ServerError::Config(e.to_string()))?;
        let registry = Arc::new(Registry::default());
        let delivery = Arc::new(FanOut::new(Arc::clone(&registry)));
        let broker: Arc<dyn Broker> = match config.broker.kind {
            BrokerKind::Memory => Arc::new(MemoryBroker::new(
                delivery,
                config.history.max_bytes.as_usize(),
                rules.longest_ttl(),
            )),
            other => {
                return Err(ServerError::Unsupported(format!(
                    "broker.kind: {other:?} engine is not available in this build; use memory"
                )));
            }
        };
        raise_file_limit(config.websocket.max_connections);
        for feature in not_yet_served(&config) {
            tracing::warn!("{feature}");
        }
        if config.auth.api_keys.is_empty() {
            tracing::info!(
                "no auth.api_keys configured: the server API answers loopback clients only and refuses proxied requests"
            );
        }
        let local_addr = listener.local_addr().map_err(|source| ServerError::Bind {
            addr: "listener".into(),
            source,
        })?;
        let node = Arc::new(Node::new(Arc::new(config), rules, auth, broker, registry));
        Ok(Server {
            node,
            listener,
            local_addr,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The node's shared state (for embedding and tests).
    pub fn node(&self) -> &Arc<Node> {
        &self.node
    }

    /// Serves until `shutdown` resolves, then drains (CONTRACT §3) and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
        let Server {
            node,
            listener,
            local_addr,
        } = self;
        let router = http::router(Arc::clone(&node));
        let stop_accepting = CancellationToken::new();
        let accept = tokio::spawn(accept::accept_loop(
            listener,
            router,
            node.config.websocket.handshake_timeout,
            stop_accepting.clone(),
        ));
        tracing::info!(addr = %local_addr, path = %node.config.websocket.path, "wshub listening");

        shutdown.await;
        let timeout = node.config.server.shutdown_timeout;
        tracing::info!(
            connections = node.connections.count(),
            ?timeout,
            "shutting down: draining connections"
        );
        node.shutdown.begin();
        if tokio::time::timeout(timeout, node.shutdown.tasks.wait()).await.is_err() {
            tracing::warn!("shutdown_timeout reached; closing the remaining connections");
            node.connections.close_all(CloseCode::GoingAway, "server shutting down");
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), node.shutdown.tasks.wait()).await;
        }
        stop_accepting.cancel();
        if accept.await.is_err() {
            tracing::warn!("accept loop panicked");
        }
        tracing::info!("shutdown complete");
        Ok(())
    }
}

/// Configured features this version accepts in its config but does not serve yet,
/// so an operator is told rather than left to discover it.
fn not_yet_served(config: &Config) -> Vec<String> {
    let mut notes = Vec::new();
    if !config.handlers.is_empty() {
        notes.push(
            "handlers: request handlers are not served by this version; those request types get `unknown_type`"
                .to_owned(),
        );
    }
    if !config.streams.is_empty() {
        notes.push("streams: raw stream routes are not served by this version".to_owned());
    }
    if config.topics.iter().any(|rule| rule.presence) {
        notes.push(
            "topics[].presence: presence is not served by this version; `presence` requests get `unavailable`"
                .to_owned(),
        );
    }
    notes
}

/// Raises the open-file soft limit to the hard limit; warns if it is still below
/// what `max_connections` needs (CONTRACT §15).
fn raise_file_limit(max_connections: usize) {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if (limit as usize) < max_connections + 64 => {
            tracing::warn!(
                limit,
                max_connections,
                "open-file limit is below websocket.max_connections; raise `ulimit -n`"
            )
        }
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "could not raise the open-file limit"),
    }
}
