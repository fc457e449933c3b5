//! The `Snapshot` of CONTRACT §8 and the hub's own metric history.
//!
//! A sampler task reads the counters once a second: it turns their change over that
//! second into rates and window percentiles, keeps the result as the latest snapshot
//! (what `/ws/metrics` streams send), and every `metrics.history_resolution` appends
//! the numbers to a bounded in-memory history (what `include_history` returns).

use super::Totals;
use super::histogram::HistogramReading;
use crate::node::Node;
use parking_lot::Mutex;
use serde_json::{Map, Value, json};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The numeric metrics of a `Snapshot`, in this order (the names a subscription may pick).
pub const METRIC_NAMES: [&str; 23] = [
    "requests_total",
    "requests_success",
    "requests_error",
    "success_rate",
    "avg_response_time",
    "active_connections",
    "connections_opened_total",
    "subscriptions",
    "topics",
    "messages_received_total",
    "messages_sent_total",
    "messages_in_per_second",
    "messages_out_per_second",
    "delivery_latency_p50_ms",
    "delivery_latency_p99_ms",
    "errors_total",
    "errors_per_second",
    "rate_limit_hits_total",
    "rate_limit_hits_per_second",
    "slow_consumer_closes_total",
    "buffered_events",
    "memory_rss_bytes",
    "uptime_seconds",
];

/// The non-numeric part a subscription may pick: the busiest topics.
pub const TOP_TOPICS: &str = "top_topics";

/// How many topics `top_topics` lists.
const TOP_TOPICS_LEN: usize = 10;

/// Most history points kept, whatever the configured retention and resolution say.
const MAX_HISTORY_POINTS: usize = 100_000;

/// Values in [`METRIC_NAMES`] order.
pub type Values = [f64; METRIC_NAMES.len()];

/// One reading of the hub.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// When it was taken.
    pub timestamp: jiff::Timestamp,
    /// The numeric metrics, in [`METRIC_NAMES`] order.
    pub values: Values,
    /// The busiest topics: `(topic, subscribers)`.
    pub top_topics: Vec<(String, usize)>,
}

impl Snapshot {
    /// The value of one metric.
    pub fn get(&self, name: &str) -> Option<f64> {
        METRIC_NAMES.iter().position(|n| *n == name).map(|i| self.values[i])
    }

    /// The `Snapshot` message with the chosen metrics (indexes into [`METRIC_NAMES`]);
    /// `None` chooses all of them and `top_topics`.
    pub fn to_json(&self, chosen: Option<&Selection>) -> Value {
        let mut object = Map::new();
        object.insert("type".into(), "Snapshot".into());
        object.insert("timestamp".into(), iso8601(self.timestamp).into());
        for (i, name) in METRIC_NAMES.iter().enumerate() {
            if chosen.is_none_or(|c| c.metrics.contains(&i)) {
                object.insert((*name).into(), number(self.values[i]));
            }
        }
        if chosen.is_none_or(|c| c.top_topics) {
            let topics = self
                .top_topics
                .iter()
                .map(|(topic, subscribers)| json!({"topic": topic, "subscribers": subscribers}))
                .collect();
            object.insert(TOP_TOPICS.into(), Value::Array(topics));
        }
        Value::Object(object)
    }
}

/// The metrics a stream subscription chose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// Indexes into [`METRIC_NAMES`].
    pub metrics: Vec<usize>,
    /// Whether `top_topics` is included.
    pub top_topics: bool,
}

impl Selection {
    /// Every metric.
    pub fn all() -> Selection {
        Selection {
            metrics: (0..METRIC_NAMES.len()).collect(),
            top_topics: true,
        }
    }

    /// The known names of `names` (empty = all) and the unknown ones.
    pub fn parse(names: &[String]) -> (Selection, Vec<String>) {
        if names.is_empty() {
            return (Selection::all(), Vec::new());
        }
        let mut selection = Selection {
            metrics: Vec::new(),
            top_topics: false,
        };
        let mut unknown = Vec::new();
        for name in names {
            if name == TOP_TOPICS {
                selection.top_topics = true;
            } else if let Some(i) = METRIC_NAMES.iter().position(|n| n == name) {
                if !selection.metrics.contains(&i) {
                    selection.metrics.push(i);
                }
            } else {
                unknown.push(name.clone());
            }
        }
        selection.metrics.sort_unstable();
        (selection, unknown)
    }
}

