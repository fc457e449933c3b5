//! Cost of keeping history on the publish path, side by side: the memory engine publishing
//! to one topic with no history, the default 100 events, and 1,000 events.
//!
//! `cargo bench -p wshub-broker --bench publish`
//!
//! Delivery is a no-op here, so the figures are the broker's own work per publish: offset,
//! `Publication` allocation, and (with history) the append, the trim and the byte budget.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;
use wshub_broker::conformance::draft;
use wshub_broker::{Broker, Delivery, HistoryPolicy, MemoryBroker, Publication};

struct Discard;

impl Delivery for Discard {
    fn deliver(&self, publication: Arc<Publication>) {
        black_box(publication);
    }
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let broker = runtime.block_on(async { MemoryBroker::new(Arc::new(Discard), 256 << 20, Duration::from_secs(300)) });
    let mut group = c.benchmark_group("memory broker publish");
    for size in [0, 100, 1000] {
        let policy = HistoryPolicy {
            size,
            ttl: Duration::from_secs(300),
        };
        let topic = format!("bench/{size}");
        let mut n = 0;
        group.bench_function(format!("history size {size}"), |b| {
            b.iter(|| {
                n += 1;
                let position = runtime.block_on(broker.publish(draft(&topic, n), policy));
                black_box(position.expect("publish"))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
