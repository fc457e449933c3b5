//! wshub as a library: build a hub from a [`Config`](config::Config) and serve it.
//!
//! The path of one published message, in module order:
//! [`accept`] (TCP, HTTP, upgrade) → [`auth`] (token → identity) → [`session`]
//! (read, decode, dispatch) → [`permissions`] (topic rules) → the broker
//! (`wshub-broker`: offset, history) → [`fanout`] (to each subscriber's outbox) →
//! the session's writer (onto the socket). Backends enter through [`http`]; request types
//! of the application's own are answered by [`handlers`]. Raw stream routes ([`streams`]) are a
//! second kind of subscriber beside the session: one topic, payloads only. Off that path,
//! [`metrics`] counts and streams what happens, and [`dashboard`] serves the page that draws
//! the stream.
//!
//! ```no_run
//! # async fn run() -> Result<(), wshub_server::ServerError> {
//! let config = wshub_server::config::Config::default();
//! let server = wshub_server::Server::bind(config).await?;
//! println!("listening on {}", server.local_addr());
//! server.run(async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```
//!
//! Embedded in an application, the hub can answer the application's own request types in
//! Rust: register a [`Handler`](handlers::Handler) — an `async fn` taking a
//! [`HandlerRequest`](handlers::HandlerRequest) is one — for a glob of types. Its reply goes
//! to the caller with the request's `id`; events for everyone else are published through
//! [`Node::broker`](node::Node::broker) or the HTTP API. `crates/wshub-server/examples/embedded_handler.rs`
//! is a complete program.
//!
//! ```no_run
//! use std::time::Duration;
//! use wshub_server::handlers::{HandlerError, HandlerOptions, HandlerReply, HandlerRequest, HandlerResult};
//!
//! #[derive(serde::Deserialize)]
//! struct Add {
//!     a: i64,
//!     b: i64,
//! }
//!
//! async fn add(request: HandlerRequest) -> HandlerResult {
//!     let Add { a, b } = request.payload().map_err(|e| HandlerError::failed(e.to_string()))?;
//!     HandlerReply::json(&serde_json::json!({ "sum": a + b }))
//! }
//!
//! # async fn run() -> Result<(), wshub_server::ServerError> {
//! let config = wshub_server::config::Config::default();
//! let server = wshub_server::Server::builder(config)
//!     // {"id":"1","type":"calc.add","payload":{"a":1,"b":2}}
//!     //   → {"id":"1","type":"calc.add.result","payload":{"sum":3},"timestamp":…}
//!     .handler("calc.add", add)
//!     .handler_with("admin.*", add, HandlerOptions::default().roles(["admin"]).timeout(Duration::from_secs(1)))
//!     .bind()
//!     .await?;
//! server.run(async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```

pub mod accept;
pub mod auth;
pub mod config;
pub mod dashboard;
mod error;
pub mod fanout;
pub mod handlers;
pub mod http;
pub mod metrics;
pub mod node;
pub mod permissions;
pub mod resume;
pub mod session;
mod shutdown;
pub mod stats;
pub mod streams;
pub mod token_bucket;
pub mod transport;

pub use error::ServerError;

use crate::auth::Authenticator;
use crate::config::{BrokerKind, Config};
use crate::fanout::{FanOut, Registry};
use crate::handlers::{Handler, HandlerOptions, HandlerRoutes, RegisteredHandler};
use crate::metrics::Metrics;
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
    /// Starts building a hub, to register [`Handler`]s before binding.
    pub fn builder(config: Config) -> ServerBuilder {
        ServerBuilder {
            config,
            handlers: Vec::new(),
        }
    }

    /// Builds the hub and binds `server.host:server.port` (port 0 picks a free port).
    pub async fn bind(config: Config) -> Result<Server, ServerError> {
        Server::builder(config).bind().await
    }

    /// Builds the hub on an already bound listener.
    pub fn with_listener(config: Config, listener: TcpListener) -> Result<Server, ServerError> {
        Server::builder(config).with_listener(listener)
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
        // A first snapshot before the first request, so nobody reads an empty one.
        node.sampler.take(&node);
        let router = http::router(Arc::clone(&node));
        let stop_accepting = CancellationToken::new();
        let accept = tokio::spawn(accept::accept_loop(
            listener,
            router,
            node.config.websocket.handshake_timeout,
            stop_accepting.clone(),
        ));
        let stop_periodic = CancellationToken::new();
        let periodic = tokio::spawn(metrics::system::run(Arc::clone(&node), stop_periodic.clone()));
        tracing::info!(addr = %local_addr, path = %node.config.websocket.path, "wshub listening");

        shutdown.await;
        let timeout = node.config.server.shutdown_timeout;
        tracing::info!(
            connections = node.connections.count(),
            ?timeout,
            "shutting down: draining connections"
        );
        node.shutdown.begin(timeout);
        if tokio::time::timeout(timeout, node.shutdown.tasks.wait()).await.is_err() {
            tracing::warn!("shutdown_timeout reached; closing the remaining connections");
            node.connections.close_all(CloseCode::GoingAway, "server shutting down");
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), node.shutdown.tasks.wait()).await;
        }
        stop_periodic.cancel();
        let _ = periodic.await;
        stop_accepting.cancel();
        if accept.await.is_err() {
            tracing::warn!("accept loop panicked");
        }
        tracing::info!("shutdown complete");
        Ok(())
    }
}

