//! Executes one decoded request and queues exactly one reply for it.
//!
//! On the message path this is the step after decoding: the permission check
//! (`permissions`), then the broker for publishes (`publish`) and reads, then the reply.

use super::Session;
use super::expiry::TokenState;
use super::rate_limit::{BucketKind, Verdict};
use super::subscribe::AttachRequest;
use crate::auth::Identity;
use crate::permissions::Action;
use crate::resume::{SessionSnapshot, SubscriptionPosition};
use serde::Serialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use tokio::time::Instant;
use wshub_broker::{BrokerError, HistoryQuery, PresencePage};
use wshub_protocol::outbound;
use wshub_protocol::{
    ClientFrame, CloseCode, Epoch, ErrorCode, Offset, Recover, Request, RequestId, Topic, decode_client_frame,
    now_millis,
};

#[derive(Serialize)]
struct SubscribedEntry {
    topic: Topic,
    epoch: String,
    offset: u64,
    recovered: bool,
}

#[derive(Serialize)]
struct DeniedEntry {
    topic: String,
    code: &'static str,
}

#[derive(Serialize)]
struct SubscribedPayload {
    subscribed: Vec<SubscribedEntry>,
    denied: Vec<DeniedEntry>,
}

#[derive(Serialize)]
struct UnsubscribedPayload<'a> {
    unsubscribed: &'a [String],
}

#[derive(Serialize)]
struct AuthenticatedPayload<'a> {
    user: Option<&'a str>,
    role: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    roles: Option<&'a Vec<String>>,
    permissions: Vec<crate::permissions::RulePermission>,
}

#[derive(Serialize)]
struct HistoryPayload<'a> {
    epoch: &'a str,
    offset: u64,
    messages: Vec<Box<RawValue>>,
}

impl Session {
    /// Decodes, rate-limits and executes one text frame, counting it as a request that
    /// succeeded or failed (a handler call is counted when its reply is queued).
    pub(super) async fn handle_text(&mut self, bytes: &[u8]) {
        let started = std::time::Instant::now();
        let errors_before = self.errors_sent();
        let answered_later = self.execute_text(bytes).await;
        if !answered_later || self.errors_sent() != errors_before {
            let ok = self.errors_sent() == errors_before;
            self.node.metrics.requests.record(ok, started.elapsed());
        }
    }

    /// [`handle_text`](Self::handle_text) without the accounting. Returns `true` when a
    /// handler call may have started, whose reply (and accounting) comes later.
    async fn execute_text(&mut self, bytes: &[u8]) -> bool {
        let frame = match decode_client_frame(bytes) {
            Ok(frame) => frame,
            Err(error) => {
                let metrics = &self.node.metrics;
                metrics.received(metrics.request_types.other(), bytes.len());
                if self.charge_malformed() {
                    return false;
                }
                self.send_error(error.id.as_ref(), ErrorCode::InvalidMessage, &error.message);
                return false;
            }
        };
        let ClientFrame { id, request } = frame;
        let id = id.as_ref();
        let handler_pattern = match &request {
            Request::Other { kind, .. } => self.node.handlers.route_for(kind).map(|r| r.pattern()),
            _ => None,
        };
        let metrics = &self.node.metrics;
        let type_label = metrics.request_types.of(&request, handler_pattern);
        metrics.received(type_label, bytes.len());
        let bucket = BucketKind::of(request.kind());
        match self.limiter.check(bucket, Instant::now()) {
            Verdict::Allowed => {}
            Verdict::Limited { retry_after } => {
                self.send_rate_limited(id, bucket, type_label, retry_after);
                return false;
            }
            Verdict::Abusive => {
                self.close_abusive();
                return false;
            }
        }
        let answered_later = matches!(request, Request::Other { .. });
        self.dispatch(id, request).await;
        answered_later
    }

    /// Runs one request that passed the rate limit; queues exactly one reply (a handler
    /// call's reply comes from its task).
    async fn dispatch(&mut self, id: Option<&RequestId>, request: Request) {
        if self.refused_now(id, Some(&request)) {
            return;
        }
        match request {
            Request::Subscribe { topics, recover } => self.subscribe(id, topics, recover).await,
            Request::Unsubscribe { topics } => self.unsubscribe(id, topics).await,
            Request::Publish { topic, event, payload } => self.publish(id, &topic, event, payload).await,
            Request::Ping => self.send_reply(id, "pong", &serde_json::json!({})),
            Request::Auth { token } => self.authenticate(id, &token).await,
            Request::History { topic, since, limit } => self.history(id, &topic, since, limit).await,
            Request::GetReconnectionToken => self.reconnection_token(id),
            Request::Presence { topic } => self.presence(id, &topic).await,
            Request::Other { kind, payload } => self.call_handler(id, kind, payload),
        }
    }

