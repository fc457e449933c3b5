//! Fuzzes the §12 binary decoder (`wshub_protocol::binary::decode`): no input may make it
//! panic, and every frame it accepts must survive the hub's delivery path: the delivered
//! frame is built at its announced size and decodes to the same topic, kind and body, and
//! the publisher's frame re-encodes and lists in history.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wshub_protocol::binary::{self, Delivery, HistoryView};

/// The hub's default `max_message_size`.
const MAX_SIZE: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let Ok(frame) = binary::decode(data, MAX_SIZE) else {
        return;
    };
    let delivery = Delivery {
        offset: 42,
        epoch: "6418f65f1",
        id: "evt_c2e6923810",
        timestamp: 1_795_316_896_406,
        sender_id: "fuzz\"er\n",
    };
    let delivered = binary::extend_metadata(&frame, &delivery).expect("a decoded frame always extends");
    assert_eq!(delivered.len(), frame.delivered_len(&delivery));
    assert!(delivered.len() <= frame.delivered_len_bound(delivery.sender_id));
    let again = binary::decode(&delivered, usize::MAX).expect("a delivered frame decodes");
    assert_eq!(again.kind(), frame.kind());
    assert_eq!(again.topic(), frame.topic());
    assert_eq!(again.body(), frame.body());
    let reencoded = binary::encode(frame.kind(), frame.metadata(), frame.body()).expect("metadata fits");
    assert!(binary::decode(&reencoded, usize::MAX).is_ok());
    let entry = binary::history_entry(&HistoryView {
        topic: frame.topic().as_str(),
        offset: delivery.offset,
        epoch: delivery.epoch,
        timestamp: delivery.timestamp,
        sender_id: delivery.sender_id,
        frame: &delivered,
    });
    assert!(std::str::from_utf8(&entry).is_ok());
});
