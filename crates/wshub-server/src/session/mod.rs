//! One WebSocket connection from upgrade to close.
//!
//! On the message path this is where a client's frame is read, decoded, checked and
//! dispatched (`dispatch`), and where everything the client receives is written
//! (`writer`, fed by the bounded [`outbox`]). The reader loop here owns the session's
//! state; the writer runs as its own task so a slow socket never stalls reading.

mod dispatch;
mod expiry;
pub mod outbox;
pub mod rate_limit;
mod writer;

use crate::auth::{AuthError, Identity};
use crate::fanout::ConnectionKey;
use crate::node::{ConnectionInfo, ConnectionSlot, Node};
use crate::transport::{self, Inbound, OutFrame, ReadError, SharedText, SocketConfig, WsReader};
use hyper::upgrade::Upgraded;
use outbox::{Closer, Outbox};
use serde::Serialize;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{Instant, sleep_until};
use tracing::Instrument;
use wshub_protocol::{CloseCode, ConnectionId, ErrorCode, RequestId, Topic, now_millis, outbound};

/// Longest accepted `client_id`, in bytes (CONTRACT §2).
pub const MAX_CLIENT_ID_LEN: usize = 128;

/// What the handshake carried.
#[derive(Debug, Default, Clone)]
pub struct ConnectParams {
    /// The `client_id` query parameter.
    pub client_id: Option<String>,
    /// A token from the `token` query parameter or the `Authorization` header.
    pub token: Option<String>,
    /// The `reconnection_token` query parameter.
    pub reconnection_token: Option<String>,
    /// The client's address.
    pub peer: Option<SocketAddr>,
}

/// The state of one connection, owned by its reader loop.
pub(crate) struct Session {
    node: Arc<Node>,
    id: ConnectionId,
    key: ConnectionKey,
    client_id: Option<String>,
    /// Why a `reconnection_token` given at the handshake could not be used.
    resume_error: Option<&'static str>,
    /// `None` until the connection authenticated (anonymous access off, no token yet).
    identity: Option<Identity>,
    subscriptions: HashSet<Topic>,
    limiter: rate_limit::RateLimiter,
    /// When the token expires and what happens then.
    token_clock: expiry::TokenClock,
    /// Set when `token_clock` changed (authentication), so the read loop re-arms its timer.
    token_changed: bool,
    outbox: Outbox,
    closer: Closer,
}

/// Serves one upgraded connection until it closes.
pub async fn run(node: Arc<Node>, upgraded: Upgraded, params: ConnectParams, slot: ConnectionSlot) {
    let ws = &node.config.websocket;
    let socket_config = SocketConfig {
        max_message_size: ws.max_message_size.as_usize(),
    };
    let (reader, writer) = transport::from_upgraded(upgraded, socket_config).await;
    let closer = Closer::default();
    let (outbox, queue) = outbox::outbox(ws.outbound_queue, ws.outbound_queue_bytes.as_usize(), closer.clone());
    let writer_config = writer::WriterConfig {
        ping_period: ws.ping_period,
        write_timeout: ws.write_timeout,
    };
    let writer = tokio::spawn(writer::run(writer, queue, closer.clone(), writer_config));

    let (id, key) = node.connection_id();
    let span = tracing::debug_span!("connection", id = %id, peer = ?params.peer);
    let mut session = Session {
        node: Arc::clone(&node),
        id,
        key,
        client_id: None,
        resume_error: None,
        identity: None,
        subscriptions: HashSet::new(),
        limiter: rate_limit::RateLimiter::new(&node.config.rate_limits, Instant::now()),
        token_clock: expiry::TokenClock::new(None, Duration::ZERO, Instant::now()),
        token_changed: false,
        outbox,
        closer,
    };
    async move {
        session.open(params);
        session.read_loop(reader).await;
        session.cleanup().await;
        if writer.await.is_err() {
            tracing::warn!("connection writer panicked");
        }
        drop(slot);
    }
    .instrument(span)
    .await;
}

