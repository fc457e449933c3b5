//! What the hub counts, and the three ways it is read: Prometheus `/metrics` (CONTRACT
//! §10), the JSON `Snapshot` and the live `/ws/metrics` stream (§8), and the built-in
//! `system` topic (§14).
//!
//! Beside the message path, not on it: every step of the path bumps a counter here
//! through a handle resolved when the node started (an `Arc` of atomics), so counting
//! takes no lock and no label lookup. Gauges that describe state the hub already keeps
//! (connections, subscriptions, queues) are read from that state when someone asks.

pub mod histogram;
pub mod labels;
pub mod sampler;
pub mod stream;
pub mod system;

use crate::config::Config;
use crate::transport::CompressionStats;
use histogram::{AtomicHistogram, DURATION_SECONDS, LATENCY_SECONDS, SIZE_BYTES};
use labels::{CLOSE_REASONS, OTHER, RequestTypes, close_reason, literal_topics};
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;
use wshub_protocol::{CloseCode, ErrorCode};

type Label = [(&'static str, String); 1];

/// A writer folds its counts into the shared metrics after this many frames …
const WRITER_FOLD_FRAMES: u64 = 256;
/// … or this long after its last fold, whichever comes first.
const WRITER_FOLD_MICROS: u64 = 100_000;
/// The longest flushed counts wait in a writer before they are folded, even when idle.
pub const WRITER_FOLD_AFTER: Duration = Duration::from_micros(WRITER_FOLD_MICROS);

/// Microseconds on a process-wide monotonic clock, never 0 (0 marks "not stamped").
pub fn monotonic_micros() -> u64 {
    static BASE: OnceLock<std::time::Instant> = OnceLock::new();
    let base = *BASE.get_or_init(std::time::Instant::now);
    base.elapsed().as_micros() as u64 + 1
}

/// Every counter of the hub, with its Prometheus registry.
pub struct Metrics {
    registry: Registry,
    /// Label values of `type`.
    pub request_types: RequestTypes,
    connections: Gauge,
    subscriptions: Gauge,
    buffered_events: Gauge,
    channel_subscribers: HashMap<String, Gauge>,
    channel_other: Gauge,
    connections_opened: Counter,
    connections_closed: Vec<Counter>,
    connection_duration: AtomicHistogram,
    messages_sent: Counter,
    messages_received: Vec<Counter>,
    size_in: AtomicHistogram,
    size_out: AtomicHistogram,
    latency: AtomicHistogram,
    errors: Vec<Counter>,
    broadcast: AtomicHistogram,
    reconnections_resumed: Counter,
    reconnections_invalid: Counter,
    rate_limit_hits: Vec<Counter>,
    compression_saved: Counter,
    compression: CompressionCounts,
    /// Requests (client requests on `/ws` and HTTP API calls) for the `Snapshot`.
    pub requests: RequestCounts,
    /// Slow-consumer closes, for `Snapshot` and alerts.
    slow_consumers: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("request_types", &self.request_types)
            .finish_non_exhaustive()
    }
}

/// Requests answered, split by outcome, with their summed response time.
#[derive(Debug, Default)]
pub struct RequestCounts {
    success: AtomicU64,
    error: AtomicU64,
    response_micros: AtomicU64,
}

impl RequestCounts {
    /// Records one answered request.
    pub fn record(&self, ok: bool, took: Duration) {
        let counter = if ok { &self.success } else { &self.error };
        counter.fetch_add(1, Ordering::Relaxed);
        self.response_micros
            .fetch_add(took.as_micros().min(u64::MAX as u128) as u64, Ordering::Relaxed);
    }

    /// `(success, error, summed response time in µs)`.
    pub fn read(&self) -> (u64, u64, u64) {
        (
            self.success.load(Ordering::Relaxed),
            self.error.load(Ordering::Relaxed),
            self.response_micros.load(Ordering::Relaxed),
        )
    }
}

/// Node state the gauges show, read at scrape time.
#[derive(Debug, Clone, Default)]
pub struct GaugeReading {
    /// Open connections.
    pub connections: usize,
    /// Subscriptions of all local connections.
    pub subscriptions: usize,
    /// Messages queued for sockets and not yet written.
    pub buffered_events: usize,
    /// Every topic with local subscribers and how many.
    pub topics: Vec<(String, usize)>,
}

fn register_labelled(
    registry: &mut Registry,
    name: &str,
    help: &str,
    key: &'static str,
    values: &[String],
) -> Vec<Counter> {
    let family = Family::<Label, Counter>::default();
    registry.register(name, help, family.clone());
    values
        .iter()
        .map(|v| family.get_or_create_owned(&[(key, v.clone())]))
        .collect()
}

impl Metrics {
    /// Registers every metric of CONTRACT §10 under `metrics.prefix`, with the label sets
    /// this configuration and these handler globs allow.
    pub fn new<'a>(config: &Config, handler_patterns: impl IntoIterator<Item = &'a str>) -> Metrics {
        let mut registry = Registry::with_prefix(config.metrics.prefix.clone());
        let request_types = RequestTypes::new(handler_patterns);
        let r = &mut registry;

        let gauge = |r: &mut Registry, name: &str, help: &str| {
            let g = Gauge::default();
            r.register(name, help, g.clone());
            g
        };
        let counter = |r: &mut Registry, name: &str, help: &str| {
            let c = Counter::default();
            r.register(name, help, c.clone());
            c
        };
        let histogram = |r: &mut Registry, name: &str, help: &str, bounds: &'static [f64]| {
            let h = AtomicHistogram::new(bounds);
            r.register(name, help, h.clone());
            h
        };

        let connections = gauge(r, "connections", "Open WebSocket connections");
        let connections_opened = counter(r, "connections_opened", "WebSocket connections opened");
        let reasons: Vec<String> = CLOSE_REASONS.iter().map(|s| (*s).to_owned()).collect();
        let connections_closed = register_labelled(
            r,
            "connections_closed",
            "WebSocket connections closed, by reason",
            "reason",
            &reasons,
        );
        let connection_duration = histogram(
            r,
            "connection_duration_seconds",
            "How long WebSocket connections stayed open",
            DURATION_SECONDS,
        );
        let messages_sent = counter(r, "messages_sent", "Frames written to WebSocket clients");
        let messages_received = register_labelled(
            r,
            "messages_received",
            "Requests received from WebSocket clients, by type",
            "type",
            request_types.names(),
        );
        let sizes = Family::<Label, AtomicHistogram, fn() -> AtomicHistogram>::new_with_constructor(|| {
            AtomicHistogram::new(SIZE_BYTES)
        });
        r.register(
            "message_size_bytes",
            "Size of WebSocket messages, by direction",
            sizes.clone(),
        );
        let size_in = sizes.get_or_create_owned(&[("direction", "in".to_owned())]);
        let size_out = sizes.get_or_create_owned(&[("direction", "out".to_owned())]);
        let latency = histogram(
            r,
            "message_latency_seconds",
            "From a publication reaching the fan-out to its frame written to a subscriber's socket",
            LATENCY_SECONDS,
        );
        let subscriptions = gauge(r, "subscriptions", "Topic subscriptions of all connections");
        let channels = Family::<Label, Gauge>::default();
        r.register(
            "channel_subscribers",
            "Subscribers per topic (topics named in the rules; the rest as other)",
            channels.clone(),
        );
        let channel_subscribers = literal_topics(config)
            .into_iter()
            .map(|t| {
                let g = channels.get_or_create_owned(&[("topic", t.clone())]);
                (t, g)
            })
            .collect();
        let channel_other = channels.get_or_create_owned(&[("topic", OTHER.to_owned())]);
        let buffered_events = gauge(
            r,
            "buffered_events",
            "Messages queued for client sockets and not yet written",
        );
        let codes: Vec<String> = ErrorCode::ALL.iter().map(|c| c.as_str().to_owned()).collect();
        let errors = register_labelled(r, "errors", "Error replies sent, by code", "code", &codes);
        let broadcast = histogram(
            r,
            "broadcast_duration_seconds",
            "Time to hand one publication to every local subscriber's queue",
            LATENCY_SECONDS,
        );
        let outcomes = ["resumed".to_owned(), "invalid".to_owned()];
        let reconnections = register_labelled(
            r,
            "reconnections",
            "Connections opened with a reconnection token, by outcome",
            "outcome",
            &outcomes,
        );
        let rate_limit_hits = register_labelled(
            r,
            "rate_limit_hits",
            "Requests refused with rate_limited, by type",
            "type",
            request_types.names(),
        );
        let compression_saved = counter(
            r,
            "compression_saved_bytes",
            "Bytes saved on the wire by permessage-deflate",
        );
        let slow_consumers = Counter::default();

        Metrics {
            connections,
            subscriptions,
            buffered_events,
            channel_subscribers,
            channel_other,
            connections_opened,
            connections_closed,
            connection_duration,
            messages_sent,
            messages_received,
            size_in,
            size_out,
            latency,
            errors,
            broadcast,
            reconnections_resumed: reconnections[0].clone(),
            reconnections_invalid: reconnections[1].clone(),
            rate_limit_hits,
            compression_saved,
            compression: CompressionCounts::default(),
            requests: RequestCounts::default(),
            slow_consumers,
            request_types,
            registry,
        }
    }

    /// A connection was established.
    pub fn connection_opened(&self) {
        self.connections_opened.inc();
    }

    /// A connection ended with `code` after `lived`.
    pub fn connection_closed(&self, code: CloseCode, lived: Duration) {
        self.connections_closed[close_reason(code)].inc();
        self.connection_duration.observe(lived.as_secs_f64());
        if code == CloseCode::SlowConsumer {
            self.slow_consumers.inc();
        }
    }

    /// A request of type index `kind` arrived in a frame of `bytes` bytes.
    pub fn received(&self, kind: usize, bytes: usize) {
        if let Some(c) = self.messages_received.get(kind) {
            c.inc();
        }
        self.size_in.observe(bytes as f64);
    }

    /// A request of type index `kind` was refused with `rate_limited`.
    pub fn rate_limited(&self, kind: usize) {
        if let Some(c) = self.rate_limit_hits.get(kind) {
            c.inc();
        }
    }

    /// An `error` reply with `code` was queued.
    pub fn error(&self, code: ErrorCode) {
        if let Some(i) = ErrorCode::ALL.iter().position(|c| *c == code) {
            self.errors[i].inc();
        }
    }

    /// A reconnection token was redeemed (`true`) or refused.
    pub fn reconnection(&self, resumed: bool) {
        if resumed {
            self.reconnections_resumed.inc();
        } else {
            self.reconnections_invalid.inc();
        }
    }

    /// The `broadcast_duration_seconds` histogram, for the fan-out to observe into.
    pub fn broadcast_histogram(&self) -> AtomicHistogram {
        self.broadcast.clone()
    }

    /// A writer's accumulators for one connection's batches.
    pub fn writer_batch(&self) -> WriterBatch {
        WriterBatch::default()
    }

    /// Folds what a writer has flushed into the shared metrics when enough gathered or enough
    /// time passed since the last fold (`now` from [`monotonic_micros`]). Many writers adding
    /// to the same atomics after every small flush would bounce their cache lines between
    /// cores on every delivery; folding every `WRITER_FOLD_FRAMES` frames or
    /// `WRITER_FOLD_MICROS` keeps the counts at most that far behind.
    pub fn fold(&self, batch: &mut WriterBatch, now: u64) {
        let frames = batch.counts.as_ref().map_or(0, |c| c.frames);
        if frames >= WRITER_FOLD_FRAMES || now.saturating_sub(batch.last_merge) >= WRITER_FOLD_MICROS {
            self.fold_now(batch);
            batch.last_merge = now;
        }
    }

    /// Folds everything a writer has flushed, whatever its amount (when the writer ends, or
    /// goes idle). A batch left with nothing unflushed gives its memory back.
    pub fn fold_now(&self, batch: &mut WriterBatch) {
        let Some(counts) = batch.counts.as_mut() else {
            return;
        };
        if counts.frames > 0 {
            self.messages_sent.inc_by(std::mem::take(&mut counts.frames));
            self.size_out.merge(&mut counts.sizes);
            self.latency.merge(&mut counts.latencies);
        }
        if counts.unflushed_frames == 0 {
            batch.counts = None;
        }
    }

    /// One frame of `bytes` written outside a batching writer (a conflating raw stream).
    pub fn frame_written(&self, bytes: usize) {
        self.messages_sent.inc();
        self.size_out.observe(bytes as f64);
    }

    /// What permessage-deflate has done so far.
    pub fn compression(&self) -> CompressionReading {
        let c = &self.compression;
        CompressionReading {
            connections: c.connections.load(Ordering::Relaxed).max(0) as u64,
            messages: c.messages.load(Ordering::Relaxed),
            plain_bytes: c.plain.load(Ordering::Relaxed),
            wire_bytes: c.wire.load(Ordering::Relaxed),
        }
    }

    /// Prometheus text exposition (version 0.0.4) with the gauges set from `state`.
    pub fn encode(&self, state: &GaugeReading) -> String {
        self.connections.set(state.connections as i64);
        self.subscriptions.set(state.subscriptions as i64);
        self.buffered_events.set(state.buffered_events as i64);
        let mut other = 0;
        for gauge in self.channel_subscribers.values() {
            gauge.set(0);
        }
        for (topic, n) in &state.topics {
            match self.channel_subscribers.get(topic) {
                Some(gauge) => {
                    gauge.set(*n as i64);
                }
                None => other += *n as i64,
            }
        }
        self.channel_other.set(other);
        let mut text = String::with_capacity(16 * 1024);
        if let Err(error) = prometheus_text::encode(&mut text, &self.registry) {
            tracing::error!(%error, "could not encode metrics");
        }
        text
    }

    /// Totals the `Snapshot` and the `system` topic show.
    pub fn totals(&self) -> Totals {
        let (success, error, micros) = self.requests.read();
        Totals {
            requests_success: success,
            requests_error: error,
            response_micros: micros,
            messages_sent: self.messages_sent.get(),
            messages_received: self.messages_received.iter().map(Counter::get).sum(),
            errors: self.errors.iter().map(Counter::get).sum(),
            rate_limit_hits: self.rate_limit_hits.iter().map(Counter::get).sum(),
            slow_consumers: self.slow_consumers.get(),
            connections_opened: self.connections_opened.get(),
            latency: self.latency.read(),
        }
    }
}

