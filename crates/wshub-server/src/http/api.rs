//! The server API for backends (CONTRACT §11): publish, channels, history, presence, disconnect.
//! Publishing raw bytes (`POST /api/publish/{topic}`) is in `binary`.

use super::error::{ApiError, ErrorBody};
use crate::accept::bearer_token;
use crate::node::Node;
use crate::resume::revoked_key;
use crate::session::{MAX_PRESENCE_CLIENTS, PresencePayload};
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Path, Query, Request, State};
use http::request::Parts;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::net::SocketAddr;
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};
use wshub_broker::{HistoryQuery, StreamPosition};
use wshub_protocol::inbound::{DEFAULT_HISTORY_LIMIT, MAX_HISTORY_LIMIT};
use wshub_protocol::outbound;
use wshub_protocol::{CloseCode, EventName, Offset, Topic, now_millis};

/// A caller the API has accepted: an API key holder, an admin JWT, or (with no key
/// configured) a direct loopback client.
pub struct ApiCaller;

impl FromRequestParts<Arc<Node>> for ApiCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, node: &Arc<Node>) -> Result<Self, Self::Rejection> {
        let auth = &node.config.auth;
        if let Some(token) = bearer_token(&parts.headers) {
            if auth
                .api_keys
                .iter()
                .any(|key| constant_time_eq(key.as_bytes(), token.as_bytes()))
            {
                return Ok(ApiCaller);
            }
            return match node.auth.verify(token) {
                Ok(identity) if identity.has_role("admin") => Ok(ApiCaller),
                Ok(_) => Err(ApiError::forbidden("the server API needs an API key or an admin token")),
                Err(_) => Err(ApiError::unauthorized("invalid API key or token")),
            };
        }
        if !auth.api_keys.is_empty() {
            return Err(ApiError::unauthorized("send Authorization: Bearer <api key>"));
        }
        // No key configured: only this machine may call, and only directly — a proxy in
        // front would make every remote caller look local.
        let proxied =
            parts.headers.contains_key("x-forwarded-for") || parts.headers.contains_key(http::header::FORWARDED);
        let loopback = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .is_some_and(|c| c.0.ip().is_loopback());
        if proxied {
            return Err(ApiError::forbidden(
                "no API key is configured, so proxied requests are refused; set auth.api_keys",
            ));
        }
        if !loopback {
            return Err(ApiError::forbidden(
                "no API key is configured, so only loopback clients may call; set auth.api_keys",
            ));
        }
        Ok(ApiCaller)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A JSON body, with the API's own errors for bad JSON (400) and oversize bodies (413).
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<Arc<Node>> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, node: &Arc<Node>) -> Result<Self, Self::Rejection> {
        let RawBody(bytes) = RawBody::from_request(request, node).await?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
    }
}

/// Raw bytes: the request body as sent (413 past `max_message_size`).
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct RawBody(pub Bytes);

impl FromRequest<Arc<Node>> for RawBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, node: &Arc<Node>) -> Result<Self, Self::Rejection> {
        Bytes::from_request(request, node)
            .await
            .map(RawBody)
            .map_err(|rejection| match rejection {
                BytesRejection::FailedToBufferBody(_) => ApiError::too_large("request body exceeds max_message_size"),
                other => ApiError::bad_request(other.body_text()),
            })
    }
}

/// `POST /api/publish` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PublishRequest {
    /// One topic…
    topic: Option<String>,
    /// …or several.
    topics: Option<Vec<String>>,
    /// Event name (default `message`).
    event: Option<String>,
    /// Any JSON object (default `{}`).
    #[schema(value_type = Object)]
    payload: Option<Box<RawValue>>,
}

/// Where a publication landed.
#[derive(Debug, Serialize, ToSchema)]
pub struct Published {
    topic: String,
    offset: u64,
    epoch: String,
}

/// `POST /api/publish` answer for `topics`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublishedMany {
    results: Vec<Published>,
}

/// A topic name that some topic rule matches (400 for a bad name, 404 `unknown_channel`).
pub(super) fn parse_topic(node: &Node, name: &str) -> Result<Topic, ApiError> {
    let topic = Topic::parse(name).map_err(|e| ApiError::bad_request(e.to_string()))?;
    if node.rules.rule_for(topic.as_str()).is_none() {
        return Err(ApiError::not_found(
            "unknown_channel",
            format!("no topic rule matches {topic}"),
        ));
    }
    Ok(topic)
}

