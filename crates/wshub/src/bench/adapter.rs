//! What differs between the servers under test: how a connection is opened and made ready
//! (wshub: `connection.established`, then `subscribe`; Socket.IO: the engine.io open packet and
//! the `40` namespace connect; broadcast: nothing), how a message is wrapped for publishing, and
//! which frames need an answer (engine.io's `2` ping wants `3`).

use crate::args::{ServerArgs, TargetKind};
use crate::cli::endpoint::{self, WsEndpoint};
use crate::cli::explain;
use anyhow::{Result, anyhow, bail};
use serde::Deserialize;
use serde_json::{Value, json};
use std::net::IpAddr;
use std::time::Duration;
use tokio::time::Instant;
use wshub_client::{Client, ClientError, ConnectOptions, RawFrame};

/// How long opening one connection may take, handshake and subscribe included.
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// Read buffer of each load connection: small, for tens of thousands of them.
const READ_BUFFER: usize = 16 * 1024;
/// The event name of every load message (wshub `event`, Socket.IO event).
pub const EVENT: &str = "bench";

/// One server under test.
#[derive(Debug)]
pub struct Adapter {
    pub kind: TargetKind,
    /// The URL connections dial.
    dial_url: String,
    /// The URL as it may be printed.
    pub shown_url: String,
    /// The URL's host, to decide on source addresses.
    pub host: String,
    token: Option<String>,
    /// What goes before and after a message body when publishing over WebSocket.
    frame_prefix: String,
    frame_suffix: &'static str,
}

/// What a wshub publisher's connection got back.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    /// `published`.
    Ack,
    /// `error`, with its code and message.
    Refused { code: String, message: String },
    /// Anything else.
    Other,
}

impl Adapter {
    /// The adapter for `--target`, publishing to `topic` on wshub.
    pub fn new(args: &ServerArgs, topic: &str) -> Result<Adapter> {
        let endpoint = match args.target {
            TargetKind::Wshub => WsEndpoint::parse(&args.url)?,
            TargetKind::Broadcast => WsEndpoint::parse_with_default_path(&args.url, "/")?,
            TargetKind::Socketio => WsEndpoint::parse_with_default_path(&args.url, "/socket.io/")?,
        };
        let mut dial_url = endpoint.dial_url(None, None);
        if args.target == TargetKind::Socketio {
            dial_url = socketio_url(&dial_url)?;
        }
        let (frame_prefix, frame_suffix) = match args.target {
            TargetKind::Wshub => (
                format!(
                    r#"{{"type":"publish","topic":{},"event":"{EVENT}","payload":"#,
                    json!(topic)
                ),
                "}",
            ),
            TargetKind::Broadcast => (String::new(), ""),
            TargetKind::Socketio => (format!(r#"42["{EVENT}","#), "]"),
        };
        Ok(Adapter {
            kind: args.target,
            shown_url: endpoint::redact_str(&dial_url),
            host: endpoint.host().to_owned(),
            dial_url,
            token: args.token.clone().filter(|token| !token.trim().is_empty()),
            frame_prefix,
            frame_suffix,
        })
    }

    /// The name `--target` gives this kind.
    pub fn name(&self) -> &'static str {
        match self.kind {
            TargetKind::Wshub => "wshub",
            TargetKind::Broadcast => "broadcast",
            TargetKind::Socketio => "socketio",
        }
    }

    /// Opens a connection from `bind` and makes it ready to receive: established and, on wshub,
    /// subscribed to `subscribe`. The error is a sentence for the user.
    pub async fn open(&self, bind: Option<IpAddr>, subscribe: Option<&str>) -> Result<Client> {
        let deadline = Instant::now() + OPEN_TIMEOUT;
        let options = ConnectOptions {
            headers: self
                .token
                .iter()
                .map(|token| ("authorization".to_owned(), format!("Bearer {token}")))
                .collect(),
            bind,
            read_buffer: Some(READ_BUFFER),
        };
        let connected = tokio::time::timeout_at(deadline, Client::connect_with(&self.dial_url, &options))
            .await
            .unwrap_or(Err(ClientError::Timeout(OPEN_TIMEOUT)));
        let mut client = connected.map_err(|error| anyhow!(self.refusal(&error)))?;
        match self.kind {
            TargetKind::Wshub => {
                wshub_establish(&mut client, deadline).await?;
                if let Some(topic) = subscribe {
                    wshub_subscribe(&mut client, topic, deadline).await?;
                }
            }
            TargetKind::Socketio => socketio_connect(&mut client, self.token.as_deref(), deadline).await?,
            TargetKind::Broadcast => {}
        }
        Ok(client)
    }

    /// Why a connection could not be opened, with what to change when that is known.
    fn refusal(&self, error: &ClientError) -> String {
        let reason = explain::ws_failure(&self.shown_url, error);
        let hint = match (self.kind, error) {
            (TargetKind::Wshub, ClientError::Refused { status: 429, .. }) => {
                " (the hub's per-address limit: raise websocket.max_connections_per_ip or \
                 websocket.handshake_rate_per_ip, or spread connections with --source-ips)"
            }
            (TargetKind::Wshub, ClientError::Refused { status: 503, .. }) => {
                " (raise the hub's websocket.max_connections)"
            }
            (_, ClientError::Connect { .. }) if reason.contains("ddress not available") => {
                " (out of local ports: spread connections with --source-ips)"
            }
            (_, ClientError::Connect { .. }) if reason.contains("pen files") => {
                " (raise the open-file limit: ulimit -n)"
            }
            _ => "",
        };
        format!("{reason}{hint}")
    }

    /// The frame that publishes `body` over WebSocket.
    pub fn publish_frame(&self, body: &str) -> String {
        let mut frame = String::with_capacity(self.frame_prefix.len() + body.len() + self.frame_suffix.len());
        frame.push_str(&self.frame_prefix);
        frame.push_str(body);
        frame.push_str(self.frame_suffix);
        frame
    }

    /// The frame to send back for `text`, when the protocol wants one.
    pub fn answer(&self, text: &str) -> Option<&'static str> {
        // engine.io v4: the server pings, the client pongs.
        (self.kind == TargetKind::Socketio && text == "2").then_some("3")
    }
}