/// Connection writers report here once per flush; `compression_saved_bytes_total` is the
/// difference of the byte counts.
impl CompressionStats for Metrics {
    fn written(&self, messages: u64, plain: u64, wire: u64) {
        let c = &self.compression;
        c.messages.fetch_add(messages, Ordering::Relaxed);
        c.plain.fetch_add(plain, Ordering::Relaxed);
        c.wire.fetch_add(wire, Ordering::Relaxed);
        self.compression_saved.inc_by(plain.saturating_sub(wire));
    }

    fn connection(&self, open: bool) {
        self.compression
            .connections
            .fetch_add(if open { 1 } else { -1 }, Ordering::Relaxed);
    }
}

#[derive(Debug, Default)]
struct CompressionCounts {
    /// Open connections that negotiated permessage-deflate.
    connections: AtomicI64,
    /// Messages sent compressed.
    messages: AtomicU64,
    /// Their bytes before compression.
    plain: AtomicU64,
    /// Their bytes on the wire.
    wire: AtomicU64,
}

/// permessage-deflate at one moment (`/ws/status`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompressionReading {
    /// Open connections that negotiated it.
    pub connections: u64,
    /// Messages sent compressed so far.
    pub messages: u64,
    /// Their payload bytes before compression.
    pub plain_bytes: u64,
    /// Their payload bytes as sent.
    pub wire_bytes: u64,
}

