//! Opening a connection to the hub as the client commands do: the WebSocket handshake (the token in
//! an `Authorization` header, so it stays out of URLs and proxy logs), waiting for
//! `connection.established`, and one request/reply exchange.

use super::Payload;
use super::endpoint::WsEndpoint;
use super::explain;
use super::output::Screen;
use crate::args::WsTarget;
use anyhow::Result;
use serde_json::Value;
use std::time::{Duration, Instant};
use wshub_client::{Client, ClientError, Close, Frame, is_event};

/// How long the TCP connect and the WebSocket handshake may take together.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where to connect and as whom.
#[derive(Debug, Clone)]
pub struct Target {
    pub endpoint: WsEndpoint,
    pub token: Option<String>,
    pub client_id: Option<String>,
}

impl Target {
    pub fn from_args(args: &WsTarget) -> Result<Target> {
        Ok(Target {
            endpoint: WsEndpoint::parse(&args.url)?,
            token: args.token.clone().filter(|t| !t.trim().is_empty()),
            client_id: args.client_id.clone(),
        })
    }
}

/// Opens the WebSocket, with a reconnection token in the query when given. The error is a
/// sentence for the user. With a screen, the handshake is shown (`--verbose`).
pub async fn dial(
    target: &Target,
    reconnection_token: Option<&str>,
    mut verbose: Option<&mut Screen>,
) -> Result<Client, String> {
    let url = target
        .endpoint
        .dial_url(target.client_id.as_deref(), reconnection_token);
    let shown = super::endpoint::redact_str(&url);
    let mut headers = Vec::new();
    if let Some(token) = &target.token {
        headers.push(("authorization", format!("Bearer {token}")));
    }
    if let Some(screen) = verbose.as_deref_mut() {
        let auth = if target.token.is_some() {
            " with Authorization: Bearer (token hidden)"
        } else {
            " without a token"
        };
        screen.detail(format!("→ GET {shown} (WebSocket upgrade{auth})"));
    }
    let started = Instant::now();
    let connected = tokio::time::timeout(HANDSHAKE_TIMEOUT, Client::connect_request(&url, headers))
        .await
        .unwrap_or(Err(ClientError::Timeout(HANDSHAKE_TIMEOUT)));
    match connected {
        Ok(client) => {
            if let Some(screen) = verbose {
                let handshake = client.handshake();
                screen.detail(format!(
                    "← HTTP {} in {} ms",
                    handshake.status,
                    started.elapsed().as_millis()
                ));
            }
            Ok(client)
        }
        Err(error) => Err(explain::ws_failure(&target.endpoint.display(), &error)),
    }
}

/// Why a connection did not reach `connection.established`.
#[derive(Debug)]
pub enum NotEstablished {
    /// The hub answered with an error (a bad token, an over-long client id): trying again with
    /// the same settings cannot help.
    Refused(String),
    /// The connection ended first: worth trying again.
    Lost(Close),
    /// Nothing came in time.
    Silent(Duration),
}

impl NotEstablished {
    /// The failure as a sentence; `had_token` adds a hint when a hub that needs one got none.
    pub fn describe(&self, had_token: bool) -> String {
        match self {
            NotEstablished::Refused(reason) if !had_token && reason.starts_with("unauthorized") => {
                format!("the hub refused the connection: {reason} (this hub needs a token: pass --token)")
            }
            NotEstablished::Refused(reason) => format!("the hub refused the connection: {reason}"),
            NotEstablished::Lost(close) => format!(
                "the hub closed the connection before it was established ({})",
                explain::close(close)
            ),
            NotEstablished::Silent(after) => format!(
                "no connection.established from the hub within {}s (is this a wshub /ws endpoint?)",
                after.as_secs()
            ),
        }
    }
}

/// Waits for `connection.established` and returns it. Every frame before it (and it too) is
/// handed to `seen` first, so a caller can show and log them.
pub async fn establish(
    client: &mut Client,
    timeout: Duration,
    mut seen: impl FnMut(&Frame),
) -> Result<Value, NotEstablished> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        let frame = match client.next_frame(remaining).await {
            Ok(frame) => frame,
            Err(ClientError::Timeout(_)) => return Err(NotEstablished::Silent(timeout)),
            // A text frame that is not JSON: not ours to judge here, keep waiting.
            Err(_) => continue,
        };
        seen(&frame);
        match frame {
            Frame::Json { value, .. } if value["type"] == "connection.established" => return Ok(value),
            Frame::Json { value, .. } if value["type"] == "error" => {
                return Err(NotEstablished::Refused(explain::error_message(&value)));
            }
            Frame::Closed(close) => return Err(NotEstablished::Lost(close)),
            Frame::Json { .. } | Frame::Binary(_) | Frame::Ping => {}
        }
    }
}

/// A reply, as sent and parsed.
#[derive(Debug)]
pub struct Reply {
    pub text: String,
    pub value: Value,
}

impl Reply {
    pub fn is_error(&self) -> bool {
        self.value["type"] == "error"
    }
}

/// Sends a request of string `fields` and `payload`, with a fresh `id`, and waits for the reply
/// carrying it; events and other messages in between are skipped. The error is a sentence for
/// the user.
pub async fn request(
    client: &mut Client,
    fields: &[(&str, &str)],
    payload: &Payload,
    timeout: Duration,
) -> Result<Reply, String> {
    let id = client.new_id();
    let mut all_fields = vec![("id", id.as_str())];
    all_fields.extend_from_slice(fields);
    if let Err(error) = client.send_text(&payload.message(&all_fields)).await {
        return Err(format!("the connection failed while sending: {error}"));
    }
    let deadline = tokio::time::Instant::now() + timeout;
    // An `error` without id right before a close (a bad token) is the reason for the close.
    let mut notice = None;
    loop {
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        match client.next_frame(remaining).await {
            Ok(Frame::Json { text, value }) => {
                if value["id"].as_str() == Some(id.as_str()) && !is_event(&value) {
                    return Ok(Reply {
                        text: text.as_str().to_owned(),
                        value,
                    });
                }
                if value["type"] == "error" && value.get("id").is_none() {
                    notice = Some(explain::error_message(&value));
                }
            }
            Ok(Frame::Closed(close)) => {
                let why = explain::close(&close);
                return Err(match notice {
                    Some(reason) => format!("the hub closed the connection: {reason} ({why})"),
                    None => format!("the hub closed the connection before replying ({why})"),
                });
            }
            Ok(Frame::Binary(_) | Frame::Ping) => {}
            Err(ClientError::Timeout(_)) => {
                return Err(format!(
                    "no reply from the hub within {}",
                    humantime::format_duration(timeout)
                ));
            }
            Err(_) => {}
        }
    }
}
