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
use wshub_client::{Client, ClientError, RawFrame};

/// How often a WebSocket publisher sends what is due.
const TICK: Duration = Duration::from_millis(1);
/// At most this many messages go out in one write.
const MAX_BURST: u64 = 4096;
/// At most this many wshub publishes await their reply, per connection; past it the publisher
/// waits (and falls behind the offered rate, which the report shows).
pub const MAX_UNACKED: u64 = 8192;

/// Publishes over WebSocket connection `client` as stream `stream`, following `plans`.
pub async fn publish_ws(
    mut client: Client,
    stream: u32,
    shared: Arc<Shared>,
    mut plans: watch::Receiver<Option<Plan>>,
) {
    let wshub = shared.adapter.kind == TargetKind::Wshub;
    let publishing = &shared.publishing;
    let mut plan: Option<Plan> = None;
    let (mut seq, mut sent_in_plan) = (0u64, 0u64);
    // wshub answers a connection's publishes in order: per publish awaiting its answer,
    // whether it was sent inside the window.
    let mut unanswered: VecDeque<bool> = VecDeque::new();
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut body = String::new();
    loop {
        tokio::select! {
            biased;
            () = shared.stop.cancelled() => break,
            changed = plans.changed() => {
                if changed.is_err() {
                    break;
                }
                plan = *plans.borrow_and_update();
                sent_in_plan = 0;
            }
            _ = ticker.tick(), if plan.is_some() => {
                let Some(current) = plan else { continue };
                let room = if wshub { MAX_UNACKED.saturating_sub(unanswered.len() as u64) } else { MAX_BURST };
                let due = due(&current, sent_in_plan).min(MAX_BURST).min(room);
                let (mut sent, mut in_window, mut ended) = (0, 0, false);
                for _ in 0..due {
                    let now = shared.clock.now_micros();
                    if now >= current.until {
                        ended = true;
                        break;
                    }
                    body.clear();
                    write_body(&mut body, Stamp { seq, stream, sent_micros: now }, shared.payload_bytes);
                    if let Err(error) = client.feed_text(shared.adapter.publish_frame(&body)).await {
                        publishing.fail(stream, format!("a publisher's connection failed: {error}"));
                        return;
                    }
                    seq += 1;
                    sent += 1;
                    in_window += u64::from(now >= current.from);
                    if wshub {
                        unanswered.push_back(now >= current.from);
                    }
                }
                if sent > 0 {
                    if let Err(error) = client.flush().await {
                        publishing.fail(stream, format!("a publisher's connection failed: {error}"));
                        return;
                    }
                    sent_in_plan += sent;
                    publishing.sent.fetch_add(sent, Ordering::Relaxed);
                    publishing.sent_in_window.fetch_add(in_window, Ordering::Relaxed);
                }
                if ended || shared.clock.now_micros() >= current.until {
                    plan = None;
                    publishing.finish(stream, current.step);
                }
            }
            frame = client.next_raw(QUIET) => match frame {
                Ok(RawFrame::Text(text)) => {
                    if let Some(answer) = shared.adapter.answer(&text)
                        && let Err(error) = client.send_text(answer).await
                    {
                        publishing.fail(stream, format!("a publisher's connection failed: {error}"));
                        return;
                    }
                    if !wshub {
                        continue;
                    }
                    match wshub_reply(&text) {
                        Reply::Ack => publishing.answered(unanswered.pop_front().unwrap_or(false), true),
                        Reply::Refused { code, message } => {
                            publishing.answered(unanswered.pop_front().unwrap_or(false), false);
                            if FATAL_CODES.contains(&code.as_str()) {
                                publishing.fail(stream, format!("the hub refused to let the publisher publish: {message}{}", publish_hint(&code)));
                                return;
                            }
                            publishing.refuse(message);
                        }
                        Reply::Other => {}
                    }
                }
                Ok(RawFrame::Binary(_) | RawFrame::Ping) | Err(ClientError::Timeout(_)) => {}
                Ok(RawFrame::Closed(close)) => {
                    let mut reason = format!("the server closed a publisher's connection ({})", explain::close(&close));
                    if let Some(refusal) = publishing.first_refusal() {
                        reason.push_str(&format!(" after refusing publishes ({refusal})"));
                        if refusal.starts_with("rate_limited") {
                            reason.push_str(&format!("; {RATE_LIMIT_HINT}"));
                        }
                    }
                    publishing.fail(stream, reason);
                    return;
                }
                Err(error) => {
                    publishing.fail(stream, format!("a publisher's connection failed: {error}"));
                    return;
                }
            },
        }
    }
    if shared.stop.is_cancelled() {
        let _ = tokio::time::timeout(CLOSE_WAIT, client.close(1000)).await;
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
