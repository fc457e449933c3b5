//! One WebSocket connection from upgrade to close.
//!
//! On the message path this is where a client's frame is read, decoded, checked and
//! dispatched (`dispatch` for JSON requests, `binary` for binary publishes), and where
//! everything the client receives is written (`writer`, fed by the bounded [`outbox`]).
//! The reader loop here owns the session's state; the writer runs as its own task so a slow
//! socket never stalls reading, and so does each handler call (`handler_call`), so a slow
//! backend never stalls it either.

mod binary;
pub(crate) mod delivered;
mod dispatch;
mod established;
pub(crate) mod expiry;
mod handler_call;
pub mod outbox;
mod publish;
pub mod rate_limit;
mod resumption;
mod subscribe;
pub(crate) mod writer;

pub use dispatch::{MAX_PRESENCE_CLIENTS, PresencePayload};
pub(crate) use resumption::RESUMED_ELSEWHERE;

use crate::auth::{AuthError, Identity};
use crate::fanout::ConnectionKey;
use crate::handlers::MAX_IN_FLIGHT;
use crate::handlers::in_flight::InFlight;
use crate::node::{ConnectionInfo, ConnectionSlot, Node};
use crate::resume::SubscriptionPosition;
use crate::transport::{self, Inbound, OutFrame, ReadError, SharedText, SocketConfig, UpgradedSocket, WsReader};
use delivered::Delivered;
use outbox::{Closer, Outbox, Outgoing};
use serde::Serialize;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;
use subscribe::Subscription;
use tokio::time::{Instant, sleep_until};
use tracing::Instrument;
use wshub_broker::{Content, PublicationDraft};
use wshub_protocol::{CloseCode, ConnectionId, ErrorCode, EventName, RequestId, Topic, now_millis, outbound};

/// The built-in topic of connection events (CONTRACT §14).
const CONNECTIONS_TOPIC: &str = "connections";

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
    subscriptions: HashMap<Topic, Subscription>,
    /// The last subscription slot handed out.
    next_slot: outbox::SubscriptionSlot,
    /// How far each subscription was written to the socket (kept by the writer).
    delivered: Delivered,
    /// Whether a reconnection token was issued (only then is state left for a resumption).
    issued_token: bool,
    /// Whether `connection.established` was sent (only then is `connection.closed` published).
    established: bool,
    limiter: rate_limit::RateLimiter,
    /// When the token expires and what happens then.
    token_clock: expiry::TokenClock,
    /// Set when `token_clock` changed (authentication), so the read loop re-arms its timer.
    token_changed: bool,
    outbox: Outbox,
    closer: Closer,
    /// Handler calls running beside the reader loop; their replies go straight to the outbox.
    calls: InFlight,
    /// `error` replies queued so far: tells a request's outcome for the metrics. Atomic only
    /// because the session is shared across `.await`s; it is never contended.
    errors_sent: std::sync::atomic::AtomicU64,
}

/// When the read loop has to act even if the client sends nothing.
struct Deadlines {
    /// No frame by then: the client is gone (4000).
    heartbeat: Instant,
    /// Not authenticated by then: 4001 (only while there is no identity).
    auth: Option<Instant>,
    /// Draining for a shutdown: handler calls still running then are cancelled.
    drain: Option<Instant>,
}