/// What a wshub publisher's connection got back; cheap for the common `published`.
pub fn wshub_reply(text: &str) -> Reply {
    #[derive(Deserialize)]
    struct Head<'a> {
        #[serde(rename = "type", borrow)]
        kind: Option<&'a str>,
    }
    match serde_json::from_str::<Head>(text).ok().and_then(|head| head.kind) {
        Some("published") => Reply::Ack,
        Some("error") => {
            let value: Value = serde_json::from_str(text).unwrap_or(Value::Null);
            Reply::Refused {
                code: value["payload"]["code"].as_str().unwrap_or("error").to_owned(),
                message: explain::error_message(&value),
            }
        }
        _ => Reply::Other,
    }
}

/// The Socket.IO URL with the engine.io query it needs (kept if the user gave it).
fn socketio_url(dial_url: &str) -> Result<String> {
    let mut url = url::Url::parse(dial_url)?;
    let has = |key: &str| url.query_pairs().any(|(k, _)| k == key);
    let (has_eio, has_transport) = (has("EIO"), has("transport"));
    {
        let mut query = url.query_pairs_mut();
        if !has_eio {
            query.append_pair("EIO", "4");
        }
        if !has_transport {
            query.append_pair("transport", "websocket");
        }
    }
    Ok(url.into())
}

/// The next text frame before `deadline`; `what` names what was awaited, for the error.
async fn next_text(client: &mut Client, deadline: Instant, what: &str) -> Result<String> {
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match client.next_raw(remaining).await {
            Ok(RawFrame::Text(text)) => return Ok(text.as_str().to_owned()),
            Ok(RawFrame::Binary(_) | RawFrame::Ping) => {}
            Ok(RawFrame::Closed(close)) => {
                bail!(
                    "the server closed the connection before {what} ({})",
                    explain::close(&close)
                )
            }
            Err(ClientError::Timeout(_)) => bail!("no {what} within {}s", OPEN_TIMEOUT.as_secs()),
            Err(error) => bail!("the connection failed before {what}: {error}"),
        }
    }
}

async fn wshub_establish(client: &mut Client, deadline: Instant) -> Result<()> {
    loop {
        let text = next_text(
            client,
            deadline,
            "connection.established (is this a wshub /ws endpoint?)",
        )
        .await?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        match value["type"].as_str() {
            Some("connection.established") => return Ok(()),
            Some("error") => {
                let reason = explain::error_message(&value);
                let hint = if reason.starts_with("unauthorized") {
                    " (this hub needs a token: pass --token)"
                } else {
                    ""
                };
                bail!("the hub refused the connection: {reason}{hint}")
            }
            _ => {}
        }
    }
}