/// ISO 8601 UTC with millisecond precision, e.g. `2026-11-07T10:30:00.123Z`.
pub fn iso8601(t: jiff::Timestamp) -> String {
    format!("{t:.3}")
}

/// A JSON number; NaN and infinities (never produced, but never trusted) become 0.
fn number(v: f64) -> Value {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        Value::from(v as i64)
    } else {
        serde_json::Number::from_f64(v).map_or(Value::from(0), Value::Number)
    }
}

/// One stored point of every metric.
#[derive(Debug, Clone)]
pub struct HistoryPoint {
    /// When it was taken.
    pub timestamp: jiff::Timestamp,
    /// The values, in [`METRIC_NAMES`] order.
    pub values: Values,
}

/// The latest snapshot and the bounded history, shared by the sampler and the readers.
pub struct Sampler {
    latest: Mutex<Arc<Snapshot>>,
    history: Mutex<VecDeque<HistoryPoint>>,
    capacity: usize,
    resolution: Duration,
    /// What the previous tick read, for rates and window percentiles.
    previous: Mutex<Option<(Instant, Totals)>>,
}

impl Sampler {
    /// A sampler keeping `retention / resolution` points (at most 100,000).
    pub fn new(resolution: Duration, retention: Duration) -> Sampler {
        let points = (retention.as_secs_f64() / resolution.as_secs_f64().max(0.001)).ceil();
        let capacity = (points as usize).clamp(1, MAX_HISTORY_POINTS);
        Sampler {
            latest: Mutex::new(Arc::new(Snapshot {
                timestamp: jiff::Timestamp::now(),
                values: [0.0; METRIC_NAMES.len()],
                top_topics: Vec::new(),
            })),
            history: Mutex::new(VecDeque::new()),
            capacity,
            resolution,
            previous: Mutex::new(None),
        }
    }

    /// The latest snapshot taken by the sampler task.
    pub fn latest(&self) -> Arc<Snapshot> {
        Arc::clone(&self.latest.lock())
    }

    /// The stored points of one metric, oldest first.
    pub fn series(&self, metric: usize) -> Vec<(jiff::Timestamp, f64)> {
        self.history
            .lock()
            .iter()
            .map(|p| (p.timestamp, p.values[metric]))
            .collect()
    }

    /// Reads the hub now; rates and percentiles cover the time since the previous tick.
    pub fn take(&self, node: &Node) -> Snapshot {
        let now = Instant::now();
        let totals = node.metrics.totals();
        let previous = self.previous.lock().clone();
        let (elapsed, window) = match &previous {
            Some((at, before)) => (now.duration_since(*at).as_secs_f64(), Some(before)),
            None => (0.0, None),
        };
        let rate = |current: u64, before: fn(&Totals) -> u64| match window {
            Some(b) if elapsed > 0.0 => current.saturating_sub(before(b)) as f64 / elapsed,
            _ => 0.0,
        };
        let latency: HistogramReading = match window {
            Some(b) => totals.latency.since(&b.latency),
            None => totals.latency.clone(),
        };
        let requests = totals.requests_success + totals.requests_error;
        let success_rate = if requests == 0 {
            100.0
        } else {
            round2(100.0 * totals.requests_success as f64 / requests as f64)
        };
        let avg_response_ms = if requests == 0 {
            0.0
        } else {
            round3(totals.response_micros as f64 / requests as f64 / 1000.0)
        };
        let topics = node.registry.topics();
        let values: Values = [
            requests as f64,
            totals.requests_success as f64,
            totals.requests_error as f64,
            success_rate,
            avg_response_ms,
            node.connections.count() as f64,
            totals.connections_opened as f64,
            node.registry.subscription_count() as f64,
            topics.len() as f64,
            totals.messages_received as f64,
            totals.messages_sent as f64,
            round2(rate(totals.messages_received, |t| t.messages_received)),
            round2(rate(totals.messages_sent, |t| t.messages_sent)),
            latency.quantile(0.5).map_or(0.0, |s| round3(s * 1000.0)),
            latency.quantile(0.99).map_or(0.0, |s| round3(s * 1000.0)),
            totals.errors as f64,
            round2(rate(totals.errors, |t| t.errors)),
            totals.rate_limit_hits as f64,
            round2(rate(totals.rate_limit_hits, |t| t.rate_limit_hits)),
            totals.slow_consumers as f64,
            node.connections.buffered() as f64,
            resident_bytes().unwrap_or(0) as f64,
            node.uptime_seconds() as f64,
        ];
        let snapshot = Snapshot {
            timestamp: jiff::Timestamp::now(),
            values,
            top_topics: topics
                .into_iter()
                .take(TOP_TOPICS_LEN)
                .map(|(t, n)| (t.to_string(), n))
                .collect(),
        };
        self.remember(&snapshot, now, totals);
        snapshot
    }

