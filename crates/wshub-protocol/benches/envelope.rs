//! Cost of the envelope codecs on the message path: decoding a client's request (every
//! frame a client sends) and encoding an event (once per publication, whatever the number
//! of subscribers).
//!
//! `cargo bench -p wshub-protocol --bench envelope`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::value::RawValue;
use std::hint::black_box;
use wshub_protocol::decode_client_frame;
use wshub_protocol::outbound::{self, EventView};

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("envelope");
    let publish = br#"{"id":"c42","type":"publish","topic":"room/42","event":"chat","payload":{"text":"hello there","n":12345,"tags":["a","b"]}}"#;
    group.throughput(Throughput::Bytes(publish.len() as u64));
    group.bench_function("decode publish request (100 B payload)", |b| {
        b.iter(|| black_box(decode_client_frame(black_box(publish)).expect("valid")))
    });
    let subscribe = br#"{"id":"s1","type":"subscribe","topics":["news","room/42","metrics"],"payload":{"recover":{"epoch":"1a2b3c4d0","offset":41}}}"#;
    group.throughput(Throughput::Bytes(subscribe.len() as u64));
    group.bench_function("decode subscribe request (3 topics, recover)", |b| {
        b.iter(|| black_box(decode_client_frame(black_box(subscribe)).expect("valid")))
    });

    let payload = RawValue::from_string(format!(r#"{{"text":"{}"}}"#, "x".repeat(90))).expect("json");
    let view = EventView {
        kind: "chat",
        topic: "room/42",
        payload: &payload,
        id: "evt_1a2b3c4d5e",
        offset: 123_456,
        epoch: "1a2b3c4d0",
        timestamp: 1_764_900_000_000,
        sender_id: "u42",
    };
    group.throughput(Throughput::Bytes(outbound::event(&view).len() as u64));
    group.bench_function("encode event (100 B payload)", |b| {
        b.iter(|| black_box(outbound::event(black_box(&view))))
    });
    let id = decode_client_frame(br#"{"id":"c42","type":"ping"}"#).expect("valid").id;
    group.bench_function("encode published reply", |b| {
        b.iter(|| {
            black_box(outbound::reply(
                id.as_ref(),
                "published",
                &serde_json::json!({"offset": 123_456, "epoch": "1a2b3c4d0"}),
                1_764_900_000_000,
            ))
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
