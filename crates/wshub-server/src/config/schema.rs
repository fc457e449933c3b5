//! The configuration schema: one struct per YAML section, field names equal to the YAML keys, and
//! `Default` impls that are exactly the defaults of contract §15.
//!
//! Every section is `deny_unknown_fields` (a typo is an error, not a silently ignored key) and
//! `default` (a section given in part keeps the defaults of the keys it omits). The layering in
//! `load` merges over a serialised `Config::default()`, so these defaults are the single source.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::rules::{HandlerRoute, StreamRoute, TopicRule};
use super::units::{self, Size};

/// The whole hub configuration (contract §15).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Listening address, TLS and shutdown.
    pub server: ServerConfig,
    /// The `/ws` endpoint: limits, queues, heartbeat, origins.
    pub websocket: WebSocketConfig,
    /// permessage-deflate (§13).
    pub compression: CompressionConfig,
    /// Tokens, anonymous access and API keys (§5, §11).
    pub auth: AuthConfig,
    /// Ordered topic rules; the first whose glob matches a topic decides (§5, §15).
    pub topics: Vec<TopicRule>,
    /// Default history per topic and the global history budget (§6).
    pub history: HistoryConfig,
    /// Token buckets per request type (§5).
    pub rate_limits: RateLimitsConfig,
    /// Reconnection tokens (§6).
    pub reconnection: ReconnectionConfig,
    /// Extra raw stream paths (§9).
    pub streams: Vec<StreamRoute>,
    /// Request types routed to backend HTTP endpoints (§7).
    pub handlers: Vec<HandlerRoute>,
    /// Prometheus prefix and the live metrics stream (§8, §10).
    pub metrics: MetricsConfig,
    /// The built-in `system` topic (§14).
    pub system: SystemConfig,
    /// The built-in dashboard page.
    pub dashboard: DashboardConfig,
    /// The broker engine (memory, redis, nats).
    pub broker: BrokerConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            server: ServerConfig::default(),
            websocket: WebSocketConfig::default(),
            compression: CompressionConfig::default(),
            auth: AuthConfig::default(),
            topics: TopicRule::defaults(),
            history: HistoryConfig::default(),
            rate_limits: RateLimitsConfig::default(),
            reconnection: ReconnectionConfig::default(),
            streams: Vec::new(),
            handlers: Vec::new(),
            metrics: MetricsConfig::default(),
            system: SystemConfig::default(),
            dashboard: DashboardConfig::default(),
            broker: BrokerConfig::default(),
        }
    }
}

impl Config {
    /// History `(size, ttl)` of the topic rule at `rule_index`: the rule's own `history` values
    /// where it sets them, otherwise the global `history.size` / `history.ttl` (also for an index
    /// past the end of `topics`).
    pub fn history_for(&self, rule_index: usize) -> (usize, Duration) {
        let own = self.topics.get(rule_index).and_then(|rule| rule.history.as_ref());
        (
            own.and_then(|h| h.size).unwrap_or(self.history.size),
            own.and_then(|h| h.ttl).unwrap_or(self.history.ttl),
        )
    }
}

/// `server:` — where the hub listens.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to bind (default `127.0.0.1`).
    pub host: String,
    /// Port to bind (default 8000; 0 picks a free port).
    pub port: u16,
    /// How long shutdown waits for in-flight replies before closing with 1001 (default 10 s).
    #[serde(with = "units::duration")]
    pub shutdown_timeout: Duration,
    /// Optional TLS certificate and key.
    pub tls: TlsConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".to_owned(),
            port: 8000,
            shutdown_timeout: Duration::from_secs(10),
            tls: TlsConfig::default(),
        }
    }
}

/// `server.tls:` — PEM files; both or neither.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// Certificate chain (PEM).
    pub cert: Option<PathBuf>,
    /// Private key (PEM).
    pub key: Option<PathBuf>,
}