    /// Answers a request (`None`: a binary publish) that the connection may not make now:
    /// while the hub drains, while the token is in its refresh grace (but `auth` and `ping`),
    /// before authentication (but `auth`). Returns `true` when it answered.
    pub(super) fn refused_now(&self, id: Option<&RequestId>, request: Option<&Request>) -> bool {
        let auth = matches!(request, Some(Request::Auth { .. }));
        let ping = matches!(request, Some(Request::Ping));
        let (code, message) = if self.node.shutdown.is_draining() {
            (ErrorCode::Unavailable, "the hub is shutting down")
        } else if self.token_clock.state() == TokenState::Grace && !auth && !ping {
            (ErrorCode::TokenExpired, "token expired; send auth with a fresh token")
        } else if self.identity.is_none() && !auth {
            (ErrorCode::Unauthorized, "send an auth message first")
        } else {
            return false;
        };
        self.send_error(id, code, message);
        true
    }

    /// Charges a malformed frame to the `default` bucket and counts it as a refusal.
    /// Returns `true` when that closed the connection for abuse.
    pub(super) fn charge_malformed(&mut self) -> bool {
        let now = Instant::now();
        let abusive = match self.limiter.check(BucketKind::Default, now) {
            Verdict::Allowed => self.limiter.refused(now).is_some(),
            Verdict::Limited { .. } => false,
            Verdict::Abusive => true,
        };
        if abusive {
            self.close_abusive();
        }
        abusive
    }

    pub(super) fn send_rate_limited(
        &self,
        id: Option<&RequestId>,
        bucket: BucketKind,
        type_label: usize,
        retry_after: f64,
    ) {
        self.node.stats.rate_limited(bucket);
        self.node.metrics.rate_limited(type_label);
        self.counted_error(ErrorCode::RateLimited);
        // Rounded up to the millisecond: never earlier than a token is really back.
        let retry_after = (retry_after * 1000.0).ceil() / 1000.0;
        let message = format!("rate limit exceeded for '{}'", bucket.name());
        self.send(outbound::error(
            id,
            ErrorCode::RateLimited,
            &message,
            Some(retry_after),
            now_millis(),
        ));
    }

    pub(super) fn close_abusive(&self) {
        let limit = self.node.config.rate_limits.abuse_close_after;
        tracing::warn!(limit, "closing connection: too many refused requests within 10 s");
        self.node.stats.abuse_close();
        self.closer.close(CloseCode::Policy, "too many refused requests");
    }

    pub(super) fn identity(&self) -> &Identity {
        self.identity
            .as_ref()
            .expect("requests other than auth are refused before authentication")
    }

    /// Parses a topic name and checks `action` on it; on failure answers and returns `None`.
    pub(super) fn authorised_topic(&self, id: Option<&RequestId>, name: &str, action: Action) -> Option<Topic> {
        let topic = match Topic::parse(name) {
            Ok(topic) => topic,
            Err(error) => {
                self.send_error(id, ErrorCode::InvalidMessage, &error.to_string());
                return None;
            }
        };
        self.permitted(id, &topic, action).then_some(topic)
    }

    /// Checks `action` on a topic (`forbidden`, `unknown_channel`); on failure answers.
    pub(super) fn permitted(&self, id: Option<&RequestId>, topic: &Topic, action: Action) -> bool {
        match self.node.rules.check(self.identity(), topic, action) {
            Ok(()) => true,
            Err(denied) => {
                self.send_error(id, denied.code(), &format!("{denied}: {topic}"));
                false
            }
        }
    }

    pub(super) fn broker_failed(&self, id: Option<&RequestId>, error: &BrokerError) {
        tracing::warn!(%error, "broker operation failed");
        self.send_error(id, ErrorCode::Unavailable, "the broker is unavailable; try again");
    }