/// Publishes an event to one or several topics.
#[utoipa::path(post, path = "/api/publish", tag = "publish", request_body = PublishRequest,
    responses(
        (status = 200, description = "Published (one topic: `Published`; `topics`: `PublishedMany`)", body = Published),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "No topic rule matches", body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 503, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn publish(
    State(node): State<Arc<Node>>,
    _caller: ApiCaller,
    JsonBody(body): JsonBody<PublishRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if node.shutdown.is_draining() {
        return Err(ApiError::unavailable("the hub is shutting down"));
    }
    let many = body.topics.is_some();
    let names: Vec<String> = match (body.topic, body.topics) {
        (Some(topic), None) => vec![topic],
        (None, Some(topics)) if !topics.is_empty() => topics,
        (Some(_), Some(_)) => return Err(ApiError::bad_request("give `topic` or `topics`, not both")),
        _ => return Err(ApiError::bad_request("`topic` or `topics` is required")),
    };
    if names.len() > wshub_protocol::inbound::MAX_TOPICS_PER_REQUEST {
        return Err(ApiError::bad_request("at most 100 topics per request"));
    }
    let event = EventName::parse(body.event.as_deref().unwrap_or(EventName::DEFAULT))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let payload: Arc<RawValue> = match body.payload {
        Some(p) if p.get().trim_start().starts_with('{') => Arc::from(p),
        Some(p) if p.get() == "null" => Arc::from(empty_object()),
        Some(_) => return Err(ApiError::bad_request("`payload` must be a JSON object")),
        None => Arc::from(empty_object()),
    };
    let topics = names
        .iter()
        .map(|n| parse_topic(&node, n))
        .collect::<Result<Vec<_>, _>>()?;
    let max = node.config.websocket.max_message_size.as_usize();
    if topics
        .iter()
        .any(|t| outbound::event_size_bound(t.as_str(), event.as_str(), payload.get(), "server") > max)
    {
        return Err(ApiError::too_large("the event would exceed max_message_size"));
    }
    let mut results = Vec::with_capacity(topics.len());
    for topic in topics {
        let position = node
            .publish_as_server(topic.clone(), event.clone(), Arc::clone(&payload))
            .await
            .map_err(|e| ApiError::unavailable(e.to_string()))?;
        results.push(published(topic, position));
    }
    let value = if many {
        serde_json::to_value(PublishedMany { results })
    } else {
        serde_json::to_value(&results[0])
    };
    Ok(Json(value.unwrap_or_default()))
}

fn empty_object() -> Box<RawValue> {
    RawValue::from_string("{}".to_owned()).expect("an empty object is valid JSON")
}

pub(super) fn published(topic: Topic, position: StreamPosition) -> Published {
    Published {
        topic: topic.to_string(),
        offset: position.offset.0,
        epoch: position.epoch.to_string(),
    }
}

/// One channel's state.
#[derive(Debug, Serialize, ToSchema)]
pub struct Channel {
    topic: String,
    subscribers: usize,
    offset: u64,
    epoch: String,
}

/// `GET /api/channels` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Channels {
    channels: Vec<Channel>,
}

/// Lists topics with subscribers on this node or a live stream.
#[utoipa::path(get, path = "/api/channels", tag = "channels",
    responses((status = 200, body = Channels), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn channels(State(node): State<Arc<Node>>, _caller: ApiCaller) -> Result<Json<Channels>, ApiError> {
    let streams = node
        .broker
        .streams()
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    // A stream that was only read (a subscriber looked up its position) and has
    // neither subscribers nor publications is not a channel yet.
    let mut channels: std::collections::BTreeMap<String, Channel> = streams
        .into_iter()
        .filter(|(topic, position)| position.offset.0 > 0 || node.registry.subscriber_count(topic.as_str()) > 0)
        .map(|(topic, position)| {
            let subscribers = node.registry.subscriber_count(topic.as_str());
            let name = topic.to_string();
            (
                name.clone(),
                Channel {
                    topic: name,
                    subscribers,
                    offset: position.offset.0,
                    epoch: position.epoch.to_string(),
                },
            )
        })
        .collect();
    for (topic, subscribers) in node.registry.topics() {
        if !channels.contains_key(topic.as_str()) {
            let position = node
                .broker
                .position(&topic)
                .await
                .map_err(|e| ApiError::unavailable(e.to_string()))?;
            channels.insert(
                topic.to_string(),
                Channel {
                    topic: topic.to_string(),
                    subscribers,
                    offset: position.offset.0,
                    epoch: position.epoch.to_string(),
                },
            );
        }
    }
    Ok(Json(Channels {
        channels: channels.into_values().collect(),
    }))
}

/// One topic's subscribers and stream position (zeros for an unused topic).
#[utoipa::path(get, path = "/api/channels/{topic}", tag = "channels",
    params(("topic" = String, Path, description = "Topic name; may contain `/`")),
    responses((status = 200, body = Channel), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn channel(
    State(node): State<Arc<Node>>,
    _caller: ApiCaller,
    Path(topic): Path<String>,
) -> Result<Json<Channel>, ApiError> {
    let topic = Topic::parse(&topic).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let subscribers = node.registry.subscriber_count(topic.as_str());
    let channel = match node
        .broker
        .streams()
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?
        .into_iter()
        .find(|(t, _)| *t == topic)
    {
        Some((_, position)) => Channel {
            topic: topic.to_string(),
            subscribers,
            offset: position.offset.0,
            epoch: position.epoch.to_string(),
        },
        None => Channel {
            topic: topic.to_string(),
            subscribers,
            offset: 0,
            epoch: String::new(),
        },
    };
    Ok(Json(channel))
}

/// `GET /api/history/{topic}` query.
#[derive(Debug, Deserialize, IntoParams)]
pub struct HistoryParams {
    /// Exclusive lower bound offset.
    since: Option<u64>,
    /// At most this many events (1–1000, default 100).
    limit: Option<usize>,
}

/// A topic's history, as the `history` reply's payload.
#[utoipa::path(get, path = "/api/history/{topic}", tag = "channels",
    params(("topic" = String, Path, description = "Topic name; may contain `/`"), HistoryParams),
    responses((status = 200, description = "`{epoch, offset, messages}`", body = Object), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn history(
    State(node): State<Arc<Node>>,
    _caller: ApiCaller,
    Path(topic): Path<String>,
    Query(params): Query<HistoryParams>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let topic = parse_topic(&node, &topic)?;
    let limit = params.limit.unwrap_or(DEFAULT_HISTORY_LIMIT);
    if !(1..=MAX_HISTORY_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be from 1 to {MAX_HISTORY_LIMIT}"
        )));
    }
    let page = node
        .broker
        .history(
            &topic,
            HistoryQuery {
                since: params.since.map(Offset),
                limit,
            },
        )
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    let messages: Vec<serde_json::Value> = page
        .publications
        .iter()
        .filter_map(|p| serde_json::from_slice(&p.history_entry()).ok())
        .collect();
    Ok(Json(
        serde_json::json!({"epoch": page.position.epoch, "offset": page.position.offset, "messages": messages}),
    ))
}

