//! The WebSocket upgrade: who may open a session, and with what parameters.

use crate::http::ApiError;
use crate::node::Node;
use crate::session::{self, ConnectParams};
use crate::transport::{accept_key, validate_upgrade};
use axum::body::Body;
use axum::extract::{ConnectInfo, Query, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// The `Authorization: Bearer …` token, if any.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

fn refuse(error: ApiError) -> Response {
    error.into_response()
}

fn origin_allowed(allowed: &[String], headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        // Not a browser: origin checks protect browsers from cross-site use only.
        return true;
    };
    let Ok(origin) = origin.to_str() else { return false };
    allowed.iter().any(|a| a == "*" || a.eq_ignore_ascii_case(origin))
}

/// Handles a request on the WebSocket path.
pub async fn upgrade(
    State(node): State<Arc<Node>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(query): Query<HashMap<String, String>>,
    mut request: http::Request<Body>,
) -> Response {
    let config = &node.config.websocket;
    let key = match validate_upgrade(request.method(), request.headers()) {
        Ok(key) => accept_key(key),
        Err(error) => return refuse(ApiError::bad_request(error.to_string())),
    };
    if node.shutdown.is_draining() {
        return refuse(ApiError::unavailable("the hub is shutting down"));
    }
    if !origin_allowed(&config.allowed_origins, request.headers()) {
        return refuse(ApiError::forbidden("origin not allowed"));
    }
    let Some(slot) = node.connections.try_reserve(config.max_connections) else {
        tracing::warn!(
            max = config.max_connections,
            "max_connections reached; refusing upgrade"
        );
        return refuse(ApiError::unavailable("max_connections reached"));
    };
    let mut query = query;
    let params = ConnectParams {
        client_id: query.remove("client_id"),
        token: query
            .remove("token")
            .or_else(|| bearer_token(request.headers()).map(str::to_owned)),
        reconnection_token: query.remove("reconnection_token"),
        peer: Some(peer),
    };
    let on_upgrade = hyper::upgrade::on(&mut request);
    let task_node = Arc::clone(&node);
    node.shutdown.tasks.spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => session::run(task_node, upgraded, params, slot).await,
            Err(error) => tracing::debug!(%error, "upgrade did not complete"),
        }
    });
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(accept) = HeaderValue::from_str(&key) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    response
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