/// `websocket:` — the main `/ws` endpoint.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WebSocketConfig {
    /// URL path of the protocol endpoint (default `/ws`).
    pub path: String,
    /// Largest inbound message after decompression; larger closes with 1009 (default 1 MiB).
    pub max_message_size: Size,
    /// Connections the hub accepts; past it upgrades get 503 (default 10000).
    pub max_connections: usize,
    /// Connections per client IP; past it upgrades get 429 (default 1000).
    pub max_connections_per_ip: usize,
    /// WebSocket handshakes per client IP, as a token bucket: `capacity` at once, then
    /// `refill_per_sec`; over it upgrades get 429 with `Retry-After` (default 1000, 1000/s).
    pub handshake_rate_per_ip: Bucket,
    /// Time to read the HTTP upgrade request and complete the handshake (default 10 s).
    #[serde(with = "units::duration")]
    pub handshake_timeout: Duration,
    /// `*` or exact `scheme://host[:port]` origins allowed to connect (default `["*"]`).
    pub allowed_origins: Vec<String>,
    /// Messages queued per connection before it is closed with 4008 (default 1024).
    pub outbound_queue: usize,
    /// Bytes queued per connection before it is closed with 4008 (default 4 MiB).
    pub outbound_queue_bytes: Size,
    /// Topics one connection may hold (default 1000).
    pub max_subscriptions_per_connection: usize,
    /// A socket write that takes longer closes the connection with 4008 (default 30 s).
    #[serde(with = "units::duration")]
    pub write_timeout: Duration,
    /// Interval of server Pings (default 54 s); must be below `pong_wait`.
    #[serde(with = "units::duration")]
    pub ping_period: Duration,
    /// Silence after which a connection is closed with 4000 (default 60 s).
    #[serde(with = "units::duration")]
    pub pong_wait: Duration,
}

impl Default for WebSocketConfig {
    fn default() -> Self {
        Self {
            path: "/ws".to_owned(),
            max_message_size: Size::mib(1),
            max_connections: 10_000,
            max_connections_per_ip: 1000,
            handshake_rate_per_ip: Bucket::new(1000, 1000.0),
            handshake_timeout: Duration::from_secs(10),
            allowed_origins: vec!["*".to_owned()],
            outbound_queue: 1024,
            outbound_queue_bytes: Size::mib(4),
            max_subscriptions_per_connection: 1000,
            write_timeout: Duration::from_secs(30),
            ping_period: Duration::from_secs(54),
            pong_wait: Duration::from_secs(60),
        }
    }
}

/// `compression:` — permessage-deflate.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CompressionConfig {
    /// Negotiate permessage-deflate when the client offers it (default true).
    pub enabled: bool,
    /// Messages smaller than this are sent uncompressed (default 1 KiB).
    pub threshold: Size,
}

impl Default for CompressionConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            threshold: Size::kib(1),
        }
    }
}

/// `auth:` — who may connect and call the server API.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Connections without a token get role `anonymous` (default true).
    pub allow_anonymous: bool,
    /// JWT verification keys.
    pub jwt: JwtConfig,
    /// Bearer keys for the `/api` server API; empty = loopback clients only (default empty).
    pub api_keys: Vec<String>,
    /// Time for the first `auth` message when anonymous access is off (default 10 s).
    #[serde(with = "units::duration")]
    pub auth_timeout: Duration,
    /// Time to refresh an expired token before close 4002 (default 30 s).
    #[serde(with = "units::duration")]
    pub refresh_grace: Duration,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            allow_anonymous: true,
            jwt: JwtConfig::default(),
            api_keys: Vec::new(),
            auth_timeout: Duration::from_secs(10),
            refresh_grace: Duration::from_secs(30),
        }
    }
}

/// `auth.jwt:` — token verification keys; a token's `alg` must match a configured key.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct JwtConfig {
    /// Shared secret for HS256 tokens.
    pub hs256_secret: Option<String>,
    /// PEM file with the RSA public key for RS256 tokens.
    pub rs256_public_key: Option<PathBuf>,
    /// PEM file with the EC public key for ES256 tokens.
    pub es256_public_key: Option<PathBuf>,
    /// Clock skew allowed on `exp` (default 5 s).
    #[serde(with = "units::duration")]
    pub leeway: Duration,
}

