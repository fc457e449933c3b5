//! The hub's own publishers: `system_metrics` on the `system` topic and
//! `performance_alert` on the `alerts` topic (CONTRACT §14).
//!
//! One background task does every periodic job of the metrics side: once a second it
//! takes a snapshot (the sampler), looks for what deserves an alert, and every
//! `system.interval` publishes the hub's numbers. Its events go through the broker like
//! any server publish, so they get offsets, history and every node's subscribers.

use super::Totals;
use super::sampler::Snapshot;
use crate::node::Node;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{Instant, MissedTickBehavior, interval};
use tokio_util::sync::CancellationToken;
use wshub_broker::BrokerHealth;
use wshub_protocol::{EventName, Topic};

/// The built-in topic of hub metrics.
pub const SYSTEM_TOPIC: &str = "system";
/// The built-in topic of alerts.
pub const ALERTS_TOPIC: &str = "alerts";
/// Rate-limit refusals per second from which an alert is raised.
pub const RATE_LIMIT_STORM_PER_SECOND: u64 = 100;
/// The shortest spacing of two alerts of the same kind; what happens between is summed.
pub const ALERT_SPACING: Duration = Duration::from_secs(10);

/// Runs the sampler, the alert checks and the `system` publisher until `stop`.
pub async fn run(node: Arc<Node>, stop: CancellationToken) {
    let mut tick = interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let system_every = node.config.system.interval;
    let mut next_system = Instant::now() + system_every;
    let mut alerts = Alerts::new(&node);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let snapshot = node.sampler.take(&node);
        let now = Instant::now();
        for alert in alerts.check(&node, now) {
            publish(&node, ALERTS_TOPIC, "performance_alert", &alert).await;
        }
        if now >= next_system {
            next_system = now + system_every;
            publish(&node, SYSTEM_TOPIC, "system_metrics", &system_payload(&node, &snapshot)).await;
        }
    }
}

/// The `system_metrics` payload: the snapshot's numbers plus where the node runs.
fn system_payload(node: &Node, snapshot: &Snapshot) -> Value {
    let mut payload = snapshot.to_json(None);
    if let Some(object) = payload.as_object_mut() {
        object.remove("type");
        object.insert("node".into(), node.name.clone().into());
        object.insert("broker".into(), node.broker.kind().into());
    }
    payload
}

async fn publish(node: &Node, topic: &str, event: &'static str, payload: &Value) {
    // Only where a topic rule covers the built-in topic: a config without one opts out.
    if node.rules.rule_for(topic).is_none() {
        return;
    }
    let Ok(parsed) = Topic::parse(topic) else { return };
    let Ok(raw) = serde_json::value::to_raw_value(payload) else {
        return;
    };
    if let Err(error) = node
        .publish_as_server(parsed, EventName::internal(event), Arc::from(raw))
        .await
    {
        tracing::debug!(%error, topic, event, "could not publish a built-in event");
    }
}

/// What the alert checks remember between ticks.
struct Alerts {
    previous: Totals,
    broker: BrokerHealth,
    /// Slow-consumer closes not yet reported, and when the last report went out.
    slow_pending: u64,
    slow_last: Option<Instant>,
    storm_last: Option<Instant>,
}

impl Alerts {
    fn new(node: &Node) -> Alerts {
        Alerts {
            previous: node.metrics.totals(),
            broker: node.broker.health(),
            slow_pending: 0,
            slow_last: None,
            storm_last: None,
        }
    }

    /// The alerts due now.
    fn check(&mut self, node: &Node, now: Instant) -> Vec<Value> {
        let totals = node.metrics.totals();
        let mut due = Vec::new();
        self.slow_pending += totals.slow_consumers.saturating_sub(self.previous.slow_consumers);
        if self.slow_pending > 0 && spaced(self.slow_last, now) {
            due.push(json!({
                "kind": "slow_consumer",
                "severity": "warning",
                "message": format!("{} connection(s) closed as slow consumers (4008)", self.slow_pending),
                "closed": self.slow_pending,
            }));
            self.slow_pending = 0;
            self.slow_last = Some(now);
        }
        let hits = totals.rate_limit_hits.saturating_sub(self.previous.rate_limit_hits);
        if hits >= RATE_LIMIT_STORM_PER_SECOND && spaced(self.storm_last, now) {
            due.push(json!({
                "kind": "rate_limit_storm",
                "severity": "warning",
                "message": format!("{hits} requests refused with rate_limited in the last second"),
                "hits_per_second": hits,
            }));
            self.storm_last = Some(now);
        }
        let broker = node.broker.health();
        if broker != self.broker {
            let (kind, severity) = match broker {
                BrokerHealth::Down => ("broker_down", "critical"),
                BrokerHealth::Ok => ("broker_up", "info"),
            };
            due.push(json!({
                "kind": kind,
                "severity": severity,
                "message": format!("broker ({}) is {}", node.broker.kind(), if broker == BrokerHealth::Ok { "reachable again" } else { "unreachable" }),
            }));
            self.broker = broker;
        }
        self.previous = totals;
        due
    }
}

fn spaced(last: Option<Instant>, now: Instant) -> bool {
    last.is_none_or(|at| now.duration_since(at) >= ALERT_SPACING)
}