async fn wshub_subscribe(client: &mut Client, topic: &str, deadline: Instant) -> Result<()> {
    let remaining = deadline.saturating_duration_since(Instant::now());
    let reply = client
        .request("subscribe", json!({ "topic": topic }), remaining)
        .await
        .map_err(|error| anyhow!("no answer to subscribe {topic:?}: {error}"))?;
    if reply["type"] == "error" {
        bail!(
            "the hub refused to subscribe to {topic:?}: {}",
            explain::error_message(&reply)
        );
    }
    if let Some(denied) = reply["payload"]["denied"].as_array().and_then(|denied| denied.first()) {
        bail!(
            "the hub refused to subscribe to {topic:?}: {}",
            denied["code"].as_str().unwrap_or("denied")
        );
    }
    Ok(())
}

/// engine.io open (`0{…}`), then the Socket.IO connect to the default namespace (`40`, with
/// the token as auth when there is one) and its acknowledgement (`40{…}`).
async fn socketio_connect(client: &mut Client, token: Option<&str>, deadline: Instant) -> Result<()> {
    let open = next_text(
        client,
        deadline,
        "the engine.io open packet (is this a Socket.IO v4 server?)",
    )
    .await?;
    if !open.starts_with('0') {
        bail!("the server's first packet is not an engine.io open packet (is this a Socket.IO v4 server?)");
    }
    let connect = match token {
        Some(token) => format!("40{}", json!({ "token": token })),
        None => "40".to_owned(),
    };
    client
        .send_text(&connect)
        .await
        .map_err(|error| anyhow!("the connection failed: {error}"))?;
    loop {
        let packet = next_text(client, deadline, "the Socket.IO connect acknowledgement").await?;
        if packet.starts_with("40") {
            return Ok(());
        }
        if let Some(refusal) = packet.strip_prefix("44") {
            bail!("the Socket.IO server refused the connection: {refusal}");
        }
        if packet == "2" {
            client
                .send_text("3")
                .await
                .map_err(|error| anyhow!("the connection failed: {error}"))?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::source::SourceIps;

    fn adapter(kind: TargetKind, url: &str) -> Adapter {
        let args = ServerArgs {
            url: url.to_owned(),
            target: kind,
            token: None,
            source_ips: SourceIps::Auto,
            server_pid: None,
            json: false,
        };
        Adapter::new(&args, "room/1").expect("valid")
    }

    #[test]
    fn urls_get_each_servers_default_path() {
        assert_eq!(
            adapter(TargetKind::Wshub, "127.0.0.1:8000").dial_url,
            "ws://127.0.0.1:8000/ws"
        );
        assert_eq!(
            adapter(TargetKind::Broadcast, "ws://127.0.0.1:9000").dial_url,
            "ws://127.0.0.1:9000/"
        );
        assert_eq!(
            adapter(TargetKind::Socketio, "http://127.0.0.1:3000").dial_url,
            "ws://127.0.0.1:3000/socket.io/?EIO=4&transport=websocket"
        );
        assert_eq!(
            adapter(TargetKind::Socketio, "ws://h:3000/io/?EIO=4&transport=websocket").dial_url,
            "ws://h:3000/io/?EIO=4&transport=websocket"
        );
        assert_eq!(adapter(TargetKind::Wshub, "ws://127.0.0.1:8000/ws").host, "127.0.0.1");
    }

    #[test]
    fn frames_wrap_the_body_for_each_server() {
        let body = r#"{"s":1}"#;
        assert_eq!(
            adapter(TargetKind::Wshub, "h:1").publish_frame(body),
            r#"{"type":"publish","topic":"room/1","event":"bench","payload":{"s":1}}"#
        );
        assert_eq!(adapter(TargetKind::Broadcast, "h:1").publish_frame(body), body);
        assert_eq!(
            adapter(TargetKind::Socketio, "h:1").publish_frame(body),
            r#"42["bench",{"s":1}]"#
        );
    }

    #[test]
    fn only_engine_io_pings_get_an_answer() {
        assert_eq!(adapter(TargetKind::Socketio, "h:1").answer("2"), Some("3"));
        assert_eq!(adapter(TargetKind::Socketio, "h:1").answer("42[]"), None);
        assert_eq!(adapter(TargetKind::Broadcast, "h:1").answer("2"), None);
    }

    #[test]
    fn wshub_replies_are_told_apart() {
        assert_eq!(
            wshub_reply(r#"{"type":"published","payload":{"offset":3,"epoch":"e"},"timestamp":1}"#),
            Reply::Ack
        );
        assert_eq!(
            wshub_reply(
                r#"{"type":"error","payload":{"code":"rate_limited","message":"slow down","retry_after":0.5}}"#
            ),
            Reply::Refused {
                code: "rate_limited".into(),
                message: "rate_limited: slow down".into()
            }
        );
        assert_eq!(wshub_reply(r#"{"type":"pong"}"#), Reply::Other);
        assert_eq!(wshub_reply("not json"), Reply::Other);
    }
}