impl Session {
    /// Checks the handshake parameters and authenticates; sends `connection.established`
    /// unless the client still has to send `auth`.
    fn open(&mut self, params: ConnectParams) {
        if let Some(client_id) = params.client_id {
            if client_id.len() > MAX_CLIENT_ID_LEN {
                self.send_error(
                    None,
                    ErrorCode::InvalidMessage,
                    &format!("client_id is longer than {MAX_CLIENT_ID_LEN} bytes"),
                );
                self.closer.close(CloseCode::Policy, "client_id too long");
                return;
            }
            self.client_id = Some(client_id);
        }
        if params.reconnection_token.is_some() {
            // Resuming sessions is not served by this version: every token is unusable,
            // and the client is told so explicitly instead of silently getting a fresh session.
            self.resume_error = Some("invalid_reconnection_token");
        }
        match params.token {
            Some(token) => match self.node.auth.verify(&token) {
                Ok(identity) => self.identity = Some(identity),
                Err(error) => return self.refuse_token(&error),
            },
            None if self.node.config.auth.allow_anonymous => self.identity = Some(Identity::anonymous()),
            None => {}
        }
        if self.identity.is_some() {
            self.established();
        }
    }

    fn refuse_token(&self, error: &AuthError) {
        tracing::debug!(%error, "token refused");
        self.send_error(None, ErrorCode::Unauthorized, &error.to_string());
        self.closer.close(CloseCode::Unauthorized, "unauthorized");
    }

    /// Registers the connection and sends `connection.established`.
    fn established(&mut self) {
        self.restart_token_clock();
        let Some(identity) = &self.identity else { return };
        self.node.connections.register(
            &self.id,
            ConnectionInfo {
                user: identity.user.clone(),
                closer: self.closer.clone(),
            },
        );
        let config = &self.node.config.websocket;
        let payload = Established {
            connection_id: self.id.as_str(),
            client_id: self.client_id.as_deref(),
            user: identity.user.as_deref(),
            role: identity.primary_role(),
            roles: (identity.roles.len() > 1).then_some(&identity.roles),
            resumed: false,
            resume_error: self.resume_error,
            subscriptions: Vec::new(),
            permissions: self.node.rules.permissions(identity),
            heartbeat: Heartbeat {
                ping_period: seconds(config.ping_period),
                pong_wait: seconds(config.pong_wait),
            },
            server: ServerInfo {
                version: env!("CARGO_PKG_VERSION"),
                node: &self.node.name,
            },
        };
        self.send(outbound::reply(None, "connection.established", &payload, now_millis()));
    }

    /// Starts the token clock for the current identity.
    fn restart_token_clock(&mut self) {
        let leeway = self.node.config.auth.jwt.leeway;
        self.token_clock = expiry::TokenClock::new(self.identity.as_ref(), leeway, Instant::now());
        self.token_changed = true;
    }

    async fn read_loop(&mut self, mut reader: WsReader) {
        let config = &self.node.config;
        let pong_wait = config.websocket.pong_wait;
        let heartbeat = sleep_until(Instant::now() + pong_wait);
        tokio::pin!(heartbeat);
        let far_future = Instant::now() + Duration::from_secs(86_400 * 365);
        let auth_deadline = if self.identity.is_none() {
            Instant::now() + config.auth.auth_timeout
        } else {
            far_future
        };
        let auth_timer = sleep_until(auth_deadline);
        tokio::pin!(auth_timer);
        let token_timer = sleep_until(far_future);
        tokio::pin!(token_timer);
        loop {
            if std::mem::take(&mut self.token_changed) {
                token_timer
                    .as_mut()
                    .reset(self.token_clock.deadline().unwrap_or(far_future));
            }
            let frame = tokio::select! {
                biased;
                () = self.closer.closing() => return,
                () = self.node.shutdown.draining() => {
                    // Nothing runs in the background of a session yet, so there is no
                    // in-flight work to wait for: close now; the writer flushes first.
                    self.closer.close(CloseCode::GoingAway, "server shutting down");
                    return;
                }
                () = &mut heartbeat => {
                    self.closer.close(CloseCode::Heartbeat, "heartbeat timeout");
                    return;
                }
                () = &mut token_timer, if self.token_clock.deadline().is_some() => {
                    let grace = self.node.config.auth.refresh_grace;
                    match self.token_clock.on_deadline(grace, Instant::now()) {
                        expiry::Expiry::Expired => {
                            let message = format!("token expired; send auth with a fresh token within {}", humantime::format_duration(grace));
                            self.send_error(None, ErrorCode::TokenExpired, &message);
                            self.token_changed = true;
                        }
                        expiry::Expiry::Close => {
                            self.closer.close(CloseCode::TokenExpired, "token expired");
                            return;
                        }
                    }
                    continue;
                }
                () = &mut auth_timer, if self.identity.is_none() => {
                    self.send_error(None, ErrorCode::Unauthorized, "no auth message within auth_timeout");
                    self.closer.close(CloseCode::Unauthorized, "auth timeout");
                    return;
                }
                frame = reader.next() => frame,
            };
            heartbeat.as_mut().reset(Instant::now() + pong_wait);
            match frame {
                None => {
                    self.closer.close(CloseCode::Abnormal, "connection lost");
                    return;
                }
                Some(Ok(Inbound::Text(bytes))) => self.handle_text(&bytes).await,
                Some(Ok(Inbound::Binary(_))) => {
                    if self.charge_malformed() {
                        return;
                    }
                    self.send_error(
                        None,
                        ErrorCode::InvalidMessage,
                        "binary frames are not accepted on this hub; send JSON text frames",
                    )
                }
                Some(Ok(Inbound::Heartbeat)) => {}
                Some(Ok(Inbound::Close(code))) => {
                    tracing::debug!(?code, "client closed");
                    self.closer.close(CloseCode::Normal, "");
                    return;
                }
                Some(Err(ReadError::TooBig)) => {
                    self.closer.close(CloseCode::TooBig, "message too big");
                    return;
                }
                Some(Err(ReadError::Protocol(error))) => {
                    tracing::debug!(%error, "protocol error");
                    self.closer.close(CloseCode::Other(1002), "protocol error");
                    return;
                }
                Some(Err(ReadError::Io(error))) => {
                    tracing::debug!(%error, "connection lost");
                    self.closer.close(CloseCode::Abnormal, "connection lost");
                    return;
                }
            }
        }
    }