/// Serves one upgraded connection until it closes: sets it up, spawns its writer and returns
/// the session's future.
///
/// Not an `async fn`: its arguments would stay in the future for the connection's whole life
/// (twice over), and every connection's task holds that future.
pub fn run(
    node: Arc<Node>,
    socket: UpgradedSocket,
    params: ConnectParams,
    slot: ConnectionSlot,
) -> impl Future<Output = ()> + Send + 'static {
    let ws = &node.config.websocket;
    let socket_config = SocketConfig {
        max_message_size: ws.max_message_size.as_usize(),
    };
    let (reader, writer) = transport::from_upgraded(socket, socket_config);
    let closer = Closer::default();
    let (outbox, queue) = outbox::outbox(ws.outbound_queue, ws.outbound_queue_bytes.as_usize(), closer.clone());
    let writer_config = writer::WriterConfig {
        ping_period: ws.ping_period,
        write_timeout: ws.write_timeout,
    };
    let delivered = Delivered::default();
    let writer = tokio::spawn(writer::run(
        writer,
        queue,
        closer.clone(),
        delivered.clone(),
        writer_config,
        Arc::clone(&node.metrics),
    ));

    let (id, key) = node.connection_id();
    let span = tracing::debug_span!("connection", id = %id, peer = ?params.peer);
    let mut session = Session {
        node: Arc::clone(&node),
        id,
        key,
        client_id: None,
        resume_error: None,
        identity: None,
        subscriptions: HashMap::new(),
        next_slot: 0,
        delivered,
        issued_token: false,
        established: false,
        limiter: rate_limit::RateLimiter::new(&node.config.rate_limits, Instant::now()),
        token_clock: expiry::TokenClock::new(None, Duration::ZERO, Instant::now()),
        token_changed: false,
        outbox,
        closer,
        calls: InFlight::new(MAX_IN_FLIGHT),
        errors_sent: std::sync::atomic::AtomicU64::new(0),
    };
    node.metrics.connection_opened();
    let opened = Instant::now();
    // The handshake's and the close's work are boxed, and so is each message's handling in
    // the read loop: an idle connection's task then holds only what waiting for the next
    // frame needs (a few hundred bytes) rather than the largest of those futures.
    let params = Box::new(params);
    let mut reader = reader;
    async move {
        Box::pin(session.open(*params)).await;
        session.read_loop(&mut reader).await;
        drop(reader);
        Box::pin(session.close_down(writer, opened)).await;
        drop(slot);
    }
    .instrument(span)
}

impl Session {
    /// Checks the handshake parameters, authenticates or resumes, and sends
    /// `connection.established` unless the client still has to send `auth`.
    async fn open(&mut self, params: ConnectParams) {
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
        let access = match params.token {
            Some(token) => match self.node.auth.verify(&token) {
                Ok(identity) => Some(identity),
                Err(error) => return self.refuse_token(&error),
            },
            None => None,
        };
        if let Some(token) = params.reconnection_token {
            let redeemed = self.redeem(&token, access.as_ref()).await;
            self.node.metrics.reconnection(redeemed.is_ok());
            match redeemed {
                Ok(redeemed) => {
                    // A fresh access token for the same user extends the restored session.
                    self.identity = Some(access.unwrap_or(redeemed.identity));
                    if self.client_id.is_none() {
                        self.client_id = redeemed.client_id;
                    }
                    let requests = self.restore_requests(redeemed.positions);
                    let attached = match self.attach(requests).await {
                        Ok(attached) => attached,
                        Err(error) => {
                            tracing::warn!(%error, "broker failed while restoring subscriptions");
                            Vec::new()
                        }
                    };
                    return self.established(attached, true).await;
                }
                Err(error) => {
                    tracing::debug!(%error, "reconnection token refused");
                    self.resume_error = Some("invalid_reconnection_token");
                }
            }
        }
        self.identity = match access {
            Some(identity) => Some(identity),
            None if self.node.config.auth.allow_anonymous => Some(Identity::anonymous()),
            None => None,
        };
        if self.identity.is_some() {
            self.established(Vec::new(), false).await;
        }
    }

    fn refuse_token(&self, error: &AuthError) {
        tracing::debug!(%error, "token refused");
        self.send_error(None, ErrorCode::Unauthorized, &error.to_string());
        self.closer.close(CloseCode::Unauthorized, "unauthorized");
    }

    fn connection_info(&self) -> Option<ConnectionInfo> {
        Some(ConnectionInfo {
            user: self.identity.as_ref()?.user.clone(),
            closer: self.closer.clone(),
            outbox: Some(self.outbox.clone()),
        })
    }

    /// Starts the token clock for the current identity.
    fn restart_token_clock(&mut self) {
        let leeway = self.node.config.auth.jwt.leeway;
        self.token_clock = expiry::TokenClock::new(self.identity.as_ref(), leeway, Instant::now());
        self.token_changed = true;
    }

