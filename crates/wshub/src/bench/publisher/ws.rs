//! Publishing over WebSocket: each tick, the messages due go out in one write; replies are read
//! in between. On wshub, `published` replies are acknowledgements and at most [`MAX_UNACKED`]
//! publishes await one; other servers' echoes are read and dropped.

use super::{FATAL_CODES, Plan, QUIET, RATE_LIMIT_HINT, Shared, due};
use crate::args::TargetKind;
use crate::bench::adapter::{Reply, wshub_reply};
use crate::bench::message::{Stamp, write_body};
use crate::bench::receiver::CLOSE_WAIT;
use crate::cli::explain;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;
use wshub_client::{Client, ClientError, Close, RawFrame};

/// How often a WebSocket publisher sends what is due.
const TICK: Duration = Duration::from_millis(1);
/// At most this many messages go out in one write.
const MAX_BURST: u64 = 4096;
/// At most this many wshub publishes await their reply, per connection; past it the publisher
/// waits (and falls behind the offered rate, which the report shows). Each one makes one reply:
/// kept well under the hub's outbound queue (1,024 messages by default), replies that the
/// generator is slow to read can never overflow it and get the publisher closed (4008).
pub const MAX_UNACKED: u64 = 512;
/// Frames read in a row, when they are already there, before sending again.
const MAX_READS: usize = 1024;

/// Publishes over WebSocket connection `client` as stream `stream`, following `plans`.
pub async fn publish_ws(client: Client, stream: u32, shared: Arc<Shared>, mut plans: watch::Receiver<Option<Plan>>) {
    let mut publisher = Publisher {
        wshub: shared.adapter.kind == TargetKind::Wshub,
        client,
        stream,
        shared: Arc::clone(&shared),
        unanswered: VecDeque::new(),
        seq: 0,
        sent_in_plan: 0,
        body: String::new(),
    };
    let mut plan: Option<Plan> = None;
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let outcome = loop {
        tokio::select! {
            biased;
            () = shared.stop.cancelled() => break Ok(()),
            changed = plans.changed() => {
                if changed.is_err() {
                    break Ok(());
                }
                plan = *plans.borrow_and_update();
                publisher.sent_in_plan = 0;
            }
            _ = ticker.tick(), if plan.is_some() => {
                let Some(current) = plan else { continue };
                match publisher.send_due(&current).await {
                    Ok(true) => {
                        plan = None;
                        shared.publishing.finish(stream, current.step);
                    }
                    Ok(false) => {}
                    Err(reason) => break Err(reason),
                }
            }
            frame = publisher.client.next_raw(QUIET) => {
                if let Err(reason) = publisher.read(frame).await {
                    break Err(reason);
                }
            }
        }
    };
    match outcome {
        Err(reason) => shared.publishing.fail(stream, reason),
        Ok(()) if shared.stop.is_cancelled() => {
            let _ = tokio::time::timeout(CLOSE_WAIT, publisher.client.close(1000)).await;
        }
        Ok(()) => {}
    }
}

/// One publishing connection's state.
struct Publisher {
    client: Client,
    stream: u32,
    shared: Arc<Shared>,
    wshub: bool,
    /// wshub answers a connection's publishes in order: per publish awaiting its answer,
    /// whether it was sent inside the window.
    unanswered: VecDeque<bool>,
    seq: u64,
    sent_in_plan: u64,
    /// Reused for every message body.
    body: String,
}

impl Publisher {
    /// Sends what `plan` has made due, in one write; `true` once the plan has ended.
    async fn send_due(&mut self, plan: &Plan) -> Result<bool, String> {
        let shared = Arc::clone(&self.shared);
        let room = if self.wshub {
            MAX_UNACKED.saturating_sub(self.unanswered.len() as u64)
        } else {
            MAX_BURST
        };
        let due = due(plan, self.stream, self.sent_in_plan).min(MAX_BURST).min(room);
        let (mut sent, mut in_window) = (0, 0);
        for _ in 0..due {
            let now = shared.clock.now_micros();
            if now >= plan.until {
                break;
            }
            self.body.clear();
            let stamp = Stamp {
                seq: self.seq,
                stream: self.stream,
                sent_micros: now,
            };
            write_body(&mut self.body, stamp, shared.payload_bytes);
            self.client
                .feed_text(shared.adapter.publish_frame(&self.body))
                .await
                .map_err(|error| format!("a publisher's connection failed: {error}"))?;
            self.seq += 1;
            sent += 1;
            in_window += u64::from(now >= plan.from);
            if self.wshub {
                self.unanswered.push_back(now >= plan.from);
            }
        }
        if sent > 0 {
            self.client
                .flush()
                .await
                .map_err(|error| format!("a publisher's connection failed: {error}"))?;
            self.sent_in_plan += sent;
            shared.publishing.sent.fetch_add(sent, Ordering::Relaxed);
            shared.publishing.sent_in_window.fetch_add(in_window, Ordering::Relaxed);
        }
        Ok(shared.clock.now_micros() >= plan.until)
    }

    /// Handles `frame` and every frame already waiting after it (up to [`MAX_READS`]).
    async fn read(&mut self, mut frame: Result<RawFrame, ClientError>) -> Result<(), String> {
        for _ in 0..MAX_READS {
            match frame {
                Ok(RawFrame::Text(text)) => self.on_text(&text).await?,
                Ok(RawFrame::Binary(_) | RawFrame::Ping) => {}
                Err(ClientError::Timeout(_)) => return Ok(()),
                Ok(RawFrame::Closed(close)) => return Err(self.closed(&close)),
                Err(error) => return Err(format!("a publisher's connection failed: {error}")),
            }
            frame = self.client.next_raw(Duration::ZERO).await;
        }
        Ok(())
    }

    async fn on_text(&mut self, text: &str) -> Result<(), String> {
        if let Some(answer) = self.shared.adapter.answer(text) {
            self.client
                .send_text(answer)
                .await
                .map_err(|error| format!("a publisher's connection failed: {error}"))?;
        }
        if !self.wshub {
            return Ok(());
        }
        let publishing = &self.shared.publishing;
        match wshub_reply(text) {
            Reply::Ack => publishing.answered(self.unanswered.pop_front().unwrap_or(false), true),
            Reply::Refused { code, message } => {
                publishing.answered(self.unanswered.pop_front().unwrap_or(false), false);
                if FATAL_CODES.contains(&code.as_str()) {
                    return Err(format!(
                        "the hub refused to let the publisher publish: {message}{}",
                        publish_hint(&code)
                    ));
                }
                publishing.refuse(message);
            }
            Reply::Other => {}
        }
        Ok(())
    }

    /// Why the run cannot go on after the server closed this connection.
    fn closed(&self, close: &Close) -> String {
        let mut reason = format!("the server closed a publisher's connection ({})", explain::close(close));
        if let Some(refusal) = self.shared.publishing.first_refusal() {
            reason.push_str(&format!(" after refusing publishes ({refusal})"));
            if refusal.starts_with("rate_limited") {
                reason.push_str(&format!("; {RATE_LIMIT_HINT}"));
            }
        }
        reason
    }
}

/// What to change when the hub refuses publishes for good.
fn publish_hint(code: &str) -> &'static str {
    match code {
        "forbidden" => {
            " (pass --token with a role that may publish to the topic, e.g. from `wshub token --role admin \
             --sub bench`, or use --publish-via http)"
        }
        _ => " (check --token)",
    }
}
