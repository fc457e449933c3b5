//! The WebSocket upgrade: who may open a session, and with what parameters.
//!
//! Checks run cheapest and most general first: a valid upgrade request (400), a draining node
//! (503), the origin (403), the client IP's handshake rate (429 + `Retry-After`), the client IP's
//! live connections (429), the hub's `max_connections` (503). Each refusal is logged at debug
//! level with the client IP; 429s also warn, at most once per IP per minute. Query strings (they
//! may hold tokens) are never logged.
//!
//! [`admit`] and [`switch_protocols`] are shared by every WebSocket path: `/ws` here, and the raw
//! stream routes (`streams/`), which add their own checks (token, topic) between the two.

use super::handshake_rate::retry_after_secs;
use super::per_ip::client_ip;
use crate::http::ApiError;
use crate::node::{ConnectionSlot, Node, SlotRefused};
use crate::session::{self, ConnectParams};
use crate::transport::{self, CompressionStats, Deflate, UpgradedSocket, accept_key, validate_upgrade};
use axum::body::Body;
use axum::extract::{ConnectInfo, Query, State};
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt;
use futures_util::future::Either;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use tokio::time::Instant;

/// The `Authorization: Bearer …` token, if any.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Answers a refused handshake, logged at debug level with the client IP (never the query).
pub fn refuse(ip: IpAddr, error: ApiError) -> Response {
    logged(ip, error).into_response()
}

fn logged(ip: IpAddr, error: ApiError) -> ApiError {
    tracing::debug!(%ip, status = error.status().as_u16(), reason = error.message(), "upgrade refused");
    error
}

/// A 429 for `ip`: logged at debug level like every refusal, and as a warning at most once per
/// address per minute, so a storm of refusals cannot flood the log.
fn refuse_too_many(node: &Node, ip: IpAddr, limit: &'static str, error: ApiError) -> ApiError {
    if node.refusal_warnings.allow(ip, Instant::now()) {
        tracing::warn!(
            %ip,
            limit,
            "refusing WebSocket upgrades from this address (HTTP 429); further refusals for it are logged at debug level for a minute"
        );
    }
    logged(ip, error)
}

fn origin_allowed(allowed: &[String], headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        // Not a browser: origin checks protect browsers from cross-site use only.
        return true;
    };
    let Ok(origin) = origin.to_str() else { return false };
    allowed.iter().any(|a| a == "*" || a.eq_ignore_ascii_case(origin))
}

/// A handshake that passed the checks every WebSocket path shares.
pub struct Admission {
    /// The `Sec-WebSocket-Accept` value for the 101 answer.
    pub accept: String,
    /// The connection's slot, held from now until its task ends.
    pub slot: ConnectionSlot,
    /// The client's address (for refusals logged after admission).
    pub ip: IpAddr,
}

/// The checks every WebSocket path runs before its own: a valid upgrade request (400), a
/// draining node (503), the origin (403), the handshake rate (429), and a connection slot (429
/// per IP, 503 at `max_connections`). A refusal is logged here and comes back as the error to
/// answer with.
pub fn admit(node: &Node, peer: SocketAddr, headers: &HeaderMap, method: &http::Method) -> Result<Admission, ApiError> {
    let config = &node.config.websocket;
    let ip = client_ip(peer);
    let accept = match validate_upgrade(method, headers) {
        Ok(key) => accept_key(key),
        Err(error) => return Err(logged(ip, ApiError::bad_request(error.to_string()))),
    };
    if node.shutdown.is_draining() {
        return Err(logged(ip, ApiError::unavailable("the hub is shutting down")));
    }
    if !origin_allowed(&config.allowed_origins, headers) {
        return Err(logged(ip, ApiError::forbidden("origin not allowed")));
    }
    if let Err(wait) = node.handshake_rate.check(ip, Instant::now()) {
        let error = ApiError::too_many("too many handshakes from this address (handshake_rate_per_ip)")
            .with_retry_after(retry_after_secs(wait));
        return Err(refuse_too_many(node, ip, "handshake_rate_per_ip", error));
    }
    let slot = match node
        .connections
        .reserve(ip, config.max_connections_per_ip, config.max_connections)
    {
        Ok(slot) => slot,
        Err(SlotRefused::PerIp) => {
            let error = ApiError::too_many("too many connections from this address (max_connections_per_ip)");
            return Err(refuse_too_many(node, ip, "max_connections_per_ip", error));
        }
        Err(SlotRefused::Full) => {
            // Throttled like the 429s: a storm at capacity must not flood the log.
            if node.refusal_warnings.allow(ip, Instant::now()) {
                tracing::warn!(max = config.max_connections, %ip, "max_connections reached; refusing upgrades");
            }
            return Err(logged(ip, ApiError::unavailable("max_connections reached")));
        }
    };
    Ok(Admission { accept, slot, ip })
}

