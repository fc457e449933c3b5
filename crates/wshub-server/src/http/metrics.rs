//! `GET /metrics` (Prometheus text, CONTRACT §10) and the plain-GET side of the metrics
//! stream path: the `Snapshot` of §8 as JSON. Also the middleware that counts server API
//! calls as requests for that snapshot.

use crate::accept::{Admission, admit, switch_protocols};
use crate::metrics::{GaugeReading, stream};
use crate::node::Node;
use axum::Json;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, header};
use prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// `GET /metrics`: every metric of CONTRACT §10 in the Prometheus text format.
pub async fn prometheus(State(node): State<Arc<Node>>) -> Response {
    let reading = GaugeReading {
        connections: node.connections.count(),
        subscriptions: node.registry.subscription_count(),
        buffered_events: node.connections.buffered(),
        topics: node
            .registry
            .topics()
            .into_iter()
            .map(|(t, n)| (t.to_string(), n))
            .collect(),
    };
    let mut response = node.metrics.encode(&reading).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}

/// `GET` on the metrics stream path: a WebSocket upgrade gets the live stream, a plain
/// request the latest `Snapshot` as JSON.
pub async fn stream_or_snapshot(
    State(node): State<Arc<Node>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request,
) -> Response {
    if !request.headers().contains_key(header::UPGRADE) {
        return Json(node.sampler.latest().to_json(None)).into_response();
    }
    let Admission { accept, slot, .. } = match admit(&node, peer, request.headers(), request.method()) {
        Ok(admission) => admission,
        Err(refusal) => return refusal.into_response(),
    };
    let task_node = Arc::clone(&node);
    switch_protocols(&node, &mut request, &accept, move |socket| {
        stream::serve(task_node, socket, slot)
    })
}

/// Counts each server API call as a request: success below 400, error from 400 on.
pub async fn count_api_request(State(node): State<Arc<Node>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let response = next.run(request).await;
    let ok = !(response.status().is_client_error() || response.status().is_server_error());
    node.metrics.requests.record(ok, started.elapsed());
    response
}
