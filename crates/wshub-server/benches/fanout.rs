//! Cost of the fan-out and of the topic registry: one publication handed to 10,000
//! in-process subscribers (their outboxes, no sockets), and the registry lookups a
//! publication and a subscribe make.
//!
//! `cargo bench -p wshub-server --bench fanout`
//!
//! Only `deliver` is timed; the subscribers' queues are drained between iterations so none
//! overflows. What it shows is the hub's own work per delivery (a reference-counted clone of
//! the encoded frame and a push onto a bounded queue), without the socket writes.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::value::RawValue;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wshub_broker::{Content, Delivery, Publication, PublicationDraft};
use wshub_protocol::{Epoch, EventId, EventName, Offset, Topic};
use wshub_server::fanout::{FanOut, Registry};
use wshub_server::metrics::histogram::{AtomicHistogram, LATENCY_SECONDS};
use wshub_server::session::outbox::{Closer, OutboxReceiver, outbox};

fn publication(topic: &Topic, n: u64) -> Arc<Publication> {
    let payload = RawValue::from_string(format!(r#"{{"n":{n},"text":"{}"}}"#, "x".repeat(80))).expect("json");
    let draft = PublicationDraft {
        topic: topic.clone(),
        content: Content::Json {
            event: EventName::parse("tick").expect("name"),
            payload: Arc::from(payload),
        },
        id: EventId::new(format!("evt_{n}")),
        timestamp: n,
        sender_id: Arc::from("server"),
    };
    Arc::new(Publication::new(draft, Offset(n), Epoch::new("bench0")))
}

/// A registry with `n` subscribers of `topic`, released from their set-up hold.
fn subscribed(topic: &Topic, n: u64) -> (Arc<Registry>, Vec<OutboxReceiver>) {
    let registry = Arc::new(Registry::default());
    let mut receivers = Vec::with_capacity(n as usize);
    for key in 0..n {
        let (out, rx) = outbox(1024, 4 << 20, Closer::default());
        registry.subscribe_held(topic, key, &out, 0);
        while registry.take_held(topic, key).is_some() {}
        receivers.push(rx);
    }
    (registry, receivers)
}

fn bench(c: &mut Criterion) {
    let topic = Topic::parse("bench/fanout").expect("topic");
    let mut group = c.benchmark_group("fan-out");
    for subscribers in [1_000u64, 10_000] {
        let (registry, mut receivers) = subscribed(&topic, subscribers);
        let fanout = FanOut::new(Arc::clone(&registry), AtomicHistogram::new(LATENCY_SECONDS));
        group.throughput(Throughput::Elements(subscribers));
        group.bench_with_input(
            BenchmarkId::new("one publication to N subscribers", subscribers),
            &subscribers,
            |b, _| {
                let mut n = 0;
                b.iter_custom(|iters| {
                    let mut timed = Duration::ZERO;
                    for _ in 0..iters {
                        n += 1;
                        let publication = publication(&topic, n);
                        let started = Instant::now();
                        fanout.deliver(black_box(publication));
                        timed += started.elapsed();
                        for rx in &mut receivers {
                            while rx.try_recv().is_some() {}
                        }
                    }
                    timed
                })
            },
        );
    }
    group.finish();

    let mut group = c.benchmark_group("topic registry");
    let registry = Registry::default();
    let (out, _rx) = outbox(1024, 4 << 20, Closer::default());
    let topics: Vec<Topic> = (0..10_000)
        .map(|i| Topic::parse(&format!("room/{i}")).expect("topic"))
        .collect();
    for (key, t) in topics.iter().enumerate() {
        registry.subscribe_held(t, key as u64, &out, 0);
    }
    let mut i = 0;
    group.bench_function("subscriber count lookup among 10,000 topics", |b| {
        b.iter(|| {
            i = (i + 7919) % topics.len();
            black_box(registry.subscriber_count(topics[i].as_str()))
        })
    });
    let mut key = 1_000_000u64;
    group.bench_function("subscribe + unsubscribe on a busy registry", |b| {
        b.iter(|| {
            key += 1;
            let t = &topics[(key % 10_000) as usize];
            registry.subscribe_held(t, key, &out, 1);
            black_box(registry.unsubscribe(t, key))
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
