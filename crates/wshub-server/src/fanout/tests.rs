//! The fan-out shares one encoded event, and so one compressed form, between subscribers.

use super::{FanOut, Registry};
use crate::metrics::histogram::{AtomicHistogram, LATENCY_SECONDS};
use crate::session::outbox::{self, Closer, EventFrame, Outgoing};
use crate::transport::compressions_on_this_thread;
use serde_json::value::RawValue;
use std::sync::Arc;
use wshub_broker::{Content, Delivery, Publication, PublicationDraft};
use wshub_protocol::{Epoch, EventId, EventName, Offset, Topic};

#[test]
fn one_event_to_many_compressing_subscribers_is_compressed_once() {
    let registry = Arc::new(Registry::default());
    let fanout = FanOut::new(Arc::clone(&registry), AtomicHistogram::new(LATENCY_SECONDS));
    let topic = Topic::parse("room").expect("topic");
    let mut queues = Vec::new();
    for key in 0..1000 {
        let (outbox, queue) = outbox::outbox(4, 1 << 20, Closer::default());
        registry.subscribe_held(&topic, key, &outbox, 0);
        assert!(registry.take_held(&topic, key).is_none(), "nothing held: live at once");
        queues.push(queue);
    }
    let rows: Vec<String> = (0..60).map(|i| format!("{{\"n\":{i},\"name\":\"row {i}\"}}")).collect();
    let payload = RawValue::from_string(format!("[{}]", rows.join(","))).expect("json");
    let draft = PublicationDraft {
        topic,
        content: Content::Json {
            event: EventName::parse("rows").expect("event"),
            payload: Arc::from(payload),
        },
        id: EventId::new("evt_1".to_owned()),
        timestamp: 1,
        sender_id: Arc::from("server"),
    };
    fanout.deliver(Arc::new(Publication::new(draft, Offset(1), Epoch::new("e".to_owned()))));

    let before = compressions_on_this_thread();
    let mut first = None;
    for queue in &mut queues {
        let Some(Outgoing::Event {
            frame: EventFrame::Text(text),
            ..
        }) = queue.try_recv()
        else {
            panic!("every subscriber has the event");
        };
        // What each compressing subscriber's writer sends.
        let compressed = text.compressed().expect("JSON compresses");
        assert_eq!(
            *first.get_or_insert(compressed.as_ptr()),
            compressed.as_ptr(),
            "shared bytes"
        );
    }
    assert_eq!(
        compressions_on_this_thread() - before,
        1,
        "one compression for 1000 subscribers"
    );
}