/// A hub being assembled: its configuration and the handlers registered in code.
pub struct ServerBuilder {
    config: Config,
    handlers: Vec<RegisteredHandler>,
}

impl ServerBuilder {
    /// Answers request types matching `pattern` (a glob such as `token.*`; `*` also crosses
    /// `.`) with `handler`, under the default options: a 5 s timeout, every role may call it.
    /// Routes registered here are tried in registration order, before the `handlers:` entries
    /// of the config; the first match wins.
    pub fn handler(self, pattern: impl Into<String>, handler: impl Handler) -> Self {
        self.handler_with(pattern, handler, HandlerOptions::default())
    }

    /// Like [`ServerBuilder::handler`], with a timeout and the roles allowed to call it.
    pub fn handler_with(mut self, pattern: impl Into<String>, handler: impl Handler, options: HandlerOptions) -> Self {
        self.handlers
            .push(RegisteredHandler::new(pattern.into(), handler, options));
        self
    }

    /// Builds the hub and binds `server.host:server.port` (port 0 picks a free port).
    pub async fn bind(self) -> Result<Server, ServerError> {
        let addr = format!("{}:{}", self.config.server.host, self.config.server.port);
        let listener = listen(&addr)
            .await
            .map_err(|source| ServerError::Bind { addr, source })?;
        self.with_listener(listener)
    }

    /// Builds the hub on an already bound listener.
    pub fn with_listener(self, listener: TcpListener) -> Result<Server, ServerError> {
        let ServerBuilder { config, handlers } = self;
        if config.server.tls.cert.is_some() {
            return Err(ServerError::Unsupported(
                "server.tls: TLS termination is not built in yet; put a TLS proxy in front".into(),
            ));
        }
        let rules = TopicRules::new(&config).map_err(|e| ServerError::Config(e.to_string()))?;
        let handlers = HandlerRoutes::new(handlers, &config)?;
        let auth = Authenticator::new(&config.auth.jwt).map_err(|e| ServerError::Config(e.to_string()))?;
        let metrics = Metrics::new(&config, handlers.iter().map(|route| route.pattern()));
        let registry = Arc::new(Registry::default());
        let delivery = Arc::new(FanOut::new(Arc::clone(&registry), metrics.broadcast_histogram()));
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
        if config.auth.api_keys.is_empty() {
            tracing::info!(
                "no auth.api_keys configured: the server API answers loopback clients only and refuses proxied requests"
            );
        }
        let local_addr = listener.local_addr().map_err(|source| ServerError::Bind {
            addr: "listener".into(),
            source,
        })?;
        let node = Arc::new(Node::new(
            Arc::new(config),
            rules,
            handlers,
            auth,
            broker,
            registry,
            metrics,
        ));
        Ok(Server {
            node,
            listener,
            local_addr,
        })
    }
}

/// Pending connections the kernel may queue before the accept loop takes them. The usual
/// default (128) overflows under a reconnect storm or a burst of handshakes, and each overflowed
/// client waits a full SYN retry (1 s) before trying again; the kernel caps it at `somaxconn`.
const LISTEN_BACKLOG: u32 = 4096;

/// Binds `addr` (the first address it resolves to) with [`LISTEN_BACKLOG`].
async fn listen(addr: &str) -> std::io::Result<TcpListener> {
    let mut last_error = None;
    for resolved in tokio::net::lookup_host(addr).await? {
        let socket = if resolved.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        // As std and tokio do: a restarted hub can bind while old connections are in TIME_WAIT.
        socket.set_reuseaddr(true)?;
        match socket.bind(resolved) {
            Ok(()) => return socket.listen(LISTEN_BACKLOG),
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error.unwrap_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address to bind")))
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