    async fn read_loop(&mut self, reader: &mut WsReader) {
        let config = &self.node.config;
        let pong_wait = config.websocket.pong_wait;
        // One timer serves every deadline of the connection (heartbeat, auth, token expiry,
        // the shutdown's drain). It is moved earlier when a deadline comes closer, but never
        // later: a frame pushes the heartbeat deadline back by just noting when it came, and a
        // timer that fires early is set again. So a busy connection does not touch the timer
        // wheel per frame, and an idle one holds one timer instead of four.
        let mut deadlines = Deadlines {
            heartbeat: Instant::now() + pong_wait,
            auth: self
                .identity
                .is_none()
                .then(|| Instant::now() + config.auth.auth_timeout),
            drain: None,
        };
        let timer = sleep_until(self.next_deadline(&deadlines));
        tokio::pin!(timer);
        // While draining, the connection stays open until its handler calls have answered,
        // or until the shutdown's deadline, when the calls still running answer `unavailable`.
        let mut draining = false;
        loop {
            if std::mem::take(&mut self.token_changed) || deadlines.drain.is_some() {
                let due = self.next_deadline(&deadlines);
                if due < timer.deadline() {
                    timer.as_mut().reset(due);
                }
            }
            let frame = tokio::select! {
                biased;
                () = std::future::poll_fn(|cx| self.closer.poll_closing_for_session(cx)) => return,
                () = self.node.shutdown.draining(), if !draining => {
                    if self.calls.is_empty() {
                        // The writer flushes what is queued before the close frame.
                        self.closer.close(CloseCode::GoingAway, "server shutting down");
                        return;
                    }
                    draining = true;
                    deadlines.drain = Some(self.node.shutdown.deadline().unwrap_or_else(Instant::now));
                    continue;
                }
                () = std::future::poll_fn(|cx| self.calls.poll_finished(cx)), if !self.calls.is_empty() => {
                    if draining && self.calls.is_empty() {
                        self.closer.close(CloseCode::GoingAway, "server shutting down");
                        return;
                    }
                    continue;
                }
                () = &mut timer => {
                    if self.on_timer(&mut deadlines, Instant::now()).is_break() {
                        return;
                    }
                    timer.as_mut().reset(self.next_deadline(&deadlines));
                    continue;
                }
                frame = std::future::poll_fn(|cx| reader.poll_next(cx)) => frame,
            };
            deadlines.heartbeat = Instant::now() + pong_wait;
            match frame {
                None => {
                    self.closer.close(CloseCode::Abnormal, "connection lost");
                    return;
                }
                Some(Ok(Inbound::Text(bytes))) => Box::pin(self.handle_text(&bytes)).await,
                Some(Ok(Inbound::Binary(bytes))) => Box::pin(self.handle_binary(bytes)).await,
                Some(Ok(Inbound::Heartbeat)) => {}
                Some(Ok(Inbound::Close(code))) => {
                    tracing::debug!(?code, "client closed");
                    self.closer.close(CloseCode::Normal, "");
                    return;
                }
                Some(Err(error)) => {
                    tracing::debug!(%error, "reading stopped");
                    self.closer.close(error.close_code(), close_reason(&error));
                    return;
                }
            }
        }
    }