/// A writer's per-batch accumulators, merged into the shared metrics once per flush.
#[derive(Debug, Clone, Default)]
pub struct WriterBatch {
    /// Allocated at the first frame and given back once folded: every connection's writer
    /// holds a batch, and an idle one needs no counts.
    counts: Option<Box<BatchCounts>>,
    last_merge: u64,
}

#[derive(Debug, Clone)]
struct BatchCounts {
    /// Frames fed since the last flush: counted only once the flush succeeds.
    unflushed_frames: u64,
    unflushed_sizes: histogram::LocalHistogram,
    /// Flushed and not yet folded into the shared metrics.
    frames: u64,
    sizes: histogram::LocalHistogram,
    latencies: histogram::LocalHistogram,
}

impl Default for BatchCounts {
    fn default() -> Self {
        BatchCounts {
            unflushed_frames: 0,
            unflushed_sizes: histogram::LocalHistogram::new(SIZE_BYTES),
            frames: 0,
            sizes: histogram::LocalHistogram::new(SIZE_BYTES),
            latencies: histogram::LocalHistogram::new(LATENCY_SECONDS),
        }
    }
}

impl WriterBatch {
    /// One frame of `bytes` bytes fed to the socket.
    pub fn frame(&mut self, bytes: usize) {
        let counts = self.counts.get_or_insert_default();
        counts.unflushed_frames += 1;
        counts.unflushed_sizes.observe(bytes as f64);
    }

