//! The resuming side of a connection: after a drop, every wanted topic is subscribed again with
//! `recover` and the outcome is reported in one line; meanwhile a reconnection token is kept
//! fresh, to present at the next reconnect.

use super::{Connection, Pending};
use crate::cli::connect::positions::Position;
use crate::cli::connect::reconnect::{ReconnectionToken, Recovery, TokenStory};
use crate::cli::explain;
use serde_json::{Value, json};
use std::time::Duration;
use tokio::time::Instant;

impl Connection<'_> {
    /// After a reconnect: every wanted topic is subscribed again with `recover` from where it
    /// stood, so the hub replays what was missed (events it replays twice are dropped by offset).
    pub(super) async fn recover(&mut self, established: &Value, used_token: bool) {
        let payload = &established["payload"];
        let resumed = payload["resumed"] == true;
        let token = if used_token {
            TokenStory::Presented
        } else if self.watch.tokens_unsupported {
            TokenStory::Unsupported
        } else {
            TokenStory::Missing
        };
        if self.watch.settings.verbose {
            let how = if resumed { "resumed" } else { "fresh" };
            self.watch.screen.detail(format!("session {how}"));
        }
        let topics = self.watch.topics.clone();
        self.recovery = Some(Recovery::new(
            resumed,
            payload["resume_error"].as_str().map(str::to_owned),
            token,
            topics.iter().cloned(),
        ));
        for topic in topics {
            self.send_recover(topic).await;
        }
        self.report_recovery();
    }

    pub(super) async fn send_recover(&mut self, topic: String) {
        let from = self.watch.positions.get(&topic);
        let mut message = json!({"type": "subscribe", "topic": topic});
        if let Some(position) = &from {
            message["payload"] = json!({"recover": {"epoch": position.epoch, "offset": position.offset}});
        }
        self.send(message, Pending::Recover { topic, from }).await;
    }

    pub(super) fn on_recovered(&mut self, topic: String, from: Option<Position>, reply: &Value) {
        let Some(recovery) = self.recovery.as_mut() else { return };
        if reply["type"] == "error" {
            let code = reply["payload"]["code"].as_str().unwrap_or("error");
            if code == "rate_limited" {
                let wait = reply["payload"]["retry_after"]
                    .as_f64()
                    .unwrap_or(1.0)
                    .clamp(0.01, 60.0);
                self.retries
                    .push((Instant::now() + Duration::from_secs_f64(wait), topic));
                self.retries.sort_by_key(|(at, _)| *at);
                return;
            }
            recovery.lost(&topic, code);
            self.watch.topics.retain(|held| *held != topic);
        } else {
            let payload = &reply["payload"];
            let entry = payload["subscribed"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|entry| entry["topic"] == topic.as_str());
            match entry {
                Some(entry) if entry["recovered"] == true => {
                    let latest = entry["offset"].as_u64().unwrap_or_default();
                    let missed = from.map_or(0, |from| latest.saturating_sub(from.offset));
                    recovery.recovered(&topic, missed);
                }
                Some(entry) => {
                    if let (Some(epoch), Some(offset)) = (entry["epoch"].as_str(), entry["offset"].as_u64()) {
                        self.watch.positions.subscribed(&topic, epoch, offset);
                    }
                    recovery.not_recovered(&topic);
                }
                None => {
                    let code = payload["denied"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .find(|entry| entry["topic"] == topic.as_str())
                        .and_then(|entry| entry["code"].as_str())
                        .unwrap_or("denied");
                    recovery.lost(&topic, code);
                    self.watch.topics.retain(|held| *held != topic);
                }
            }
        }
        self.report_recovery();
    }

    /// Prints what the reconnection achieved once every topic has answered.
    pub(super) fn report_recovery(&mut self) {
        if self.recovery.as_ref().is_some_and(Recovery::is_complete)
            && let Some(recovery) = self.recovery.take()
        {
            self.watch.screen.note(recovery.describe());
        }
    }

    /// Asks for a reconnection token, to present if this connection drops.
    pub(super) async fn request_token(&mut self) {
        self.send(json!({"type": "get_reconnection_token"}), Pending::Token)
            .await;
    }

    pub(super) fn on_token(&mut self, reply: &Value) {
        let payload = &reply["payload"];
        if let (Some(token), Some(valid_for)) = (payload["token"].as_str(), payload["expires_in"].as_f64()) {
            let valid_for = Duration::from_secs_f64(valid_for.clamp(0.0, 86_400.0));
            self.watch.token = Some(ReconnectionToken::new(token.to_owned(), valid_for));
            self.watch.tokens_unsupported = false;
            // Refreshed at half its life, so a fresh one is always at hand when the connection drops.
            self.refresh_token_at = Some(Instant::now() + (valid_for / 2).max(Duration::from_secs(1)));
            if self.watch.settings.verbose {
                self.watch
                    .screen
                    .detail(format!("reconnection token received, valid {}s", valid_for.as_secs()));
            }
            return;
        }
        if payload["code"] == "unavailable" {
            self.watch.tokens_unsupported = true;
        }
        if self.watch.settings.verbose {
            self.watch.screen.detail(format!(
                "no reconnection token ({}); after a drop, topics are re-subscribed with recover",
                explain::error_message(reply)
            ));
        }
    }
}
