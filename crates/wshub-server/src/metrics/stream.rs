//! The live metrics stream on `metrics.stream_path` (CONTRACT §8).
//!
//! Not on the message path: each stream connection is its own small loop that sends
//! the sampler's latest `Snapshot` at once and then every `interval_seconds`, a
//! `Heartbeat` every `metrics.heartbeat_interval`, and answers subscription messages
//! (`{"metrics":[…],"interval_seconds":n,"include_history":bool}`) with `TimeSeries`
//! or an `Error`. It writes only what it produces itself, one message at a time, so it
//! needs no queue: a write that takes longer than `write_timeout` closes it (4008).

use super::sampler::{METRIC_NAMES, Selection, iso8601};
use crate::node::ConnectionSlot;
use crate::node::Node;
use crate::transport::{self, Inbound, OutFrame, SharedText, SocketConfig, UpgradedSocket, WsWriter};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{Instant, MissedTickBehavior, interval_at, sleep_until, timeout};
use wshub_protocol::CloseCode;

/// Longest subscription message read, in bytes: a list of every metric name fits easily.
const MAX_SUBSCRIPTION_BYTES: usize = 16 * 1024;
/// Interval between snapshots before the client chooses one.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);

/// A client's subscription message.
#[derive(Debug, Deserialize)]
struct Subscription {
    metrics: Vec<String>,
    #[serde(default)]
    interval_seconds: Option<f64>,
    #[serde(default)]
    include_history: bool,
}

/// What a subscription message asks for, once checked.
#[derive(Debug, PartialEq)]
pub(crate) struct Request {
    pub selection: Option<Selection>,
    pub unknown: Vec<String>,
    pub interval: Duration,
    pub include_history: bool,
}

/// Checks a subscription message; the error is the `Error` message's text.
pub(crate) fn parse_subscription(text: &str, current_interval: Duration) -> Result<Request, String> {
    let subscription: Subscription = serde_json::from_str(text).map_err(|e| {
        let detail = e.to_string();
        // serde_json appends " at line 1 column N"; the field name is what matters.
        let detail = detail.split(" at line ").next().unwrap_or(&detail).to_owned();
        format!("Invalid subscription: {detail}")
    })?;
    let interval = match subscription.interval_seconds {
        None => current_interval,
        Some(s) if (1.0..=60.0).contains(&s) => Duration::from_secs_f64(s),
        Some(s) => {
            return Err(format!(
                "Invalid subscription: interval_seconds must be between 1 and 60, got {s}"
            ));
        }
    };
    let (selection, unknown) = Selection::parse(&subscription.metrics);
    let nothing_known = selection.metrics.is_empty() && !selection.top_topics;
    Ok(Request {
        selection: (!nothing_known).then_some(selection),
        unknown,
        interval,
        include_history: subscription.include_history,
    })
}

/// Serves one upgraded stream connection until it closes; `slot` is held until then.
pub async fn serve(node: Arc<Node>, socket: UpgradedSocket, slot: ConnectionSlot) {
    let config = SocketConfig {
        max_message_size: MAX_SUBSCRIPTION_BYTES,
    };
    let (mut reader, mut writer) = transport::from_upgraded(socket, config);
    let ws = &node.config.websocket;
    let write_timeout = ws.write_timeout;
    let mut selection = Selection::all();
    let mut every = DEFAULT_INTERVAL;
    let mut snapshots = interval_at(Instant::now() + every, every);
    snapshots.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let heartbeat_every = node.config.metrics.heartbeat_interval;
    let mut heartbeats = interval_at(Instant::now() + heartbeat_every, heartbeat_every);
    heartbeats.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut pings = interval_at(Instant::now() + ws.ping_period, ws.ping_period);
    pings.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let silence = sleep_until(Instant::now() + ws.pong_wait);
    tokio::pin!(silence);

    let first = node.sampler.latest().to_json(Some(&selection));
    let mut close = send(&mut writer, &first, write_timeout).await.err();
    while close.is_none() {
        let outcome = tokio::select! {
            biased;
            () = node.shutdown.draining() => Err(CloseCode::GoingAway),
            () = &mut silence => Err(CloseCode::Heartbeat),
            _ = snapshots.tick() => {
                send(&mut writer, &node.sampler.latest().to_json(Some(&selection)), write_timeout).await
            }
            _ = heartbeats.tick() => {
                let beat = json!({"type": "Heartbeat", "timestamp": iso8601(jiff::Timestamp::now())});
                send(&mut writer, &beat, write_timeout).await
            }
            _ = pings.tick() => write(&mut writer, OutFrame::Ping, write_timeout).await,
            // A Pong owed to the client's Ping.
            () = writer.control_wanted() => flush(&mut writer, write_timeout).await,
            inbound = reader.next() => {
                silence.as_mut().reset(Instant::now() + ws.pong_wait);
                match inbound {
                    Some(Ok(Inbound::Text(bytes))) => {
                        let text = String::from_utf8_lossy(&bytes);
                        match parse_subscription(&text, every) {
                            Ok(request) => {
                                let changed_interval = request.interval != every;
                                every = request.interval;
                                if let Some(chosen) = request.selection {
                                    selection = chosen;
                                }
                                if changed_interval {
                                    snapshots = interval_at(Instant::now() + every, every);
                                    snapshots.set_missed_tick_behavior(MissedTickBehavior::Delay);
                                }
                                answer(&node, &mut writer, &request.unknown, request.include_history, &selection, write_timeout).await
                            }
                            Err(message) => send(&mut writer, &json!({"type": "Error", "message": message}), write_timeout).await,
                        }
                    }
                    Some(Ok(Inbound::Binary(_))) => {
                        let message = "Invalid subscription: send a JSON text message";
                        send(&mut writer, &json!({"type": "Error", "message": message}), write_timeout).await
                    }
                    Some(Ok(Inbound::Heartbeat)) => Ok(()),
                    Some(Ok(Inbound::Close(_))) => Err(CloseCode::Normal),
                    Some(Err(error)) => Err(error.close_code()),
                    None => Err(CloseCode::Abnormal),
                }
            }
        };
        if let Err(code) = outcome {
            close = Some(code);
        }
    }
    if let Some(code) = close.filter(|c| *c != CloseCode::Abnormal) {
        let _ = timeout(Duration::from_secs(1), writer.close(code.code(), "")).await;
    }
    drop(slot);
}

