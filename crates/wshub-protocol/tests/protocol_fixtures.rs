//! The golden protocol fixtures (tests/fixtures/protocol), checked against the Rust side.
//!
//! The Python and TypeScript clients parse the same files (clients/*/tests), so the three
//! cannot drift apart silently: client requests go through the hub's own decoder, server
//! messages are re-encoded with the hub's own encoders and must come out equal, and the §12
//! binary frames go through the hub's binary codec (decode, encode, extend, history form).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use wshub_protocol::binary::{self, Delivery, HistoryView};
use wshub_protocol::outbound::{self, EventView};
use wshub_protocol::{BinaryError, ErrorCode, Request, RequestId, decode_client_frame};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/protocol")
}

fn read(file: &str) -> Vec<u8> {
    std::fs::read(fixtures().join(file)).unwrap_or_else(|e| panic!("read {file}: {e}"))
}

fn json_file(file: &str) -> Value {
    serde_json::from_slice(&read(file)).unwrap_or_else(|e| panic!("{file} is not JSON: {e}"))
}

fn cases(section: &str) -> Vec<Value> {
    json_file("cases.json")[section]
        .as_array()
        .unwrap_or_else(|| panic!("cases.json has no {section} list"))
        .clone()
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} is not a string in {v}"))
}

/// A `RequestId` as the decoder makes it from a raw JSON id (string or number).
fn request_id(raw: &Value) -> Option<RequestId> {
    if raw.is_null() {
        return None;
    }
    let frame = json!({"id": raw, "type": "ping"}).to_string();
    decode_client_frame(frame.as_bytes()).expect("a ping decodes").id
}

fn raw(v: &Value) -> Box<serde_json::value::RawValue> {
    serde_json::value::to_raw_value(v).expect("a JSON value")
}