    /// The frames fed so far reached the socket; `latencies` are those of the live events
    /// among them.
    pub fn flushed(&mut self, latencies: impl IntoIterator<Item = Duration>) {
        let counts = self.counts.get_or_insert_default();
        counts.frames += std::mem::take(&mut counts.unflushed_frames);
        counts.sizes.absorb(&mut counts.unflushed_sizes);
        for latency in latencies {
            counts.latencies.observe(latency.as_secs_f64());
        }
    }

    /// Whether flushed counts wait to be folded.
    pub fn has_unfolded(&self) -> bool {
        self.counts.as_ref().is_some_and(|c| c.frames > 0)
    }

    /// The frames fed since the last flush never reached the socket.
    pub fn lost(&mut self) {
        if let Some(counts) = self.counts.as_mut() {
            counts.unflushed_frames = 0;
            counts.unflushed_sizes.clear();
        }
    }
}

/// Cumulative counts at one moment.
#[derive(Debug, Clone)]
pub struct Totals {
    /// Requests answered with success.
    pub requests_success: u64,
    /// Requests answered with an error.
    pub requests_error: u64,
    /// Summed response time of all requests, µs.
    pub response_micros: u64,
    /// Frames written to clients.
    pub messages_sent: u64,
    /// Requests received from clients.
    pub messages_received: u64,
    /// Error replies sent.
    pub errors: u64,
    /// Requests refused with `rate_limited`.
    pub rate_limit_hits: u64,
    /// Connections closed as slow consumers.
    pub slow_consumers: u64,
    /// Connections opened.
    pub connections_opened: u64,
    /// Delivery latency so far.
    pub latency: histogram::HistogramReading,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_writer_batch_counts_only_flushed_frames_and_holds_nothing_once_folded() {
        let metrics = Metrics::new(&Config::default(), []);
        let mut batch = metrics.writer_batch();
        assert!(batch.counts.is_none(), "nothing allocated before the first frame");
        batch.frame(100);
        batch.frame(200);
        batch.flushed([Duration::from_millis(2)]);
        batch.frame(300);
        metrics.fold_now(&mut batch);
        assert_eq!(metrics.messages_sent.get(), 2, "the unflushed frame is not counted yet");
        assert!(batch.counts.is_some(), "kept while a frame waits for its flush");
        batch.lost();
        metrics.fold_now(&mut batch);
        assert_eq!(metrics.messages_sent.get(), 2, "a lost frame is never counted");
        assert!(batch.counts.is_none(), "an idle writer gives its counts back");
        assert_eq!(metrics.size_out.read().count, 2);
        assert_eq!(metrics.latency.read().count, 1);
    }