    /// Leaves every topic and forgets the connection.
    async fn cleanup(&mut self) {
        for topic in std::mem::take(&mut self.subscriptions) {
            self.leave(&topic).await;
        }
        self.node.connections.unregister(&self.id);
    }

    async fn leave(&self, topic: &Topic) {
        if self.node.registry.unsubscribe(topic, self.key)
            && let Err(error) = self.node.broker.unlisten(topic).await
        {
            tracing::warn!(%error, topic = %topic, "broker unlisten failed");
        }
    }

    /// Queues an encoded message; an outbound message over `max_message_size` is
    /// replaced by a `message_too_large` error (CONTRACT §4).
    fn send(&self, bytes: Vec<u8>) {
        if bytes.len() > self.node.config.websocket.max_message_size.as_usize() {
            let message = format!("reply of {} bytes exceeds max_message_size", bytes.len());
            return self.send(outbound::error(
                None,
                ErrorCode::MessageTooLarge,
                &message,
                None,
                now_millis(),
            ));
        }
        if let Some(text) = SharedText::from_vec(bytes) {
            self.outbox.push(OutFrame::Text(text));
        }
    }

    fn send_reply<P: Serialize>(&self, id: Option<&RequestId>, kind: &str, payload: &P) {
        let bytes = outbound::reply(id, kind, payload, now_millis());
        if bytes.len() > self.node.config.websocket.max_message_size.as_usize() {
            let message = format!("{kind} reply of {} bytes exceeds max_message_size", bytes.len());
            return self.send_error(id, ErrorCode::MessageTooLarge, &message);
        }
        self.send(bytes);
    }

    fn send_error(&self, id: Option<&RequestId>, code: ErrorCode, message: &str) {
        self.send(outbound::error(id, code, message, None, now_millis()));
    }
}

/// A duration in seconds, as an integer when whole (`54`, not `54.0`).
fn seconds(d: Duration) -> serde_json::Value {
    if d.subsec_nanos() == 0 {
        serde_json::Value::from(d.as_secs())
    } else {
        serde_json::Value::from(d.as_secs_f64())
    }
}

#[derive(Serialize)]
struct Established<'a> {
    connection_id: &'a str,
    client_id: Option<&'a str>,
    user: Option<&'a str>,
    role: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    roles: Option<&'a Vec<String>>,
    resumed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    resume_error: Option<&'static str>,
    subscriptions: Vec<serde_json::Value>,
    permissions: Vec<crate::permissions::RulePermission>,
    heartbeat: Heartbeat,
    server: ServerInfo<'a>,
}

#[derive(Serialize)]
struct Heartbeat {
    ping_period: serde_json::Value,
    pong_wait: serde_json::Value,
}

#[derive(Serialize)]
struct ServerInfo<'a> {
    version: &'a str,
    node: &'a str,
}
