//! CPU per event of a fan-out to 1,000 subscribers, from the broker's delivery to the bytes
//! each subscriber's writer hands its socket (a sink here, so no syscall is counted):
//!
//! - `plain`: no subscriber negotiated compression;
//! - `compress once`: every subscriber negotiated permessage-deflate, and the event's
//!   compressed form is made once and shared (what the hub does);
//! - `compress per subscriber`: the same, but each subscriber compresses its own copy (what a
//!   WebSocket library without shared frames does), for contrast.
//!
//! The event is a 2 KB JSON object. Run with
//! `cargo bench -p wshub-server --bench compress_fanout`.

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::value::RawValue;
use std::sync::Arc;
use std::time::Duration;
use wshub_broker::{Content, Delivery, Publication, PublicationDraft};
use wshub_protocol::{Epoch, EventId, EventName, Offset, Topic};
use wshub_server::fanout::{FanOut, Registry};
use wshub_server::metrics::histogram::{AtomicHistogram, LATENCY_SECONDS};
use wshub_server::session::outbox::{self, Closer, EventFrame, OutboxReceiver, Outgoing};
use wshub_server::transport::{CompressionStats, Deflate, DeflateParams, OutFrame, SharedText, WsWriter};

const SUBSCRIBERS: u64 = 1000;

struct NoStats;

impl CompressionStats for NoStats {
    fn written(&self, _: u64, _: u64, _: u64) {}
    fn connection(&self, _: bool) {}
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Plain,
    CompressOnce,
    CompressPerSubscriber,
}

/// One topic with its subscribers: their queues and their writers.
struct Fanout {
    fanout: FanOut,
    subscribers: Vec<(OutboxReceiver, WsWriter)>,
    draft: PublicationDraft,
    offset: u64,
    mode: Mode,
}

/// A 2 KB JSON payload, like a typical dashboard update.
fn payload() -> Arc<RawValue> {
    let rows: Vec<String> = (0..36)
        .map(|i| {
            format!(
                "{{\"id\":{i},\"name\":\"sensor-{i}\",\"value\":{}.5,\"ok\":true}}",
                i * 7
            )
        })
        .collect();
    let json = format!("{{\"rows\":[{}]}}", rows.join(","));
    Arc::from(RawValue::from_string(json).expect("valid JSON"))
}

fn setup(mode: Mode) -> Fanout {
    let registry = Arc::new(Registry::default());
    let fanout = FanOut::new(Arc::clone(&registry), AtomicHistogram::new(LATENCY_SECONDS));
    let topic = Topic::parse("dashboard").expect("topic");
    let deflate = (mode != Mode::Plain).then(|| Deflate {
        params: DeflateParams {
            client_no_context_takeover: false,
            server_max_window_bits: false,
        },
        threshold: 1024,
        stats: Arc::new(NoStats),
    });
    let subscribers = (0..SUBSCRIBERS)
        .map(|key| {
            let (outbox, queue) = outbox::outbox(16, 1 << 20, Closer::default());
            registry.subscribe_held(&topic, key, &outbox, 0);
            let _ = registry.take_held(&topic, key);
            (queue, WsWriter::over(tokio::io::sink(), deflate.clone()))
        })
        .collect();
    let draft = PublicationDraft {
        topic,
        content: Content::Json {
            event: EventName::parse("update").expect("event"),
            payload: payload(),
        },
        id: EventId::new("evt_1".to_owned()),
        timestamp: 1,
        sender_id: Arc::from("server"),
    };
    Fanout {
        fanout,
        subscribers,
        draft,
        offset: 0,
        mode,
    }
}

impl Fanout {
    /// One event: delivered to every queue, then every writer sends what it has.
    async fn event(&mut self) {
        self.offset += 1;
        let publication = Publication::new(self.draft.clone(), Offset(self.offset), Epoch::new("e".to_owned()));
        self.fanout.deliver(Arc::new(publication));
        for (queue, writer) in &mut self.subscribers {
            while let Some(item) = queue.try_recv() {
                let Outgoing::Event {
                    frame: EventFrame::Text(text),
                    ..
                } = item
                else {
                    continue;
                };
                let text = match self.mode {
                    // A copy of its own: its compressed form is not shared.
                    Mode::CompressPerSubscriber => {
                        SharedText::from_json(Bytes::copy_from_slice(text.as_bytes())).expect("UTF-8")
                    }
                    Mode::Plain | Mode::CompressOnce => text,
                };
                writer.feed(OutFrame::Text(text)).await.expect("feed");
            }
            writer.flush().await.expect("flush");
        }
    }
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let draft = setup(Mode::Plain).draft;
    let sample = Publication::new(draft, Offset(1), Epoch::new("e".to_owned()));
    eprintln!("event: {} bytes of JSON", sample.frame().len());
    let mut group = c.benchmark_group(format!("fan-out of a 2 KB event to {SUBSCRIBERS} subscribers"));
    group.sample_size(20).measurement_time(Duration::from_secs(6));
    for (name, mode) in [
        ("plain", Mode::Plain),
        ("compress once", Mode::CompressOnce),
        ("compress per subscriber", Mode::CompressPerSubscriber),
    ] {
        let mut fanout = setup(mode);
        group.bench_function(name, |b| b.iter(|| runtime.block_on(fanout.event())));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
