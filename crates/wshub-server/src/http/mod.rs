//! The HTTP side of the hub: probes, status, the server API for backends, and the
//! dashboard page.
//!
//! Backends enter the message path here: `POST /api/publish` hands a publication to
//! the broker exactly as a client's `publish` does, and `POST /api/publish/{topic}` raw
//! bytes as a client's binary publish does. The router also sends each WebSocket path
//! to its upgrade: `websocket.path` to `accept`, raw stream paths to `streams`.

mod api;
mod binary;
mod error;
mod health;
mod metrics;
mod openapi;

pub use error::ApiError;
pub use openapi::ApiDoc;

use crate::accept;
use crate::dashboard::Dashboard;
use crate::node::Node;
use crate::streams;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{get, post};
use std::sync::Arc;

/// Builds the router for every endpoint of CONTRACT §1.
pub fn router(node: Arc<Node>) -> Router {
    let config = &node.config;
    let body_limit = config.websocket.max_message_size.as_usize();
    // Server API calls count as requests in the metrics `Snapshot` (CONTRACT §8).
    let api = Router::new()
        .route("/api/publish", post(api::publish))
        .route("/api/publish/{*topic}", post(binary::publish_binary))
        .route("/api/channels", get(api::channels))
        .route("/api/channels/{*topic}", get(api::channel))
        .route("/api/history/{*topic}", get(api::history))
        .route("/api/presence/{*topic}", get(api::presence))
        .route("/api/disconnect", post(api::disconnect))
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(&node),
            metrics::count_api_request,
        ));
    let mut router = Router::new()
        .route(&config.websocket.path, get(accept::upgrade))
        .route("/ws/stream/{*topic}", get(streams::topic_stream));
    // Config validation keeps these paths apart from every other route.
    for route in &config.streams {
        router = router.route(&route.path, streams::configured(route));
    }
    router
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/ws/health", get(health::ws_health))
        .route("/ws/status", get(health::ws_status))
        .route("/metrics", get(metrics::prometheus))
        .route(&config.metrics.stream_path, get(metrics::stream_or_snapshot))
        .merge(api)
        .route("/api/openapi.json", get(openapi::document))
        .merge(Dashboard::new(&config.dashboard.path, &config.metrics.stream_path).routes())
        .fallback(error::not_found)
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(node)
}