impl Default for JwtConfig {
    fn default() -> Self {
        Self {
            hs256_secret: None,
            rs256_public_key: None,
            es256_public_key: None,
            leeway: Duration::from_secs(5),
        }
    }
}

/// `history:` — defaults for topic rules and the global budget.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HistoryConfig {
    /// Events kept per topic for rules that set none (default 100; 0 keeps none).
    pub size: usize,
    /// Stream lifetime after the last publish for rules that set none (default 300 s).
    #[serde(with = "units::duration")]
    pub ttl: Duration,
    /// All history together; past it the least recently published topic is dropped (256 MiB).
    pub max_bytes: Size,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self {
            size: 100,
            ttl: Duration::from_secs(300),
            max_bytes: Size::mib(256),
        }
    }
}

/// `rate_limits:` — one token bucket per connection per request type.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitsConfig {
    /// `ping` requests (default 120, 2/s).
    pub ping: Bucket,
    /// `subscribe` requests (default 30, 1/s).
    pub subscribe: Bucket,
    /// `unsubscribe` requests (default 30, 1/s).
    pub unsubscribe: Bucket,
    /// Every other request type, binary publishes and malformed frames (default 60, 10/s).
    pub default: Bucket,
    /// Refusals (all types) within 10 s past which the connection is closed with 1008 (100).
    pub abuse_close_after: u32,
}

impl Default for RateLimitsConfig {
    fn default() -> Self {
        Self {
            ping: Bucket::new(120, 2.0),
            subscribe: Bucket::new(30, 1.0),
            unsubscribe: Bucket::new(30, 1.0),
            default: Bucket::default(),
            abuse_close_after: 100,
        }
    }
}

/// A token bucket: `capacity` requests at once, refilled at `refill_per_sec`.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Bucket {
    /// Tokens when full (burst size).
    pub capacity: u32,
    /// Tokens added per second.
    pub refill_per_sec: f64,
}

impl Bucket {
    /// A bucket of `capacity` tokens refilled at `refill_per_sec`.
    pub const fn new(capacity: u32, refill_per_sec: f64) -> Self {
        Self {
            capacity,
            refill_per_sec,
        }
    }
}

impl Default for Bucket {
    /// The `rate_limits.default` bucket (60, 10/s).
    fn default() -> Self {
        Self::new(60, 10.0)
    }
}

/// `reconnection:` — reconnection tokens.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ReconnectionConfig {
    /// Validity of a reconnection token (default 300 s).
    #[serde(with = "units::duration")]
    pub token_ttl: Duration,
    /// Key that signs reconnection tokens; every node of a cluster needs the same one.
    /// Unset: a random key per process (tokens then die with the process).
    pub secret: Option<String>,
}

impl Default for ReconnectionConfig {
    fn default() -> Self {
        Self {
            token_ttl: Duration::from_secs(300),
            secret: None,
        }
    }
}

/// `metrics:` — Prometheus prefix and the live metrics stream.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Prefix of every Prometheus metric name (default `wshub`).
    pub prefix: String,
    /// Path of the live metrics stream and JSON snapshot (default `/ws/metrics`).
    pub stream_path: String,
    /// Spacing of stored time-series points (default 10 s).
    #[serde(with = "units::duration")]
    pub history_resolution: Duration,
    /// How far back time series reach (default 24 h).
    #[serde(with = "units::duration")]
    pub history_retention: Duration,
    /// Interval of `Heartbeat` messages on the stream (default 30 s).
    #[serde(with = "units::duration")]
    pub heartbeat_interval: Duration,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            prefix: "wshub".to_owned(),
            stream_path: "/ws/metrics".to_owned(),
            history_resolution: Duration::from_secs(10),
            history_retention: Duration::from_secs(24 * 3600),
            heartbeat_interval: Duration::from_secs(30),
        }
    }
}

/// `system:` — the built-in `system` topic.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SystemConfig {
    /// Interval of `system_metrics` events (default 5 s).
    #[serde(with = "units::duration")]
    pub interval: Duration,
}

impl Default for SystemConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(5),
        }
    }
}

/// `dashboard:` — the built-in web page.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DashboardConfig {
    /// URL path of the page (default `/dashboard`).
    pub path: String,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        Self {
            path: "/dashboard".to_owned(),
        }
    }
}

