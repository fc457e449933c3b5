//! The handshake of a raw stream: the admission checks every WebSocket path runs, then the
//! stream's own — the topic (400), the token (401), the permission to subscribe (404, 403).
//! All are answered before the upgrade, in the API's JSON error shape.

use super::connection::{self, StreamConnection};
use super::error::StreamRefused;
use super::pacer::period_of;
use crate::accept::{Admission, admit, bearer_token, refuse, switch_protocols};
use crate::auth::Identity;
use crate::config::StreamRoute;
use crate::http::ApiError;
use crate::node::Node;
use crate::permissions::Action;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use wshub_protocol::Topic;

/// `GET /ws/stream/{*topic}`: every event of the topic (the rest of the path, `/` included).
pub async fn topic_stream(
    State(node): State<Arc<Node>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    topic: Result<Path<String>, PathRejection>,
    Query(query): Query<HashMap<String, String>>,
    request: http::Request<Body>,
) -> Response {
    let topic = match topic {
        Ok(Path(topic)) => topic,
        Err(rejection) => {
            return refuse(
                crate::accept::client_ip(peer),
                ApiError::bad_request(rejection.body_text()),
            );
        }
    };
    open(node, peer, &query, request, &topic, None)
}

/// The handler of one `streams:` entry: its topic, at most `rate_hz` frames a second if set.
pub fn configured(route: &StreamRoute) -> MethodRouter<Arc<Node>> {
    let topic: Arc<str> = Arc::from(route.topic.as_str());
    let period = route.rate_hz.map(period_of);
    get(
        move |State(node): State<Arc<Node>>,
              ConnectInfo(peer): ConnectInfo<SocketAddr>,
              Query(query): Query<HashMap<String, String>>,
              request: http::Request<Body>| {
            let topic = Arc::clone(&topic);
            async move { open(node, peer, &query, request, &topic, period) }
        },
    )
}

/// Admits the handshake, checks the stream's topic and token, and upgrades.
fn open(
    node: Arc<Node>,
    peer: SocketAddr,
    query: &HashMap<String, String>,
    mut request: http::Request<Body>,
    topic: &str,
    period: Option<Duration>,
) -> Response {
    // A refusal after admission drops the slot, giving it back.
    let Admission { accept, slot, ip } = match admit(&node, peer, request.headers(), request.method()) {
        Ok(admission) => admission,
        Err(refusal) => return refusal.into_response(),
    };
    let token = query
        .get("token")
        .map(String::as_str)
        .or_else(|| bearer_token(request.headers()));
    let (topic, identity) = match authorise(&node, token, topic) {
        Ok(allowed) => allowed,
        Err(refused) => return refuse(ip, refused.into()),
    };
    let stream = StreamConnection {
        topic,
        identity,
        period,
        peer,
    };
    let task_node = Arc::clone(&node);
    switch_protocols(&node, &mut request, &accept, move |socket| {
        connection::run(task_node, socket, stream, slot)
    })
}

/// The topic and who asks for it, if they may subscribe to it (as a `/ws` `subscribe` would).
fn authorise(node: &Node, token: Option<&str>, topic: &str) -> Result<(Topic, Identity), StreamRefused> {
    let topic = Topic::parse(topic).map_err(StreamRefused::InvalidTopic)?;
    let identity = match token {
        Some(token) => node.auth.verify(token).map_err(StreamRefused::BadToken)?,
        None if node.config.auth.allow_anonymous => Identity::anonymous(),
        None => return Err(StreamRefused::TokenRequired),
    };
    match node.rules.check(&identity, &topic, Action::Subscribe) {
        Ok(()) => Ok((topic, identity)),
        Err(denied) => Err(StreamRefused::denied(topic, denied)),
    }
}