    /// The earliest of the connection's deadlines.
    fn next_deadline(&self, deadlines: &Deadlines) -> Instant {
        let auth = deadlines.auth.filter(|_| self.identity.is_none());
        [
            Some(deadlines.heartbeat),
            auth,
            self.token_clock.deadline(),
            deadlines.drain,
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(deadlines.heartbeat)
    }

    /// The timer fired: acts on every deadline that has passed, in order of precedence.
    /// `Break` when the connection is to close.
    fn on_timer(&mut self, deadlines: &mut Deadlines, now: Instant) -> ControlFlow<()> {
        if now >= deadlines.heartbeat {
            self.closer.close(CloseCode::Heartbeat, "heartbeat timeout");
            return ControlFlow::Break(());
        }
        if let Some(deadline) = self.token_clock.deadline()
            && now >= deadline
        {
            let grace = self.node.config.auth.refresh_grace;
            match self.token_clock.on_deadline(grace, now) {
                expiry::Expiry::Expired => {
                    let message = format!(
                        "token expired; send auth with a fresh token within {}",
                        humantime::format_duration(grace)
                    );
                    self.send_error(None, ErrorCode::TokenExpired, &message);
                }
                expiry::Expiry::Close => {
                    self.closer.close(CloseCode::TokenExpired, "token expired");
                    return ControlFlow::Break(());
                }
            }
        }
        if let Some(deadline) = deadlines.auth
            && self.identity.is_none()
            && now >= deadline
        {
            self.send_error(None, ErrorCode::Unauthorized, "no auth message within auth_timeout");
            self.closer.close(CloseCode::Unauthorized, "auth timeout");
            return ControlFlow::Break(());
        }
        if let Some(deadline) = deadlines.drain
            && now >= deadline
        {
            // Each cancelled call answers `unavailable`; the `finished` branch then closes.
            self.calls.cancel_all();
            deadlines.drain = None;
        }
        ControlFlow::Continue(())
    }

    /// Once reading stopped: leaves the topics, waits for the writer to send what it owes and
    /// the close frame, and finishes.
    async fn close_down(&mut self, writer: tokio::task::JoinHandle<()>, opened: Instant) {
        // Nobody is left to read what the calls would answer.
        self.calls.cancel_all();
        let subscriptions = self.leave_all().await;
        if writer.await.is_err() {
            tracing::warn!("connection writer panicked");
        }
        let code = self.closer.reason().map_or(CloseCode::Normal, |r| r.code);
        self.node.metrics.connection_closed(code, opened.elapsed());
        self.finish(subscriptions).await;
    }

    /// Leaves every topic at once (no more events are queued), returning how far each
    /// was written so far.
    async fn leave_all(&mut self) -> Vec<(Topic, Subscription)> {
        // Their slots stay tracked: the writer may still flush queued events of them.
        let subscriptions: Vec<(Topic, Subscription)> = self.subscriptions.drain().collect();
        for (topic, _) in &subscriptions {
            self.unregister(topic).await;
            self.presence_leave(topic).await;
        }
        subscriptions
    }

    /// After the writer ended: leaves what a resumption needs, announces the close and
    /// forgets the connection.
    async fn finish(&mut self, subscriptions: Vec<(Topic, Subscription)>) {
        if self.issued_token {
            let positions = subscriptions
                .iter()
                .filter_map(|(topic, s)| {
                    Some(SubscriptionPosition {
                        topic: topic.to_string(),
                        epoch: s.epoch.to_string(),
                        offset: self.delivered.get(s.slot)?,
                    })
                })
                .collect();
            self.save_resumption_state(positions).await;
        }
        if self.established {
            self.announce("connection.closed", false).await;
        }
        self.node.connections.unregister(&self.id);
        self.closer.set_ended();
    }

    /// Publishes `connection.opened` / `connection.closed` on the `connections` topic,
    /// when a topic rule covers it.
    async fn announce(&self, event: &'static str, resumed: bool) {
        let topic = CONNECTIONS_TOPIC;
        if self.node.rules.rule_for(topic).is_none() {
            return;
        }
        let (Ok(topic), Some(identity)) = (Topic::parse(topic), &self.identity) else {
            return;
        };
        let mut payload = serde_json::json!({
            "connection_id": self.id.as_str(),
            "client_id": self.client_id,
            "user": identity.user,
            "role": identity.primary_role(),
        });
        if event == "connection.opened" {
            payload["resumed"] = serde_json::Value::Bool(resumed);
        } else if let Some(reason) = self.closer.reason() {
            payload["code"] = serde_json::Value::from(reason.code.code());
        }
        let Ok(payload) = serde_json::value::to_raw_value(&payload) else {
            return;
        };
        let policy = self.node.rules.history_for(topic.as_str());
        let draft = PublicationDraft {
            topic,
            content: Content::Json {
                event: EventName::internal(event),
                payload: Arc::from(payload),
            },
            id: self.node.event_id(),
            timestamp: now_millis(),
            sender_id: Arc::from("server"),
        };
        if let Err(error) = self.node.broker.publish(draft, policy).await {
            tracing::debug!(%error, event, "could not publish a connection event");
        }
    }

    /// Queues an encoded message; an outbound message over `max_message_size` is
    /// replaced by a `message_too_large` error (CONTRACT §4).
    fn send(&self, bytes: Vec<u8>) {
        if bytes.len() > self.node.config.websocket.max_message_size.as_usize() {
            let message = format!("reply of {} bytes exceeds max_message_size", bytes.len());
            self.counted_error(ErrorCode::MessageTooLarge);
            return self.send(outbound::error(
                None,
                ErrorCode::MessageTooLarge,
                &message,
                None,
                now_millis(),
            ));
        }
        if let Some(text) = SharedText::from_vec(bytes) {
            self.outbox.push(Outgoing::Frame(OutFrame::Text(text)));
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
        self.counted_error(code);
        self.send(outbound::error(id, code, message, None, now_millis()));
    }

    /// Counts an `error` reply about to be queued (metrics and this request's outcome).
    fn counted_error(&self, code: ErrorCode) {
        self.node.metrics.error(code);
        self.errors_sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// `error` replies queued so far on this connection.
    fn errors_sent(&self) -> u64 {
        self.errors_sent.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// The reason sent in the close frame for a read error (the detail goes to the log only).
pub(crate) fn close_reason(error: &ReadError) -> &'static str {
    match error {
        ReadError::TooBig => "message too big",
        ReadError::Protocol(_) => "protocol error",
        ReadError::InvalidPayload(_) => "invalid message data",
        ReadError::Io(_) => "connection lost",
    }
}
