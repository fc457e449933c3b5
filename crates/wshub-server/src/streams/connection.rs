//! One raw stream connection, from the upgrade to the close.
//!
//! It registers like a `/ws` connection (counted in `/ws/status`, closed by
//! `POST /api/disconnect` and by shutdown with 1001), subscribes its one topic with the
//! fan-out, and reads only to keep the connection alive: frames from the client are ignored,
//! but any frame (a Pong, say) counts for the heartbeat, and a close ends the stream. There is no
//! way to refresh a token on a raw stream, so the connection closes with 4002 when its token
//! expires (`exp` plus `auth.jwt.leeway`).

use super::conflate;
use super::latest::Latest;
use crate::auth::Identity;
use crate::fanout::{ConnectionKey, Sink};
use crate::node::{ConnectionInfo, ConnectionSlot, Node};
use crate::session::close_reason;
use crate::session::delivered::Delivered;
use crate::session::expiry::TokenClock;
use crate::session::outbox::{self, Closer};
use crate::session::writer::{self, WriterConfig};
use crate::transport::{self, Inbound, SocketConfig, UpgradedSocket, WsReader};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{Instant, sleep_until};
use tracing::Instrument;
use wshub_protocol::{CloseCode, Topic};

/// An admitted raw stream, waiting for its upgrade.
pub(super) struct StreamConnection {
    /// The one topic it receives.
    pub topic: Topic,
    /// Who opened it.
    pub identity: Identity,
    /// The time between frames of a rate-limited route; `None` sends every event.
    pub period: Option<Duration>,
    /// The client's address.
    pub peer: SocketAddr,
}

/// Serves one upgraded raw stream until it closes.
pub(super) async fn run(node: Arc<Node>, socket: UpgradedSocket, stream: StreamConnection, slot: ConnectionSlot) {
    let ws = &node.config.websocket;
    let socket_config = SocketConfig {
        max_message_size: ws.max_message_size.as_usize(),
    };
    let (reader, ws_writer) = transport::from_upgraded(socket, socket_config);
    let closer = Closer::default();
    let writer_config = WriterConfig {
        ping_period: ws.ping_period,
        write_timeout: ws.write_timeout,
    };
    let (sink, outbox, writer) = match stream.period {
        Some(period) => {
            let latest = Arc::new(Latest::default());
            let writer = conflate::run(
                ws_writer,
                Arc::clone(&latest),
                closer.clone(),
                writer_config,
                period,
                Arc::clone(&node.metrics),
            );
            (Sink::Latest(latest), None, tokio::spawn(writer))
        }
        None => {
            // Bounded like a session's queue: overflow closes with 4008 (the outbox's policy).
            let (outbox, queue) = outbox::outbox(ws.outbound_queue, ws.outbound_queue_bytes.as_usize(), closer.clone());
            let writer = writer::run(
                ws_writer,
                queue,
                closer.clone(),
                Delivered::default(),
                writer_config,
                Arc::clone(&node.metrics),
            );
            (Sink::Payload(outbox.clone()), Some(outbox), tokio::spawn(writer))
        }
    };
    let (id, key) = node.connection_id();
    let span = tracing::debug_span!("stream", id = %id, topic = %stream.topic, peer = %stream.peer);
    async move {
        node.connections.register(
            &id,
            ConnectionInfo {
                user: stream.identity.user.clone(),
                closer: closer.clone(),
                outbox,
            },
        );
        tracing::debug!(user = ?stream.identity.user, conflated = stream.period.is_some(), "raw stream opened");
        subscribe(&node, &stream.topic, key, sink, &closer).await;
        read_loop(&node, reader, &stream.identity, &closer).await;
        unsubscribe(&node, &stream.topic, key).await;
        if writer.await.is_err() {
            tracing::warn!("raw stream writer panicked");
        }
        node.connections.unregister(&id);
        closer.set_ended();
        tracing::debug!(code = closer.reason().map(|r| r.code.code()), "raw stream closed");
        drop(slot);
    }
    .instrument(span)
    .await;
}

async fn subscribe(node: &Node, topic: &Topic, key: ConnectionKey, sink: Sink, closer: &Closer) {
    if node.registry.subscribe_raw(topic, key, sink)
        && let Err(error) = node.broker.listen(topic).await
    {
        tracing::warn!(%error, "broker listen failed; closing the raw stream");
        closer.close(CloseCode::Internal, "broker unavailable");
    }
}

async fn unsubscribe(node: &Node, topic: &Topic, key: ConnectionKey) {
    if node.registry.unsubscribe(topic, key)
        && let Err(error) = node.broker.unlisten(topic).await
    {
        tracing::warn!(%error, "broker unlisten failed");
    }
}

/// Reads until the connection should close, and says why through `closer`.
async fn read_loop(node: &Node, mut reader: WsReader, identity: &Identity, closer: &Closer) {
    let pong_wait = node.config.websocket.pong_wait;
    let heartbeat = sleep_until(Instant::now() + pong_wait);
    tokio::pin!(heartbeat);
    let token_deadline = TokenClock::new(Some(identity), node.config.auth.jwt.leeway, Instant::now()).deadline();
    let far_future = Instant::now() + Duration::from_secs(86_400 * 365);
    let token_timer = sleep_until(token_deadline.unwrap_or(far_future));
    tokio::pin!(token_timer);
    loop {
        let frame = tokio::select! {
            biased;
            () = closer.closing() => return,
            () = node.shutdown.draining() => {
                // A writer without `rate_hz` flushes what is queued before the close frame.
                closer.close(CloseCode::GoingAway, "server shutting down");
                return;
            }
            () = &mut heartbeat => {
                closer.close(CloseCode::Heartbeat, "heartbeat timeout");
                return;
            }
            () = &mut token_timer, if token_deadline.is_some() => {
                closer.close(CloseCode::TokenExpired, "token expired");
                return;
            }
            frame = reader.next() => frame,
        };
        heartbeat.as_mut().reset(Instant::now() + pong_wait);
        match frame {
            // Nothing is asked of a raw stream's client; what it sends only proves it is alive.
            Some(Ok(Inbound::Text(_) | Inbound::Binary(_) | Inbound::Heartbeat)) => {}
            Some(Ok(Inbound::Close(code))) => {
                tracing::debug!(?code, "client closed");
                closer.close(CloseCode::Normal, "");
                return;
            }
            Some(Err(error)) => {
                tracing::debug!(%error, "reading stopped");
                closer.close(error.close_code(), close_reason(&error));
                return;
            }
            None => {
                closer.close(CloseCode::Abnormal, "connection lost");
                return;
            }
        }
    }
}