    fn remember(&self, snapshot: &Snapshot, at: Instant, totals: Totals) {
        *self.previous.lock() = Some((at, totals));
        *self.latest.lock() = Arc::new(snapshot.clone());
        let mut history = self.history.lock();
        let due = history.back().is_none_or(|last| {
            let since = snapshot.timestamp.duration_since(last.timestamp);
            // Half a tick of slack: a 1 s ticker must not skip a 10 s point for jitter.
            since.as_secs_f64() + 0.5 >= self.resolution.as_secs_f64()
        });
        if due {
            if history.len() == self.capacity {
                history.pop_front();
            }
            history.push_back(HistoryPoint {
                timestamp: snapshot.timestamp,
                values: snapshot.values,
            });
        }
    }
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// The process's resident set size, from `/proc/self/status` (Linux); `None` elsewhere.
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(values: Values) -> Snapshot {
        Snapshot {
            timestamp: "2026-11-07T10:30:00Z".parse().expect("valid"),
            values,
            top_topics: vec![("news".into(), 3)],
        }
    }

    #[test]
    fn a_selection_keeps_known_names_and_reports_unknown_ones() {
        let names = vec![
            "active_connections".to_owned(),
            "nope".to_owned(),
            "requests_total".to_owned(),
        ];
        let (selection, unknown) = Selection::parse(&names);
        assert_eq!(selection.metrics, vec![0, 5]);
        assert!(!selection.top_topics);
        assert_eq!(unknown, vec!["nope".to_owned()]);
        assert_eq!(Selection::parse(&[]).0, Selection::all());
    }

    #[test]
    fn snapshot_json_holds_the_chosen_metrics_only() {
        let mut values = [0.0; METRIC_NAMES.len()];
        values[0] = 10.0;
        values[3] = 98.25;
        let s = snapshot(values);
        let all = s.to_json(None);
        assert_eq!(all["type"], "Snapshot");
        assert_eq!(all["timestamp"], "2026-11-07T10:30:00.000Z");
        assert_eq!(all["requests_total"], 10);
        assert_eq!(all["success_rate"], 98.25);
        assert_eq!(all["top_topics"][0]["topic"], "news");
        let (some, _) = Selection::parse(&["success_rate".to_owned()]);
        let chosen = s.to_json(Some(&some));
        assert_eq!(chosen.as_object().map(|o| o.len()), Some(3), "{chosen}");
    }

    #[test]
    fn history_is_bounded_and_spaced_by_the_resolution() {
        let sampler = Sampler::new(Duration::from_secs(10), Duration::from_secs(30));
        assert_eq!(sampler.capacity, 3);
        let start: jiff::Timestamp = "2026-11-07T10:30:00Z".parse().expect("valid");
        let totals = crate::metrics::Metrics::new(&crate::config::Config::default(), []).totals();
        for second in 0..60 {
            let mut s = snapshot([second as f64; METRIC_NAMES.len()]);
            s.timestamp = start + jiff::SignedDuration::from_secs(second);
            sampler.remember(&s, Instant::now(), totals.clone());
        }
        let series = sampler.series(0);
        assert_eq!(series.iter().map(|p| p.1).collect::<Vec<_>>(), vec![30.0, 40.0, 50.0]);
        assert_eq!(sampler.latest().values[0], 59.0);
    }
}