#[test]
fn client_requests_decode_as_expected() {
    for case in cases("client") {
        let file = str_of(&case, "file");
        let frame = decode_client_frame(&read(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let want = &case["rust"];
        let id = frame.id.as_ref().expect("every fixture request has an id");
        assert_eq!(id.as_raw().get(), json!(case["id"]).to_string(), "{file}: id");
        assert_eq!(frame.request.kind(), str_of(want, "kind"), "{file}: kind");
        let topics = |t: &[String]| assert_eq!(json!(t), want["topics"], "{file}: topics");
        match &frame.request {
            Request::Subscribe { topics: t, recover } => {
                topics(t);
                let recover = recover.as_ref().map(|r| json!({"epoch": r.epoch, "offset": r.offset}));
                assert_eq!(recover.unwrap_or(Value::Null), want["recover"], "{file}: recover");
            }
            Request::Unsubscribe { topics: t } => topics(t),
            Request::Publish { topic, event, payload } => {
                assert_eq!(topic, str_of(want, "topic"), "{file}");
                assert_eq!(event.as_str(), str_of(want, "event"), "{file}");
                let payload: Value = serde_json::from_str(payload.get()).expect("payload is JSON");
                assert_eq!(payload, want["payload"], "{file}");
            }
            Request::Auth { token } => assert_eq!(token, str_of(want, "token"), "{file}"),
            Request::History { topic, since, limit } => {
                assert_eq!(topic, str_of(want, "topic"), "{file}");
                assert_eq!(json!(since), want["since"], "{file}");
                assert_eq!(json!(limit), want["limit"], "{file}");
            }
            Request::Presence { topic } => assert_eq!(topic, str_of(want, "topic"), "{file}"),
            Request::Other { payload, .. } => {
                let payload: Value = payload
                    .as_ref()
                    .map(|p| serde_json::from_str(p.get()).expect("payload is JSON"))
                    .unwrap_or(Value::Null);
                assert_eq!(payload, want["payload"], "{file}");
            }
            Request::Ping | Request::GetReconnectionToken => {}
        }
    }
}

#[test]
fn server_messages_are_what_the_hub_encodes() {
    for case in cases("server") {
        let file = str_of(&case, "file");
        let message = json_file(file);
        let expect = &case["expect"];
        let timestamp = message["timestamp"]
            .as_u64()
            .unwrap_or_else(|| panic!("{file}: every server message has an integer timestamp"));
        let encoded = match str_of(&case, "kind") {
            "event" => {
                for key in [
                    "type",
                    "topic",
                    "payload",
                    "id",
                    "offset",
                    "epoch",
                    "timestamp",
                    "sender_id",
                ] {
                    assert_eq!(message[key], expect[key], "{file}: {key}");
                }
                assert!(
                    str_of(&message, "id").starts_with("evt_"),
                    "{file}: event ids start with evt_"
                );
                let payload = raw(&message["payload"]);
                outbound::event(&EventView {
                    kind: str_of(&message, "type"),
                    topic: str_of(&message, "topic"),
                    payload: &payload,
                    id: str_of(&message, "id"),
                    offset: message["offset"].as_u64().expect("offset"),
                    epoch: str_of(&message, "epoch"),
                    timestamp,
                    sender_id: str_of(&message, "sender_id"),
                })
            }
            "error" => {
                let payload = &message["payload"];
                let code = str_of(payload, "code");
                assert_eq!(code, str_of(expect, "code"), "{file}");
                assert_eq!(
                    message.get("id").cloned().unwrap_or(Value::Null),
                    expect["id"],
                    "{file}: id"
                );
                let Some(code) = ErrorCode::from_wire(code) else {
                    // A code from a newer hub: clients fall back to their generic error.
                    assert_eq!(str_of(expect, "error_class"), "WshubError", "{file}");
                    continue;
                };
                outbound::error(
                    request_id(&message["id"]).as_ref(),
                    code,
                    str_of(payload, "message"),
                    payload["retry_after"].as_f64(),
                    timestamp,
                )
            }
            kind @ ("reply" | "established") => {
                if kind == "reply" {
                    assert_eq!(
                        message.get("id").cloned().unwrap_or(Value::Null),
                        expect["id"],
                        "{file}: id"
                    );
                    assert_eq!(message["type"], expect["type"], "{file}: type");
                } else {
                    assert_eq!(message["type"], "connection.established", "{file}");
                    assert_eq!(message["payload"]["resumed"], expect["resumed"], "{file}");
                    assert_eq!(message["payload"]["connection_id"], expect["connection_id"], "{file}");
                }
                outbound::reply(
                    request_id(message.get("id").unwrap_or(&Value::Null)).as_ref(),
                    str_of(&message, "type"),
                    &message["payload"],
                    timestamp,
                )
            }
            other => panic!("{file}: unknown kind {other}"),
        };
        let encoded: Value = serde_json::from_slice(&encoded).expect("the hub encodes JSON");
        assert_eq!(encoded, message, "{file}: the hub's encoder gives another message");
    }
}

/// The hub's decoder, in the shape `binary/*.json` describe a decoded frame.
fn decode_binary(frame: &[u8]) -> Result<Value, BinaryError> {
    let decoded = binary::decode(frame, MAX_SIZE)?;
    let metadata: Value = serde_json::from_str(decoded.metadata().get()).expect("decoded metadata is JSON");
    Ok(json!({
        "version": binary::VERSION,
        "kind": decoded.kind().as_u8(),
        "kind_name": decoded.kind().name(),
        "metadata": metadata,
        "body_base64": STANDARD.encode(decoded.body()),
    }))
}

const MAX_SIZE: usize = 1 << 20;

#[test]
fn binary_frames_decode_to_their_expected_json() {
    for case in cases("binary") {
        let file = str_of(&case, "file");
        let bytes = read(file);
        let expected = json_file(str_of(&case, "decoded"));
        if let Some(why) = expected.get("error") {
            let error = decode_binary(&bytes).expect_err(&format!("{file} must be refused"));
            let why = why.as_str().expect("error is a string");
            assert!(error.to_string().starts_with(why), "{file}: {error} is not {why:?}");
            assert_eq!(error.code(), ErrorCode::InvalidMessage, "{file}");
            continue;
        }
        let decoded = decode_binary(&bytes).unwrap_or_else(|e| panic!("{file} failed to decode: {e}"));
        assert_eq!(decoded, expected, "{file}");
        // The encoder writes the same bytes back (the metadata is kept verbatim).
        let frame = binary::decode(&bytes, MAX_SIZE).expect("decoded above");
        let encoded = binary::encode(frame.kind(), frame.metadata(), frame.body()).expect("small");
        assert_eq!(encoded, bytes, "{file}: encode(decode(frame)) differs");
    }
}

/// The delivered frames among the fixtures are exactly what the hub builds from them.
#[test]
fn delivered_binary_frames_are_what_the_hub_builds() {
    let mut delivered = 0;
    for case in cases("binary") {
        let file = str_of(&case, "file");
        let bytes = read(file);
        let Ok(frame) = binary::decode(&bytes, MAX_SIZE) else {
            continue;
        };
        let metadata: Value = serde_json::from_str(frame.metadata().get()).expect("JSON");
        if metadata.get("offset").is_none() {
            // A client's publish: it carries the request id its `published` reply echoes.
            assert_eq!(
                frame.request_id().map(|id| id.as_raw().get()),
                Some(r#""b1""#),
                "{file}"
            );
            continue;
        }
        delivered += 1;
        let delivery = Delivery {
            offset: metadata["offset"].as_u64().expect("offset"),
            epoch: str_of(&metadata, "epoch"),
            id: str_of(&metadata, "id"),
            timestamp: metadata["timestamp"].as_u64().expect("timestamp"),
            sender_id: str_of(&metadata, "sender_id"),
        };
        let rebuilt = binary::extend_metadata(&frame, &delivery).expect("fits");
        assert_eq!(rebuilt, bytes, "{file}: the hub would deliver other bytes");
        let entry = binary::history_entry(&HistoryView {
            topic: frame.topic().as_str(),
            offset: delivery.offset,
            epoch: delivery.epoch,
            timestamp: delivery.timestamp,
            sender_id: delivery.sender_id,
            frame: &rebuilt,
        });
        let entry: Value = serde_json::from_slice(&entry).expect("JSON");
        assert_eq!(entry["type"], "binary", "{file}");
        for key in ["topic", "offset", "epoch", "timestamp", "sender_id"] {
            assert_eq!(entry[key], metadata[key], "{file}: {key}");
        }
        let frame_b64 = entry["frame_b64"].as_str().expect("frame_b64");
        assert_eq!(STANDARD.decode(frame_b64).expect("base64"), bytes, "{file}");
    }
    assert!(delivered >= 4, "the fixtures hold delivered frames");
}
