//! One connection's life in `wshub connect`: wait for `connection.established`, subscribe (or,
//! after a drop, re-subscribe with `recover`, in `resume`), then read — showing events, handling
//! replies, keeping a reconnection token fresh — until the connection ends or `--count` is reached.

mod resume;

use super::Watch;
use super::positions::Position;
use super::reconnect::Recovery;
use crate::cli::binary::BinaryEvent;
use crate::cli::dial::{self, NotEstablished};
use crate::cli::explain;
use crate::cli::output::render;
use anyhow::{Result, anyhow, bail};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;
use wshub_client::{Client, ClientError, Close, Frame, is_event};

/// How long to wait for `connection.established`: longer than the hub's default `auth_timeout`
/// (10 s), so a hub that wants a token says so itself.
const ESTABLISH_TIMEOUT: Duration = Duration::from_secs(15);
/// Silence allowed when the hub announced no heartbeat.
const DEFAULT_SILENCE_LIMIT: Duration = Duration::from_secs(120);
/// Topics per `subscribe` request (the protocol's limit).
const TOPICS_PER_REQUEST: usize = 100;

/// How this connection came about.
#[derive(Debug, Clone, Copy)]
pub enum Start {
    First,
    Reconnected { used_token: bool },
}

/// How a connection ended, when that is not an error.
#[derive(Debug)]
pub enum End {
    /// `--count` events were shown.
    Goal,
    /// Stdout is gone.
    OutputClosed,
    /// The connection ended; the caller decides whether to come back.
    Lost(Close),
}

/// Runs one connection until it ends. Errors are fatal for the command (bad token, nothing
/// could be subscribed).
pub async fn live(watch: &mut Watch, client: &mut Client, start: Start) -> Result<End> {
    let established = match dial::establish(client, ESTABLISH_TIMEOUT, |frame| watch.show_control_frame(frame)).await {
        Ok(established) => established,
        Err(NotEstablished::Lost(close)) => return Ok(End::Lost(close)),
        Err(failure) => bail!(failure.describe(watch.settings.target.token.is_some())),
    };
    watch.connected = true;
    watch.backoff.reset();
    let mut connection = Connection {
        client,
        pending: HashMap::new(),
        recovery: None,
        refresh_token_at: None,
        retries: Vec::new(),
        silence_limit: silence_limit(&established["payload"]["heartbeat"]),
        watch,
    };
    match start {
        Start::First => {
            connection.announce(&established);
            connection.subscribe(&established).await?;
        }
        Start::Reconnected { used_token } => connection.recover(&established, used_token).await,
    }
    connection.request_token().await;
    connection.read().await
}

/// A request sent on this connection and not answered yet.
#[derive(Debug)]
enum Pending {
    /// The first subscription of the command.
    Subscribe,
    /// A re-subscription after a drop, from where the topic stood.
    Recover { topic: String, from: Option<Position> },
    /// `get_reconnection_token`.
    Token,
}

struct Connection<'a> {
    watch: &'a mut Watch,
    client: &'a mut Client,
    /// Requests in flight, by id.
    pending: HashMap<String, Pending>,
    /// After a reconnect, until every topic has answered its `recover`.
    recovery: Option<Recovery>,
    refresh_token_at: Option<Instant>,
    /// Re-subscriptions the hub rate-limited, to send again at the given time (earliest first).
    retries: Vec<(Instant, String)>,
    /// Nothing from the hub — not even a heartbeat Ping — for this long means the connection is dead.
    silence_limit: Duration,
}

