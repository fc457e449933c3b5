//! Properties of the §12 binary codec over generated frames: what is encoded decodes back,
//! no input makes the decoder panic, a frame cut short is refused, and the delivered frame
//! the hub builds keeps the publisher's frame apart from the fields the hub sets.

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use wshub_protocol::binary::{self, BinaryKind, Delivery, HEADER_LEN, HUB_KEYS};

const MAX: usize = 1 << 20;

fn kind() -> impl Strategy<Value = BinaryKind> {
    prop::sample::select(BinaryKind::ALL.to_vec())
}

fn topic() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_.:/@-]{1,64}"
}

/// JSON values a publisher might put in metadata, unicode and nesting included.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        "\\PC{0,16}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("\\PC{0,8}", inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A metadata object with a valid `topic`, optionally an `id`, and other members (which
/// may include the keys the hub sets).
fn metadata() -> impl Strategy<Value = Map<String, Value>> {
    let key = prop_oneof![
        "\\PC{0,12}",
        prop::sample::select(HUB_KEYS.to_vec()).prop_map(str::to_owned),
    ];
    (
        topic(),
        prop::option::of("[a-z0-9]{1,64}"),
        prop::collection::vec((key, json_value()), 0..6),
    )
        .prop_map(|(topic, id, extra)| {
            let mut map: Map<String, Value> = extra.into_iter().filter(|(k, _)| k != "topic" && k != "id").collect();
            map.insert("topic".to_owned(), Value::from(topic));
            if let Some(id) = id {
                map.insert("id".to_owned(), Value::from(id));
            }
            map
        })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..512)
}

fn valid_frame() -> impl Strategy<Value = Vec<u8>> {
    (kind(), metadata(), body())
        .prop_map(|(kind, metadata, body)| binary::encode_map(kind, &metadata, &body).expect("small metadata"))
}

proptest! {
    #[test]
    fn encode_then_decode_round_trips(kind in kind(), metadata in metadata(), body in body()) {
        let bytes = binary::encode_map(kind, &metadata, &body).expect("small metadata");
        let frame = binary::decode(&bytes, MAX).expect("an encoded frame decodes");
        prop_assert_eq!(frame.kind(), kind);
        prop_assert_eq!(frame.body(), &body[..]);
        prop_assert_eq!(frame.topic().as_str(), metadata["topic"].as_str().expect("topic"));
        let back: Map<String, Value> = serde_json::from_str(frame.metadata().get()).expect("JSON");
        prop_assert_eq!(&back, &metadata);
        let id = frame.request_id().map(|id| serde_json::from_str::<Value>(id.as_raw().get()).expect("JSON"));
        prop_assert_eq!(id.as_ref(), metadata.get("id"));
        let again = binary::encode(frame.kind(), frame.metadata(), frame.body()).expect("small");
        prop_assert_eq!(again, bytes);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256), max in 0usize..512) {
        let _ = binary::decode(&bytes, max);
    }

    #[test]
    fn a_plausible_header_over_arbitrary_bytes_never_panics(
        kind in 0u8..6,
        declared in prop_oneof![0u32..64, any::<u32>()],
        rest in prop::collection::vec(any::<u8>(), 0..128),
    ) {
        let mut bytes = vec![1, kind];
        bytes.extend_from_slice(&declared.to_be_bytes());
        bytes.extend_from_slice(&rest);
        let _ = binary::decode(&bytes, MAX);
    }

    #[test]
    fn mutated_valid_frames_never_panic(frame in valid_frame(), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut frame = frame;
        let i = at.index(frame.len());
        frame[i] = byte;
        if let Ok(decoded) = binary::decode(&frame, MAX) {
            // Whatever still decodes is a frame the hub can deliver.
            let delivery = Delivery { offset: 1, epoch: "e", id: "evt_1", timestamp: 2, sender_id: "u" };
            let delivered = binary::extend_metadata(&decoded, &delivery).expect("fits");
            prop_assert!(binary::decode(&delivered, MAX).is_ok());
        }
    }

    #[test]
    fn a_frame_cut_inside_its_header_or_metadata_is_refused(frame in valid_frame(), cut in any::<prop::sample::Index>()) {
        // The body has no length of its own (the WebSocket message delimits it), so a cut
        // inside the body is a shorter body; every cut before it must be refused.
        let metadata_len = usize::try_from(u32::from_be_bytes([frame[2], frame[3], frame[4], frame[5]])).expect("fits");
        let len = cut.index(HEADER_LEN + metadata_len);
        prop_assert!(binary::decode(&frame[..len], MAX).is_err(), "{} of {} bytes decoded", len, frame.len());
    }

    #[test]
    fn the_delivered_frame_keeps_the_publishers_frame_and_sets_the_hub_fields(
        frame in valid_frame(),
        offset in any::<u64>(),
        timestamp in any::<u64>(),
        epoch in "\\PC{1,16}",
        sender_id in "\\PC{0,32}",
    ) {
        let publish = binary::decode(&frame, MAX).expect("valid");
        let delivery = Delivery { offset, epoch: &epoch, id: "evt_0123456789", timestamp, sender_id: &sender_id };
        let delivered = binary::extend_metadata(&publish, &delivery).expect("fits");
        prop_assert_eq!(delivered.len(), publish.delivered_len(&delivery));
        prop_assert_eq!(delivered.len(), delivered.capacity());
        let back = binary::decode(&delivered, MAX).expect("the delivered frame decodes");
        prop_assert_eq!(back.kind(), publish.kind());
        prop_assert_eq!(back.body(), publish.body());
        prop_assert_eq!(back.topic(), publish.topic());
        let mut expected: Map<String, Value> = serde_json::from_str(publish.metadata().get()).expect("JSON");
        for key in HUB_KEYS {
            expected.remove(key);
        }
        let hub = json!({"offset": offset, "epoch": epoch, "id": "evt_0123456789", "timestamp": timestamp, "sender_id": sender_id});
        expected.extend(hub.as_object().expect("object").clone());
        let got: Map<String, Value> = serde_json::from_str(back.metadata().get()).expect("JSON");
        prop_assert_eq!(got, expected);
    }
}