/// After a valid subscription: an `Error` naming unknown metrics, the `TimeSeries` asked
/// for, then a `Snapshot` with the new selection at once.
async fn answer(
    node: &Node,
    writer: &mut WsWriter,
    unknown: &[String],
    include_history: bool,
    selection: &Selection,
    write_timeout: Duration,
) -> Result<(), CloseCode> {
    if !unknown.is_empty() {
        let known = if selection.metrics.is_empty() && !selection.top_topics {
            String::new()
        } else {
            "; the known ones apply".to_owned()
        };
        let message = format!("Unknown metrics: {}{known}", unknown.join(", "));
        send(writer, &json!({"type": "Error", "message": message}), write_timeout).await?;
    }
    if include_history {
        for &metric in &selection.metrics {
            let data_points: Vec<Value> = node
                .sampler
                .series(metric)
                .into_iter()
                .map(|(t, v)| json!({"timestamp": iso8601(t), "value": v}))
                .collect();
            let series = json!({
                "type": "TimeSeries",
                "metric_name": METRIC_NAMES[metric],
                "data_points": data_points,
            });
            send(writer, &series, write_timeout).await?;
        }
    }
    send(writer, &node.sampler.latest().to_json(Some(selection)), write_timeout).await
}

async fn send(writer: &mut WsWriter, message: &Value, write_timeout: Duration) -> Result<(), CloseCode> {
    let bytes = serde_json::to_vec(message).map_err(|_| CloseCode::Internal)?;
    let text = SharedText::from_vec(bytes).ok_or(CloseCode::Internal)?;
    write(writer, OutFrame::Text(text), write_timeout).await
}

async fn write(writer: &mut WsWriter, frame: OutFrame, write_timeout: Duration) -> Result<(), CloseCode> {
    let written = timeout(write_timeout, async {
        writer.feed(frame).await?;
        writer.flush().await
    })
    .await;
    outcome(written)
}

async fn flush(writer: &mut WsWriter, write_timeout: Duration) -> Result<(), CloseCode> {
    outcome(timeout(write_timeout, writer.flush()).await)
}

fn outcome(
    written: Result<Result<(), crate::transport::WriteError>, tokio::time::error::Elapsed>,
) -> Result<(), CloseCode> {
    match written {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(CloseCode::Abnormal),
        Err(_elapsed) => Err(CloseCode::SlowConsumer),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: Duration = Duration::from_secs(1);

    #[test]
    fn a_valid_subscription_sets_metrics_interval_and_history() {
        let r = parse_subscription(
            r#"{"metrics":["requests_total","active_connections"],"interval_seconds":2,"include_history":true}"#,
            ONE,
        )
        .expect("valid");
        assert_eq!(r.interval, Duration::from_secs(2));
        assert!(r.include_history);
        assert_eq!(r.selection.map(|s| s.metrics.len()), Some(2));
        assert!(r.unknown.is_empty());
    }

    #[test]
    fn invalid_subscriptions_name_the_problem() {
        let missing = parse_subscription(r#"{"interval_seconds":2}"#, ONE).expect_err("invalid");
        assert_eq!(missing, "Invalid subscription: missing field `metrics`");
        let not_json = parse_subscription("hello", ONE).expect_err("invalid");
        assert!(not_json.starts_with("Invalid subscription: "), "{not_json}");
        let range = parse_subscription(r#"{"metrics":[],"interval_seconds":61}"#, ONE).expect_err("invalid");
        assert!(range.contains("between 1 and 60"), "{range}");
        let zero = parse_subscription(r#"{"metrics":[],"interval_seconds":0}"#, ONE).expect_err("invalid");
        assert!(zero.contains("between 1 and 60"), "{zero}");
    }

    #[test]
    fn unknown_metrics_are_reported_and_the_known_ones_apply() {
        let r = parse_subscription(r#"{"metrics":["nope","success_rate"]}"#, ONE).expect("valid");
        assert_eq!(r.unknown, vec!["nope".to_owned()]);
        assert_eq!(r.selection.map(|s| s.metrics.len()), Some(1));
        assert_eq!(r.interval, ONE, "the interval is kept when not given");
        let none_known = parse_subscription(r#"{"metrics":["nope"]}"#, ONE).expect("valid");
        assert_eq!(
            none_known.selection, None,
            "nothing known: the selection stays as it was"
        );
    }
}