impl Connection<'_> {
    async fn read(&mut self) -> Result<End> {
        loop {
            let refresh_at = self.refresh_token_at;
            let retry_at = self.retries.first().map(|(at, _)| *at);
            tokio::select! {
                frame = self.client.next_frame(self.silence_limit) => {
                    if let Some(end) = self.on_frame(frame).await? {
                        return Ok(end);
                    }
                }
                () = super::sleep_until(refresh_at) => {
                    self.refresh_token_at = None;
                    self.request_token().await;
                }
                () = super::sleep_until(retry_at) => {
                    let (_, topic) = self.retries.remove(0);
                    self.send_recover(topic).await;
                }
            }
        }
    }

    async fn on_frame(&mut self, frame: Result<Frame, ClientError>) -> Result<Option<End>> {
        let frame = match frame {
            Ok(frame) => frame,
            Err(ClientError::Timeout(after)) => {
                return Ok(Some(End::Lost(Close {
                    code: None,
                    reason: format!("nothing from the hub for {}s", after.as_secs()),
                })));
            }
            Err(error) => {
                self.watch
                    .screen
                    .warn(format!("the hub sent a frame that could not be read: {error}"));
                return Ok(None);
            }
        };
        match frame {
            Frame::Json { text, value } => {
                if is_event(&value) {
                    self.watch.log(&text);
                    return Ok(self.on_event(&text, &value));
                }
                let shown = render::without_secrets(&text, &value);
                self.watch.log(&shown);
                if self.watch.settings.verbose {
                    self.watch.show_control(&shown, &value);
                }
                let pending = value["id"].as_str().and_then(|id| self.pending.remove(id));
                match pending {
                    Some(request) => self.on_reply(request, &value).await?,
                    None => self.on_notice(&value),
                }
                Ok(None)
            }
            Frame::Binary(bytes) => Ok(self.on_binary(&bytes)),
            Frame::Ping => {
                if self.watch.settings.verbose {
                    self.watch.screen.detail("heartbeat: Ping from the hub, Pong sent");
                }
                Ok(None)
            }
            Frame::Closed(close) => Ok(Some(End::Lost(close))),
        }
    }

    fn on_event(&mut self, text: &str, event: &Value) -> Option<End> {
        let topic = event["topic"].as_str().unwrap_or_default();
        let kind = event["type"].as_str().unwrap_or_default();
        if let (Some(epoch), Some(offset)) = (event["epoch"].as_str(), event["offset"].as_u64())
            && !self.watch.positions.accept(topic, epoch, offset)
        {
            if self.watch.settings.verbose {
                self.watch
                    .screen
                    .detail(format!("skipped {topic} #{offset}: already shown"));
            }
            return None;
        }
        if !self.watch.settings.filter.shows(topic, kind) {
            return None;
        }
        if self.watch.screen.event(text, event).is_err() {
            return Some(End::OutputClosed);
        }
        self.counted()
    }

    fn on_binary(&mut self, bytes: &[u8]) -> Option<End> {
        let event = match BinaryEvent::decode(bytes) {
            Ok(event) => event,
            Err(problem) => {
                self.watch
                    .screen
                    .warn(format!("the hub sent a malformed binary frame: {problem}"));
                return None;
            }
        };
        let as_json = event.as_json();
        self.watch.log(&as_json.to_string());
        let topic = event.metadata["topic"].as_str().unwrap_or_default();
        if let (Some(epoch), Some(offset)) = (event.metadata["epoch"].as_str(), event.metadata["offset"].as_u64())
            && !self.watch.positions.accept(topic, epoch, offset)
        {
            return None;
        }
        if !self.watch.settings.filter.shows(topic, "binary") {
            return None;
        }
        if self.watch.screen.binary(as_json, &event.summary()).is_err() {
            return Some(End::OutputClosed);
        }
        self.counted()
    }

    /// One more event shown; `Goal` when that makes `--count`.
    fn counted(&mut self) -> Option<End> {
        self.watch.shown += 1;
        match self.watch.settings.count {
            Some(count) if self.watch.shown >= count => Some(End::Goal),
            _ => None,
        }
    }

    /// A message that answers no request of ours: an `error` notice (token expiry), or the
    /// topics an `auth` refresh took away.
    fn on_notice(&mut self, message: &Value) {
        match message["type"].as_str() {
            Some("error") => {
                let code = message["payload"]["code"].as_str().unwrap_or_default();
                let hint = if code == "token_expired" {
                    " (the hub will close the connection; start again with a fresh --token)"
                } else {
                    ""
                };
                self.watch
                    .screen
                    .warn(format!("the hub says {}{hint}", explain::error_message(message)));
            }
            Some("unsubscribed") => {
                let dropped = string_list(&message["payload"]["unsubscribed"]);
                self.watch.topics.retain(|topic| !dropped.contains(topic));
                self.watch.screen.warn(format!(
                    "the hub unsubscribed this connection from: {}",
                    dropped.join(", ")
                ));
            }
            _ => {}
        }
    }

    async fn on_reply(&mut self, request: Pending, reply: &Value) -> Result<()> {
        match request {
            Pending::Subscribe => self.on_subscribed(reply),
            Pending::Recover { topic, from } => {
                self.on_recovered(topic, from, reply);
                Ok(())
            }
            Pending::Token => {
                self.on_token(reply);
                Ok(())
            }
        }
    }

    /// Prints who this connection is: `connected to ws://… as alice (admin), connection 6f1c…`.
    fn announce(&mut self, established: &Value) {
        let payload = &established["payload"];
        let who = match (payload["user"].as_str(), payload["role"].as_str()) {
            (Some(user), Some(role)) => format!("{user} ({role})"),
            (Some(user), None) => user.to_owned(),
            (None, Some(role)) => role.to_owned(),
            (None, None) => "a user without a role".to_owned(),
        };
        self.watch.screen.note(format!(
            "connected to {} as {who}, connection {}",
            self.watch.settings.target.endpoint.display(),
            payload["connection_id"].as_str().unwrap_or("?")
        ));
    }

    /// The first subscription: the `--subscribe` topics, or with `--all` every topic the role may
    /// subscribe to.
    async fn subscribe(&mut self, established: &Value) -> Result<()> {
        let mut topics = match &self.watch.settings.subscribe {
            Some(topics) => topics.clone(),
            None => self.all_permitted(&established["payload"])?,
        };
        let mut seen = std::collections::HashSet::new();
        topics.retain(|topic| seen.insert(topic.clone()));
        // Wanted from now on: if the connection drops before the reply, the next one subscribes them.
        self.watch.topics.clone_from(&topics);
        if topics.is_empty() {
            self.watch
                .screen
                .warn("not subscribed to any topic; name some with --subscribe a,b or use --all");
            return Ok(());
        }
        for chunk in topics.chunks(TOPICS_PER_REQUEST) {
            self.send(json!({"type": "subscribe", "topics": chunk}), Pending::Subscribe)
                .await;
        }
        Ok(())
    }

    /// The topics named in the hub's rules that this role may subscribe to; says which it may not.
    fn all_permitted(&mut self, established: &Value) -> Result<Vec<String>> {
        let mut permitted = Vec::new();
        let mut refused = Vec::new();
        for rule in established["permissions"].as_array().into_iter().flatten() {
            let Some(name) = rule["match"].as_str() else { continue };
            // Patterns (`*`, `room/*`) match topics; they are not topics one can subscribe to.
            if name.contains(['*', '?', '[', '{']) || permitted.contains(&name) || refused.contains(&name) {
                continue;
            }
            if rule["subscribe"] == true {
                permitted.push(name);
            } else {
                refused.push(name);
            }
        }
        let role = established["role"].as_str().unwrap_or("no role");
        if !refused.is_empty() {
            self.watch
                .screen
                .note(format!("denied for role {role}: {}", refused.join(", ")));
        }
        if permitted.is_empty() {
            bail!("role {role} may not subscribe to any topic the hub's rules name; name topics with --subscribe");
        }
        Ok(permitted.into_iter().map(str::to_owned).collect())
    }

    fn on_subscribed(&mut self, reply: &Value) -> Result<()> {
        if reply["type"] == "error" {
            return Err(anyhow!("cannot subscribe: {}", explain::error_message(reply)));
        }
        let payload = &reply["payload"];
        let mut subscribed = Vec::new();
        for entry in payload["subscribed"].as_array().into_iter().flatten() {
            let Some(topic) = entry["topic"].as_str() else { continue };
            if let (Some(epoch), Some(offset)) = (entry["epoch"].as_str(), entry["offset"].as_u64()) {
                self.watch.positions.subscribed(topic, epoch, offset);
            }
            if !self.watch.topics.iter().any(|held| held == topic) {
                self.watch.topics.push(topic.to_owned());
            }
            subscribed.push(topic);
        }
        if !subscribed.is_empty() {
            self.watch
                .screen
                .note(format!("subscribed to {}", subscribed.join(", ")));
        }
        let mut denied = Vec::new();
        for entry in payload["denied"].as_array().into_iter().flatten() {
            let topic = entry["topic"].as_str().unwrap_or("?");
            self.watch.topics.retain(|wanted| wanted != topic);
            denied.push(format!("{topic} ({})", entry["code"].as_str().unwrap_or("denied")));
        }
        if !denied.is_empty() {
            self.watch.screen.warn(format!("denied: {}", denied.join(", ")));
        }
        Ok(())
    }

    /// Sends a request and remembers what it was. A failed send means the connection is gone,
    /// which the next read reports.
    async fn send(&mut self, mut message: Value, request: Pending) {
        let id = self.client.new_id();
        message["id"] = Value::from(id.clone());
        if self.watch.settings.verbose {
            self.watch.screen.sent(&message);
        }
        if let Err(error) = self.client.send_json(&message).await {
            tracing::debug!(%error, "send failed; the read side will see the close");
            return;
        }
        self.pending.insert(id, request);
    }
}

/// Silence longer than one heartbeat period plus the hub's own patience means the connection is
/// dead even if no close ever arrives (a half-open TCP connection).
fn silence_limit(heartbeat: &Value) -> Duration {
    match (heartbeat["ping_period"].as_f64(), heartbeat["pong_wait"].as_f64()) {
        (Some(ping), Some(pong)) if ping > 0.0 && pong > 0.0 => Duration::from_secs_f64((ping + pong).min(3600.0)),
        _ => DEFAULT_SILENCE_LIMIT,
    }
}

fn string_list(value: &Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| item.as_str().map(str::to_owned))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_limit_follows_the_announced_heartbeat() {
        assert_eq!(
            silence_limit(&json!({"ping_period": 54, "pong_wait": 60})),
            Duration::from_secs(114)
        );
        assert_eq!(silence_limit(&Value::Null), DEFAULT_SILENCE_LIMIT);
    }
}
