//! The in-memory engine against the shared broker conformance suite.

use std::sync::Arc;
use std::time::Duration;
use wshub_broker::conformance::{self, Recorder};
use wshub_broker::{Broker, MemoryBroker};

fn memory(delivery: Arc<Recorder>) -> MemoryBroker {
    MemoryBroker::new(delivery, 64 << 20, Duration::from_secs(300))
}

#[tokio::test(start_paused = true)]
async fn memory_engine_passes_the_conformance_suite() {
    conformance::run_all(&memory).await;
}

#[tokio::test(start_paused = true)]
async fn history_budget_drops_the_least_recently_published_topic() {
    let broker = memory(Arc::default());
    let topic = |s: &str| wshub_protocol::Topic::parse(s).expect("valid");
    broker
        .publish(conformance::draft("old", 1), conformance::ROOMY)
        .await
        .expect("publish");
    tokio::time::advance(Duration::from_millis(10)).await;
    let one = broker.history_bytes();
    assert!(one > 0);
    // A budget of about two topics' worth: the third publication evicts "old".
    let broker_small = MemoryBroker::new(Arc::<Recorder>::default(), one * 2 + one / 2, Duration::from_secs(300));
    for name in ["old", "mid", "new"] {
        broker_small
            .publish(conformance::draft(name, 1), conformance::ROOMY)
            .await
            .expect("publish");
        tokio::time::advance(Duration::from_millis(10)).await;
    }
    assert!(
        !broker_small.has_stream(&topic("old")),
        "least recently published topic dropped"
    );
    assert!(broker_small.has_stream(&topic("mid")) && broker_small.has_stream(&topic("new")));
    assert!(broker_small.history_bytes() <= one * 2 + one / 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_engine_serialises_racing_publishers() {
    conformance::concurrent_publishers_are_serialised_per_topic(&memory).await;
}