/// `broker:` — the engine behind publish, history and presence.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerConfig {
    /// `memory` (default, one process), `redis` or `nats`.
    pub kind: BrokerKind,
    /// `redis://…` or `nats://…`; required by those kinds.
    pub url: Option<String>,
}

/// Which broker engine to run.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BrokerKind {
    /// In-process broker; state is lost on restart.
    #[default]
    Memory,
    /// Redis (pub/sub plus streams for history).
    Redis,
    /// NATS.
    Nats,
}

impl std::fmt::Display for BrokerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Memory => "memory",
            Self::Redis => "redis",
            Self::Nats => "nats",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn defaults_are_the_contract_defaults() {
        let c = Config::default();
        assert_eq!((c.server.host.as_str(), c.server.port), ("127.0.0.1", 8000));
        assert_eq!(c.server.shutdown_timeout, secs(10));
        assert_eq!(c.server.tls, TlsConfig { cert: None, key: None });

        let ws = &c.websocket;
        assert_eq!(ws.path, "/ws");
        assert_eq!(ws.max_message_size.as_bytes(), 1 << 20);
        assert_eq!((ws.max_connections, ws.max_connections_per_ip), (10_000, 1000));
        assert_eq!(ws.handshake_rate_per_ip, Bucket::new(1000, 1000.0));
        assert_eq!(ws.handshake_timeout, secs(10));
        assert_eq!(ws.allowed_origins, vec!["*".to_owned()]);
        assert_eq!(ws.outbound_queue, 1024);
        assert_eq!(ws.outbound_queue_bytes.as_bytes(), 4 << 20);
        assert_eq!(ws.max_subscriptions_per_connection, 1000);
        assert_eq!(
            (ws.write_timeout, ws.ping_period, ws.pong_wait),
            (secs(30), secs(54), secs(60))
        );

        assert!(c.compression.enabled);
        assert_eq!(c.compression.threshold.as_bytes(), 1024);

        assert!(c.auth.allow_anonymous);
        assert_eq!(c.auth.jwt.hs256_secret, None);
        assert_eq!(c.auth.jwt.rs256_public_key, None);
        assert_eq!(c.auth.jwt.es256_public_key, None);
        assert_eq!(c.auth.jwt.leeway, secs(5));
        assert!(c.auth.api_keys.is_empty());
        assert_eq!((c.auth.auth_timeout, c.auth.refresh_grace), (secs(10), secs(30)));

        assert_eq!((c.history.size, c.history.ttl), (100, secs(300)));
        assert_eq!(c.history.max_bytes.as_bytes(), 256 << 20);

        let rl = &c.rate_limits;
        assert_eq!(rl.ping, Bucket::new(120, 2.0));
        assert_eq!(rl.subscribe, Bucket::new(30, 1.0));
        assert_eq!(rl.unsubscribe, Bucket::new(30, 1.0));
        assert_eq!(rl.default, Bucket::new(60, 10.0));
        assert_eq!(rl.abuse_close_after, 100);

        assert_eq!(c.reconnection.token_ttl, secs(300));
        assert!(c.streams.is_empty() && c.handlers.is_empty());
        assert_eq!(c.metrics.prefix, "wshub");
        assert_eq!(c.metrics.stream_path, "/ws/metrics");
        assert_eq!(c.metrics.history_resolution, secs(10));
        assert_eq!(c.metrics.history_retention, secs(86_400));
        assert_eq!(c.metrics.heartbeat_interval, secs(30));
        assert_eq!(c.system.interval, secs(5));
        assert_eq!(c.dashboard.path, "/dashboard");
        assert_eq!(
            c.broker,
            BrokerConfig {
                kind: BrokerKind::Memory,
                url: None
            }
        );
    }

    #[test]
    fn broker_kinds_are_lowercase() {
        assert_eq!(BrokerKind::Redis.to_string(), "redis");
        assert_eq!(BrokerKind::Nats.to_string(), "nats");
        assert_eq!(BrokerKind::default().to_string(), "memory");
    }
}