    #[test]
    fn every_contract_metric_is_exposed_with_its_type() {
        let config = Config::default();
        let metrics = Metrics::new(&config, ["token.*"]);
        metrics.connection_opened();
        metrics.connection_closed(CloseCode::SlowConsumer, Duration::from_secs(3));
        metrics.error(ErrorCode::Forbidden);
        let text = metrics.encode(&GaugeReading {
            connections: 2,
            subscriptions: 3,
            buffered_events: 0,
            topics: vec![("metrics".into(), 2), ("room/1".into(), 1)],
        });
        for (name, kind) in [
            ("wshub_connections", "gauge"),
            ("wshub_connections_opened_total", "counter"),
            ("wshub_connections_closed_total", "counter"),
            ("wshub_connection_duration_seconds", "histogram"),
            ("wshub_messages_sent_total", "counter"),
            ("wshub_messages_received_total", "counter"),
            ("wshub_message_size_bytes", "histogram"),
            ("wshub_message_latency_seconds", "histogram"),
            ("wshub_subscriptions", "gauge"),
            ("wshub_channel_subscribers", "gauge"),
            ("wshub_buffered_events", "gauge"),
            ("wshub_errors_total", "counter"),
            ("wshub_broadcast_duration_seconds", "histogram"),
            ("wshub_reconnections_total", "counter"),
            ("wshub_rate_limit_hits_total", "counter"),
            ("wshub_compression_saved_bytes_total", "counter"),
        ] {
            assert!(
                text.contains(&format!("# TYPE {name} {kind}\n")),
                "{name} as {kind} missing from:\n{text}"
            );
        }
        assert!(text.contains("wshub_connections 2\n"), "{text}");
        assert!(text.contains("wshub_connections_closed_total{reason=\"slow_consumer\"} 1\n"));
        assert!(text.contains("wshub_channel_subscribers{topic=\"metrics\"} 2\n"));
        assert!(text.contains("wshub_channel_subscribers{topic=\"other\"} 1\n"));
        assert!(text.contains("wshub_errors_total{code=\"forbidden\"} 1\n"));
        assert!(text.contains("wshub_messages_received_total{type=\"token.*\"} 0\n"));
    }