/// Answers `101 Switching Protocols` for an admitted handshake and runs `serve` on the upgraded
/// connection, in a task the shutdown waits for. hyper completes the upgrade after writing the
/// answer.
///
/// Extensions are negotiated here, the same way for every WebSocket path: permessage-deflate
/// when `compression.enabled` and the client offers it acceptably (`transport::negotiate`).
pub fn switch_protocols<F, Fut>(node: &Arc<Node>, request: &mut http::Request<Body>, accept: &str, serve: F) -> Response
where
    F: FnOnce(UpgradedSocket) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let compression = &node.config.compression;
    let deflate = compression
        .enabled
        .then(|| transport::negotiate(request.headers()))
        .flatten()
        .map(|params| Deflate {
            params,
            threshold: compression.threshold.as_usize(),
            stats: Arc::clone(&node.metrics) as Arc<dyn CompressionStats>,
        });
    let extensions = deflate
        .as_ref()
        .and_then(|d| HeaderValue::from_str(&d.params.response()).ok());
    let on_upgrade = hyper::upgrade::on(request);
    // A combinator rather than an `async` block: the block would keep `serve`'s captures
    // beside the connection's future for its whole life, `then` keeps one or the other.
    node.shutdown
        .tasks
        .spawn(on_upgrade.then(move |upgraded| match upgraded {
            Ok(upgraded) => Either::Left(serve(UpgradedSocket { upgraded, deflate })),
            Err(error) => {
                tracing::debug!(%error, "upgrade did not complete");
                Either::Right(std::future::ready(()))
            }
        }));
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(accept) = HeaderValue::from_str(accept) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    if let Some(extensions) = extensions {
        headers.insert(header::SEC_WEBSOCKET_EXTENSIONS, extensions);
    }
    response
}

/// Handles a request on the WebSocket path.
pub async fn upgrade(
    State(node): State<Arc<Node>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(mut query): Query<HashMap<String, String>>,
    mut request: http::Request<Body>,
) -> Response {
    let Admission { accept, slot, .. } = match admit(&node, peer, request.headers(), request.method()) {
        Ok(admission) => admission,
        Err(refusal) => return refusal.into_response(),
    };
    let params = ConnectParams {
        client_id: query.remove("client_id"),
        token: query
            .remove("token")
            .or_else(|| bearer_token(request.headers()).map(str::to_owned)),
        reconnection_token: query.remove("reconnection_token"),
        peer: Some(peer),
    };
    let task_node = Arc::clone(&node);
    switch_protocols(&node, &mut request, &accept, move |socket| {
        session::run(task_node, socket, params, slot)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_parsing() {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer abc.def"));
        assert_eq!(bearer_token(&h), Some("abc.def"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic xyz"));
        assert_eq!(bearer_token(&h), None);
    }

    #[test]
    fn origins_match_exactly() {
        let allowed = vec!["https://app.example.com".to_owned()];
        let mut h = HeaderMap::new();
        assert!(origin_allowed(&allowed, &h), "no Origin: not a browser");
        h.insert(header::ORIGIN, HeaderValue::from_static("https://app.example.com"));
        assert!(origin_allowed(&allowed, &h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://app.example.com.evil.io"),
        );
        assert!(!origin_allowed(&allowed, &h));
        assert!(origin_allowed(&["*".to_owned()], &h));
    }
}
