//! The golden protocol fixtures (tests/fixtures/protocol), checked against the Rust side.
//!
//! The Python and TypeScript clients parse the same files (clients/*/tests), so the three
//! cannot drift apart silently: client requests go through the hub's own decoder, server
//! messages are re-encoded with the hub's own encoders and must come out equal, and the §12
//! binary frames are decoded to their expected JSON.

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use wshub_protocol::outbound::{self, EventView};
use wshub_protocol::{ErrorCode, Request, RequestId, decode_client_frame};

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

/// CONTRACT §12: `[version u8 = 1][kind u8][metadata length u32 BE][metadata JSON][body]`.
/// (The protocol crate has no binary codec yet; this is the reference the fixtures follow.)
fn decode_binary(frame: &[u8]) -> Result<Value, String> {
    let [version, kind, a, b, c, d, rest @ ..] = frame else {
        return Err("frame shorter than its 6-byte header".into());
    };
    if *version != 1 {
        return Err(format!("unsupported version {version}"));
    }
    let kind_name = match kind {
        0 => "raw",
        1 => "image",
        2 => "audio",
        3 => "file",
        other => return Err(format!("unknown kind {other}")),
    };
    let length = u32::from_be_bytes([*a, *b, *c, *d]) as usize;
    if length > rest.len() {
        return Err("metadata length past the end of the frame".into());
    }
    let (metadata, body) = rest.split_at(length);
    let metadata: Value = serde_json::from_slice(metadata).map_err(|e| format!("metadata is not valid JSON: {e}"))?;
    if !metadata.is_object() {
        return Err("metadata is not a JSON object".into());
    }
    Ok(
        json!({"version": version, "kind": kind, "kind_name": kind_name, "metadata": metadata, "body_base64": base64(body)}),
    )
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn binary_frames_decode_to_their_expected_json() {
    for case in cases("binary") {
        let file = str_of(&case, "file");
        let expected = json_file(str_of(&case, "decoded"));
        match decode_binary(&read(file)) {
            Ok(decoded) => assert_eq!(decoded, expected, "{file}"),
            Err(error) => assert!(expected.get("error").is_some(), "{file} failed to decode: {error}"),
        }
        if expected.get("error").is_some() {
            assert!(decode_binary(&read(file)).is_err(), "{file} must be refused");
        }
    }
}