    #[test]
    fn the_prefix_comes_from_the_config() {
        let mut config = Config::default();
        config.metrics.prefix = "hub".into();
        let text = Metrics::new(&config, []).encode(&GaugeReading::default());
        assert!(text.contains("# TYPE hub_connections gauge"));
        assert!(!text.contains("wshub_"));
    }

    #[test]
    fn compression_is_counted_as_bytes_saved() {
        let metrics = Metrics::new(&Config::default(), []);
        metrics.connection(true);
        metrics.written(2, 5000, 1200);
        metrics.written(1, 100, 100);
        let reading = metrics.compression();
        assert_eq!(
            reading,
            CompressionReading {
                connections: 1,
                messages: 3,
                plain_bytes: 5100,
                wire_bytes: 1300,
            }
        );
        let text = metrics.encode(&GaugeReading::default());
        assert!(text.contains("wshub_compression_saved_bytes_total 3800\n"), "{text}");
        metrics.connection(false);
        assert_eq!(metrics.compression().connections, 0);
    }

    #[test]
    fn a_writer_batch_is_counted_once_flushed() {
        let metrics = Metrics::new(&Config::default(), []);
        let mut batch = metrics.writer_batch();
        batch.frame(100);
        batch.frame(5000);
        batch.flushed([Duration::from_micros(300)]);
        batch.frame(7);
        batch.lost();
        assert_eq!(metrics.totals().messages_sent, 0);
        // Within the fold interval of the last fold (at 0): nothing is folded yet.
        metrics.fold(&mut batch, WRITER_FOLD_MICROS - 1);
        assert_eq!(metrics.totals().messages_sent, 0);
        metrics.fold(&mut batch, WRITER_FOLD_MICROS);
        let totals = metrics.totals();
        assert_eq!(totals.messages_sent, 2, "the lost frame is not counted");
        assert_eq!(totals.latency.count, 1);
        metrics.fold_now(&mut batch);
        assert_eq!(metrics.totals().messages_sent, 2);
        for _ in 0..WRITER_FOLD_FRAMES {
            batch.frame(1);
        }
        batch.flushed([]);
        metrics.fold(&mut batch, WRITER_FOLD_MICROS + 1);
        assert_eq!(
            metrics.totals().messages_sent,
            2 + WRITER_FOLD_FRAMES,
            "a full batch folds at once"
        );
    }
}