    async fn subscribe(&mut self, id: Option<&RequestId>, names: Vec<String>, recover: Option<Recover>) {
        let max = self.node.config.websocket.max_subscriptions_per_connection;
        let recover = recover.map(|r| (Epoch::new(r.epoch), Offset(r.offset)));
        let mut requests: Vec<AttachRequest> = Vec::new();
        let mut denied = Vec::new();
        let mut added = 0;
        for name in names {
            let topic = match Topic::parse(&name) {
                Ok(topic) => topic,
                Err(_) => {
                    denied.push(DeniedEntry {
                        topic: name,
                        code: ErrorCode::InvalidMessage.as_str(),
                    });
                    continue;
                }
            };
            if let Err(refusal) = self.node.rules.check(self.identity(), &topic, Action::Subscribe) {
                denied.push(DeniedEntry {
                    topic: name,
                    code: refusal.code().as_str(),
                });
                continue;
            }
            if requests.iter().any(|r| r.topic == topic) {
                continue;
            }
            if !self.subscriptions.contains_key(&topic) {
                if self.subscriptions.len() + added >= max {
                    denied.push(DeniedEntry {
                        topic: name,
                        code: ErrorCode::TooManySubscriptions.as_str(),
                    });
                    continue;
                }
                added += 1;
            }
            requests.push(AttachRequest {
                topic,
                recover: recover.clone(),
            });
        }
        if requests.is_empty()
            && let Some(first) = denied.first()
        {
            let code = ErrorCode::from_wire(first.code).unwrap_or(ErrorCode::Forbidden);
            let topics: Vec<&str> = denied.iter().map(|d| d.topic.as_str()).collect();
            let message = match code {
                ErrorCode::UnknownChannel => format!("no topic rule matches: {}", topics.join(", ")),
                ErrorCode::Forbidden => format!("not allowed to subscribe to: {}", topics.join(", ")),
                ErrorCode::TooManySubscriptions => format!("subscription limit ({max}) reached"),
                _ => format!("invalid topic name: {}", topics.join(", ")),
            };
            return self.send_error(id, code, &message);
        }
        let attached = match self.attach(requests).await {
            Ok(attached) => attached,
            Err(error) => return self.broker_failed(id, &error),
        };
        let subscribed = attached
            .iter()
            .map(|a| SubscribedEntry {
                topic: a.topic.clone(),
                epoch: a.position.epoch.to_string(),
                offset: a.position.offset.0,
                recovered: a.recovered.unwrap_or(false),
            })
            .collect();
        self.send_reply(id, "subscribed", &SubscribedPayload { subscribed, denied });
        self.release(attached).await;
    }

    async fn unsubscribe(&mut self, id: Option<&RequestId>, names: Vec<String>) {
        // All names are checked first, so a bad one leaves the connection's topics as they were.
        let mut topics = Vec::with_capacity(names.len());
        for name in &names {
            match Topic::parse(name) {
                Ok(topic) => topics.push(topic),
                Err(error) => return self.send_error(id, ErrorCode::InvalidMessage, &error.to_string()),
            }
        }
        for topic in &topics {
            self.leave(topic).await;
        }
        self.send_reply(id, "unsubscribed", &UnsubscribedPayload { unsubscribed: &names });
    }

    async fn authenticate(&mut self, id: Option<&RequestId>, token: &str) {
        let identity = match self.node.auth.verify(token) {
            Ok(identity) => identity,
            Err(error) => {
                tracing::debug!(%error, "auth refused");
                self.send_error(id, ErrorCode::Unauthorized, &error.to_string());
                self.closer.close(CloseCode::Unauthorized, "unauthorized");
                return;
            }
        };
        let first_auth = self.identity.is_none();
        if let Some(current) = &self.identity
            && current.user.is_some()
            && current.user != identity.user
        {
            self.send_error(id, ErrorCode::Unauthorized, "a token refresh may not change the user");
            self.closer.close(CloseCode::Unauthorized, "user changed");
            return;
        }
        self.identity = Some(identity);
        let dropped = self.recheck_subscriptions().await;
        let identity = self.identity();
        self.send_reply(
            id,
            "authenticated",
            &AuthenticatedPayload {
                user: identity.user.as_deref(),
                role: identity.primary_role(),
                roles: (identity.roles.len() > 1).then_some(&identity.roles),
                permissions: self.node.rules.permissions(identity),
            },
        );
        for topic in dropped {
            self.send_reply(
                None,
                "unsubscribed",
                &UnsubscribedPayload {
                    unsubscribed: &[topic.to_string()],
                },
            );
        }
        if first_auth {
            self.established(Vec::new(), false).await;
        } else {
            self.restart_token_clock();
            if let Some(info) = self.connection_info() {
                self.node.connections.register(&self.id, info);
            }
        }
    }