/// Who is on a topic, as the `presence` reply's payload: `{count, clients, truncated?}`.
#[utoipa::path(get, path = "/api/presence/{topic}", tag = "channels",
    params(("topic" = String, Path, description = "Topic name; may contain `/`")),
    responses((status = 200, description = "`{count, clients: [{connection_id, user, client_id}]}`; at most 1000 clients, then `truncated: true`", body = Object),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "no topic rule matches (`unknown_channel`), or the rule does not track presence (`unavailable`)", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn presence(
    State(node): State<Arc<Node>>,
    _caller: ApiCaller,
    Path(topic): Path<String>,
) -> Result<Json<PresencePayload>, ApiError> {
    let topic = parse_topic(&node, &topic)?;
    if !node.rules.presence_for(topic.as_str()) {
        return Err(ApiError::not_found(
            "unavailable",
            format!("presence is not enabled for {topic} (set presence: true on its topic rule)"),
        ));
    }
    let page = node
        .broker
        .presence(&topic, MAX_PRESENCE_CLIENTS)
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    Ok(Json(PresencePayload::from(page)))
}

/// `POST /api/disconnect` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct DisconnectRequest {
    /// Close every connection of this user…
    user: Option<String>,
    /// …or this one connection.
    connection_id: Option<String>,
    /// Close code (default 1000; 1000–1003, 1007–1014 or 3000–4999).
    code: Option<u16>,
    /// Close reason (at most 123 bytes are sent).
    reason: Option<String>,
}

/// How many connections were closed.
#[derive(Debug, Serialize, ToSchema)]
pub struct Disconnected {
    disconnected: usize,
}

/// Closes a user's connections (and revokes their reconnection tokens) or one connection.
#[utoipa::path(post, path = "/api/disconnect", tag = "connections", request_body = DisconnectRequest,
    responses((status = 200, body = Disconnected), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn disconnect(
    State(node): State<Arc<Node>>,
    _caller: ApiCaller,
    JsonBody(body): JsonBody<DisconnectRequest>,
) -> Result<Json<Disconnected>, ApiError> {
    if body.user.is_none() && body.connection_id.is_none() {
        return Err(ApiError::bad_request("`user` or `connection_id` is required"));
    }
    let code = body.code.unwrap_or(1000);
    if !CloseCode::is_valid_on_wire(code) {
        return Err(ApiError::bad_request(format!("close code {code} is not allowed")));
    }
    let reason = body.reason.as_deref().unwrap_or("disconnected by the server");
    if let Some(user) = &body.user {
        // The user's reconnection tokens issued until now must not bring the sessions back.
        let now = now_millis().to_string();
        node.broker
            .put_record(&revoked_key(user), now.into(), node.resume_keys.ttl)
            .await
            .map_err(|e| ApiError::unavailable(e.to_string()))?;
    }
    let disconnected = node.connections.disconnect(
        body.user.as_deref(),
        body.connection_id.as_deref(),
        CloseCode::from_code(code),
        reason,
    );
    Ok(Json(Disconnected { disconnected }))
}
