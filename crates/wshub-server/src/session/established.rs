//! `connection.established`: the first message of a session (CONTRACT §3), sent once the
//! connection has an identity, with what it may do and how its heartbeat works.

use super::Session;
use super::subscribe::Attached;
use serde::Serialize;
use std::time::Duration;
use wshub_protocol::{now_millis, outbound};

impl Session {
    /// Registers the connection and sends `connection.established`; `restored` are the
    /// subscriptions of a resumed session, whose replays follow it.
    pub(super) async fn established(&mut self, restored: Vec<Attached>, resumed: bool) {
        self.restart_token_clock();
        let Some(info) = self.connection_info() else { return };
        self.node.connections.register(&self.id, info);
        let Some(identity) = &self.identity else { return };
        let subscriptions = restored
            .iter()
            .map(|a| RestoredSubscription {
                topic: a.topic.as_str(),
                offset: a.position.offset.0,
                epoch: a.position.epoch.as_str(),
                recovered: a.recovered.unwrap_or(false),
            })
            .collect();
        let config = &self.node.config.websocket;
        let payload = Established {
            connection_id: self.id.as_str(),
            client_id: self.client_id.as_deref(),
            user: identity.user.as_deref(),
            role: identity.primary_role(),
            roles: (identity.roles.len() > 1).then_some(&identity.roles),
            resumed,
            resume_error: self.resume_error,
            subscriptions,
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
        self.release(restored).await;
        self.established = true;
        self.announce("connection.opened", resumed).await;
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
    subscriptions: Vec<RestoredSubscription<'a>>,
    permissions: Vec<crate::permissions::RulePermission>,
    heartbeat: Heartbeat,
    server: ServerInfo<'a>,
}

/// A subscription a resumed session got back: `offset` is the last event replayed
/// (or the topic's latest); `recovered: false` means events were lost for good.
#[derive(Serialize)]
struct RestoredSubscription<'a> {
    topic: &'a str,
    offset: u64,
    epoch: &'a str,
    recovered: bool,
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
