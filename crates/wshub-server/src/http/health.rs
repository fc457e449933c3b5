//! Liveness, readiness, broker health and the status document (CONTRACT §1).

use crate::node::Node;
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Serialize;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use wshub_broker::BrokerHealth;

/// Most topics listed in `/ws/status`; the busiest come first.
const STATUS_TOPICS: usize = 1000;

/// `GET /health`: the process is alive.
pub async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /ready`: 200, or 503 while draining for shutdown.
pub async fn ready(State(node): State<Arc<Node>>) -> Response {
    if node.shutdown.is_draining() {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "draining"}))).into_response()
    } else {
        Json(json!({"status": "ready"})).into_response()
    }
}

fn broker_state(node: &Node) -> &'static str {
    match node.broker.health() {
        BrokerHealth::Ok => "ok",
        BrokerHealth::Down => "down",
    }
}

/// `GET /ws/health`: 503 when the broker is down.
pub async fn ws_health(State(node): State<Arc<Node>>) -> Response {
    let broker = broker_state(&node);
    let degraded = broker != "ok";
    let body = json!({
        "status": if degraded { "degraded" } else { "ok" },
        "broker": broker,
        "connections": node.connections.count(),
        "uptime_seconds": node.uptime_seconds(),
    });
    let status = if degraded {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (status, Json(body)).into_response()
}

#[derive(Serialize)]
struct Status<'a> {
    version: &'static str,
    node: &'a str,
    uptime_seconds: u64,
    connections: usize,
    subscriptions: usize,
    topics: BTreeMap<String, usize>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    topics_truncated: bool,
    broker: serde_json::Value,
    limits: serde_json::Value,
    counters: serde_json::Value,
    compression: serde_json::Value,
}

/// `GET /ws/status`: what the node is doing and what limits it enforces.
pub async fn ws_status(State(node): State<Arc<Node>>) -> Json<serde_json::Value> {
    let all = node.registry.topics();
    let topics_truncated = all.len() > STATUS_TOPICS;
    let topics = all
        .into_iter()
        .take(STATUS_TOPICS)
        .map(|(t, n)| (t.to_string(), n))
        .collect();
    let ws = &node.config.websocket;
    let limits = json!({
        "max_connections": ws.max_connections,
        "max_connections_per_ip": ws.max_connections_per_ip,
        "handshake_rate_per_ip": {
            "capacity": ws.handshake_rate_per_ip.capacity,
            "refill_per_sec": ws.handshake_rate_per_ip.refill_per_sec,
        },
        "max_message_size": ws.max_message_size.as_bytes(),
        "outbound_queue": ws.outbound_queue,
        "outbound_queue_bytes": ws.outbound_queue_bytes.as_bytes(),
        "max_subscriptions_per_connection": ws.max_subscriptions_per_connection,
        "write_timeout_seconds": ws.write_timeout.as_secs_f64(),
        "ping_period_seconds": ws.ping_period.as_secs_f64(),
        "pong_wait_seconds": ws.pong_wait.as_secs_f64(),
    });
    let status = Status {
        version: env!("CARGO_PKG_VERSION"),
        node: &node.name,
        uptime_seconds: node.uptime_seconds(),
        connections: node.connections.count(),
        subscriptions: node.registry.subscription_count(),
        topics,
        topics_truncated,
        broker: json!({"kind": node.broker.kind(), "state": broker_state(&node)}),
        limits,
        counters: node.stats.to_json(),
        compression: compression(&node),
    };
    Json(serde_json::to_value(status).unwrap_or_default())
}

/// permessage-deflate: the settings, the connections using it, and what it saved. `ratio` is
/// bytes sent over bytes before compression, for the messages sent compressed (`null` before
/// the first).
fn compression(node: &Node) -> serde_json::Value {
    let config = &node.config.compression;
    let c = node.metrics.compression();
    let ratio = (c.plain_bytes > 0).then(|| c.wire_bytes as f64 / c.plain_bytes as f64);
    json!({
        "enabled": config.enabled,
        "threshold": config.threshold.as_bytes(),
        "connections": c.connections,
        "messages": c.messages,
        "bytes_before": c.plain_bytes,
        "bytes_after": c.wire_bytes,
        "saved_bytes": c.plain_bytes.saturating_sub(c.wire_bytes),
        "ratio": ratio,
    })
}