    /// Drops subscriptions the (new) identity may no longer hold; returns them.
    async fn recheck_subscriptions(&mut self) -> Vec<Topic> {
        let identity = self.identity();
        let dropped: Vec<Topic> = self
            .subscriptions
            .keys()
            .filter(|t| self.node.rules.check(identity, t, Action::Subscribe).is_err())
            .cloned()
            .collect();
        for topic in &dropped {
            self.leave(topic).await;
        }
        dropped
    }

    async fn history(&mut self, id: Option<&RequestId>, topic: &str, since: Option<u64>, limit: usize) {
        let Some(topic) = self.authorised_topic(id, topic, Action::Subscribe) else {
            return;
        };
        let query = HistoryQuery {
            since: since.map(Offset),
            limit,
        };
        match self.node.broker.history(&topic, query).await {
            Ok(page) => {
                let messages = page
                    .publications
                    .iter()
                    .filter_map(|p| raw_event(p.history_entry()))
                    .collect();
                let payload = HistoryPayload {
                    epoch: page.position.epoch.as_str(),
                    offset: page.position.offset.0,
                    messages,
                };
                self.send_reply(id, "history", &payload);
            }
            Err(error) => self.broker_failed(id, &error),
        }
    }

    async fn presence(&mut self, id: Option<&RequestId>, topic: &str) {
        let Some(topic) = self.authorised_topic(id, topic, Action::Subscribe) else {
            return;
        };
        if !self.node.rules.presence_for(topic.as_str()) {
            return self.send_error(
                id,
                ErrorCode::Unavailable,
                &format!("presence is not enabled for {topic}"),
            );
        }
        match self.node.broker.presence(&topic, MAX_PRESENCE_CLIENTS).await {
            Ok(page) => self.send_reply(id, "presence", &PresencePayload::from(page)),
            Err(error) => self.broker_failed(id, &error),
        }
    }

    fn reconnection_token(&mut self, id: Option<&RequestId>) {
        let subscriptions = self
            .subscriptions
            .iter()
            .map(|(topic, s)| SubscriptionPosition {
                topic: topic.to_string(),
                epoch: s.epoch.to_string(),
                offset: self.delivered.get(s.slot).unwrap_or(0),
            })
            .collect();
        let snapshot = SessionSnapshot {
            connection: &self.id,
            identity: self.identity(),
            client_id: self.client_id.as_deref(),
            subscriptions,
        };
        match self.node.resume_keys.issue(snapshot) {
            Ok(token) => {
                self.issued_token = true;
                let expires_in = self.node.resume_keys.ttl.as_secs();
                self.send_reply(
                    id,
                    "reconnection_token",
                    &serde_json::json!({"token": token, "expires_in": expires_in}),
                );
            }
            Err(error) => {
                tracing::error!(%error, "could not sign a reconnection token");
                self.send_error(id, ErrorCode::Internal, "could not issue a reconnection token");
            }
        }
    }
}

/// Most clients listed in a presence answer (CONTRACT §15); `truncated` says when more are present.
pub const MAX_PRESENCE_CLIENTS: usize = 1000;

/// The `presence` reply's payload, also served by `GET /api/presence/{topic}`.
#[derive(Serialize)]
pub struct PresencePayload {
    count: usize,
    clients: Vec<PresenceClient>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    truncated: bool,
}

#[derive(Serialize)]
struct PresenceClient {
    connection_id: String,
    user: Option<String>,
    client_id: Option<String>,
}

impl From<PresencePage> for PresencePayload {
    fn from(page: PresencePage) -> Self {
        PresencePayload {
            count: page.count,
            truncated: page.truncated,
            clients: page
                .clients
                .into_iter()
                .map(|m| PresenceClient {
                    connection_id: m.connection_id.to_string(),
                    user: m.user,
                    client_id: m.client_id,
                })
                .collect(),
        }
    }
}

/// An event's history entry, embedded verbatim in a `history` reply.
fn raw_event(entry: Cow<'_, [u8]>) -> Option<Box<RawValue>> {
    String::from_utf8(entry.into_owned())
        .ok()
        .and_then(|s| RawValue::from_string(s).ok())
}
