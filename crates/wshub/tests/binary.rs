//! Binary messages (CONTRACT §12) through the real binary: a client's binary publish relayed to
//! every subscriber as the same bytes, its refusals, `POST /api/publish/{topic}`, and binary
//! events in history, recovery, resumption and raw streams.

mod common;

use common::{Hub, WAIT, assert_api_error, error_code, next_json, token, with_secret};
use serde_json::value::RawValue;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Bytes;
use wshub_client::{Client, Incoming};
use wshub_protocol::binary::{self, BinaryKind};

/// Developers publish on `cams/*`; `locked` is admin-only; no rule matches anything else.
const CONFIG: &str = "websocket:
  max_message_size: 64KiB
topics:
  - { match: \"cams/*\", subscribe: [anonymous, developer], publish: [developer] }
  - { match: locked, subscribe: [anonymous, developer], publish: [admin] }
";
const MAX: usize = 64 << 10;

async fn start() -> Hub {
    Hub::start(&with_secret(CONFIG)).await
}

/// A connection allowed to publish on `cams/*`, as user `cam-operator`.
async fn publisher(hub: &Hub) -> Client {
    hub.connect_as(&token("cam-operator", "developer", 3600)).await.0
}

async fn subscriber(hub: &Hub, topic: &str) -> Client {
    let (mut client, _) = hub.connect("").await;
    let reply = client
        .request("subscribe", json!({"topic": topic}), WAIT)
        .await
        .expect("subscribe reply");
    assert_eq!(reply["type"], "subscribed", "{reply}");
    client
}

/// A small valid PNG: a `size`×`size` grayscale gradient, uncompressed (a stored deflate block).
fn png(size: u8) -> Vec<u8> {
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &byte in bytes {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&u32::try_from(data.len()).expect("small").to_be_bytes());
        let start = out.len();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let crc = crc32(&out[start..]);
        out.extend_from_slice(&crc.to_be_bytes());
    }
    let side = u32::from(size);
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&side.to_be_bytes());
    ihdr.extend_from_slice(&side.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]); // 8-bit grayscale, deflate, no filter, no interlace
    // Each row: filter type 0, then one byte per pixel.
    let raw: Vec<u8> = (0..size)
        .flat_map(|y| std::iter::once(0).chain((0..size).map(move |x| x.wrapping_mul(16) ^ y.wrapping_mul(8))))
        .collect();
    let len = u16::try_from(raw.len()).expect("one stored block");
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in &raw {
        a = (a + u32::from(byte)) % 65_521;
        b = (b + a) % 65_521;
    }
    let mut idat = vec![0x78, 0x01, 0x01];
    idat.extend_from_slice(&len.to_le_bytes());
    idat.extend_from_slice(&(!len).to_le_bytes());
    idat.extend_from_slice(&raw);
    idat.extend_from_slice(&((b << 16) | a).to_be_bytes());
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &idat);
    chunk(&mut out, b"IEND", &[]);
    out
}

/// The PNG as a file on disk, read back: what a camera uploader would send.
fn image_file() -> Vec<u8> {
    let path =
        std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("wshub-{}-relay.png", std::process::id()));
    std::fs::write(&path, png(16)).expect("write the image");
    std::fs::read(&path).expect("read the image back")
}

/// A §12 frame, encoded with the protocol crate's codec.
fn frame(kind: BinaryKind, metadata: &str, body: &[u8]) -> Vec<u8> {
    let metadata = RawValue::from_string(metadata.to_owned()).expect("JSON metadata");
    binary::encode(kind, &metadata, body).expect("encodes")
}

/// A frame with any header bytes and metadata text, for malformed variants.
fn raw_frame(version: u8, kind: u8, metadata: &[u8], body: &[u8]) -> Vec<u8> {
    let mut out = vec![version, kind];
    out.extend_from_slice(&u32::try_from(metadata.len()).expect("small").to_be_bytes());
    out.extend_from_slice(metadata);
    out.extend_from_slice(body);
    out
}

async fn next_binary(client: &mut Client) -> Bytes {
    match client.next(WAIT).await.expect("a message") {
        Incoming::Binary(bytes) => bytes,
        other => panic!("expected a binary frame, got {other:?}"),
    }
}

/// A delivered frame's metadata as JSON.
fn metadata_of(frame: &[u8]) -> Value {
    let decoded = binary::decode(frame, usize::MAX).expect("the hub delivers valid frames");
    serde_json::from_str(decoded.metadata().get()).expect("JSON")
}

async fn ping(client: &mut Client) {
    let reply = client.request("ping", json!({}), WAIT).await.expect("pong");
    assert_eq!(reply["type"], "pong", "{reply}");
}

#[tokio::test]
async fn an_image_reaches_every_subscriber_as_the_same_bytes() {
    let hub = start().await;
    let image = image_file();
    let mut subscribers = Vec::new();
    for _ in 0..3 {
        subscribers.push(subscriber(&hub, "cams/1").await);
    }
    let mut camera = publisher(&hub).await;
    let metadata =
        r#"{"topic":"cams/1","id":"up1","format":"png","width":16,"height":16,"sender_id":"forged","note":"✓ relay"}"#;
    camera
        .send_binary(frame(BinaryKind::Image, metadata, &image))
        .await
        .expect("send");
    let reply = camera.reply_to("up1", WAIT).await.expect("published");
    assert_eq!(reply["type"], "published", "{reply}");
    let offset = reply["payload"]["offset"].as_u64().expect("offset");
    let epoch = reply["payload"]["epoch"].as_str().expect("epoch").to_owned();
    assert_eq!(offset, 1);

    let mut received = Vec::new();
    for subscriber in &mut subscribers {
        received.push(next_binary(subscriber).await);
    }
    assert!(
        received.iter().all(|r| *r == received[0]),
        "every subscriber gets the same bytes"
    );
    let delivered = binary::decode(&received[0], usize::MAX).expect("a valid frame");
    assert_eq!(delivered.kind(), BinaryKind::Image);
    assert_eq!(delivered.body(), image, "the body byte for byte");
    assert!(delivered.body().starts_with(b"\x89PNG\r\n\x1a\n"));
    let text = delivered.metadata().get();
    assert!(
        text.starts_with(
            r#"{"topic":"cams/1","format":"png","width":16,"height":16,"note":"✓ relay","offset":1,"epoch":"#
        ),
        "the publisher's keys first, as sent, then the hub's: {text}"
    );
    let metadata = metadata_of(&received[0]);
    assert_eq!(metadata["offset"], offset);
    assert_eq!(metadata["epoch"], epoch.as_str());
    assert_eq!(metadata["sender_id"], "cam-operator", "a forged sender_id is replaced");
    assert_eq!(metadata["width"], 16, "numbers stay numbers");
    let id = metadata["id"].as_str().expect("id");
    assert!(id.starts_with("evt_"), "the hub's own id, not the request id: {id}");
    assert!(metadata["timestamp"].as_u64().is_some_and(|t| t > 1_700_000_000_000));

    // Without an `id` the publish is not answered; it is delivered all the same.
    camera
        .send_binary(frame(BinaryKind::Raw, r#"{"topic":"cams/1"}"#, b"no reply"))
        .await
        .expect("send");
    ping(&mut camera).await;
    for subscriber in &mut subscribers {
        let second = next_binary(subscriber).await;
        assert_eq!(metadata_of(&second)["offset"], 2);
    }
}

#[tokio::test]
async fn publishing_needs_the_topic_rules_permission() {
    let hub = start().await;
    let mut camera = publisher(&hub).await;
    for (topic, code) in [("locked", "forbidden"), ("elsewhere", "unknown_channel")] {
        let metadata = format!(r#"{{"topic":"{topic}","id":"p-{topic}"}}"#);
        camera
            .send_binary(frame(BinaryKind::Raw, &metadata, b"x"))
            .await
            .expect("send");
        let reply = camera.reply_to(&format!("p-{topic}"), WAIT).await.expect("reply");
        assert_eq!(error_code(&reply), Some(code), "{topic}: {reply}");
    }
    let (mut anonymous, _) = hub.connect("").await;
    anonymous
        .send_binary(frame(BinaryKind::Raw, r#"{"topic":"cams/1","id":"a1"}"#, b"x"))
        .await
        .expect("send");
    let reply = anonymous.reply_to("a1", WAIT).await.expect("reply");
    assert_eq!(error_code(&reply), Some("forbidden"), "{reply}");
}

#[tokio::test]
async fn malformed_frames_are_invalid_messages_and_the_connection_goes_on() {
    let hub = start().await;
    let mut watcher = subscriber(&hub, "cams/1").await;
    let mut camera = publisher(&hub).await;
    let meta = br#"{"topic":"cams/1","id":"m"}"#;
    let mut past_end = raw_frame(1, 0, meta, b"");
    past_end[2..6].copy_from_slice(&1000u32.to_be_bytes());
    let variants: Vec<(&str, Vec<u8>)> = vec![
        ("bad version", raw_frame(2, 0, meta, b"body")),
        ("unknown kind", raw_frame(1, 9, meta, b"body")),
        ("metadata past the end", past_end),
        ("metadata not JSON", raw_frame(1, 0, b"{topic: cams/1}", b"body")),
        ("metadata not an object", raw_frame(1, 0, b"[\"cams/1\"]", b"")),
        ("no topic", raw_frame(1, 1, br#"{"format":"png"}"#, b"body")),
        ("truncated header", vec![1, 0, 0]),
    ];
    for (what, bytes) in variants {
        camera.send_binary(bytes).await.expect("send");
        let reply = next_json(&mut camera).await;
        assert_eq!(error_code(&reply), Some("invalid_message"), "{what}: {reply}");
        assert!(
            reply["payload"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("binary frame")),
            "{what}: {reply}"
        );
        ping(&mut camera).await;
    }
    // Nothing malformed reached the subscriber; a valid frame still does.
    camera
        .send_binary(frame(BinaryKind::Raw, r#"{"topic":"cams/1"}"#, b"ok"))
        .await
        .expect("send");
    let delivered = next_binary(&mut watcher).await;
    assert_eq!(metadata_of(&delivered)["offset"], 1);
}

#[tokio::test]
async fn binary_publishes_share_the_default_rate_limit_bucket() {
    let config = format!("{CONFIG}rate_limits:\n  default: {{ capacity: 2, refill_per_sec: 0.01 }}\n");
    let hub = Hub::start(&with_secret(&config)).await;
    let mut camera = publisher(&hub).await;
    for n in 1..=3 {
        let metadata = format!(r#"{{"topic":"cams/1","id":"r{n}"}}"#);
        camera
            .send_binary(frame(BinaryKind::Raw, &metadata, b"x"))
            .await
            .expect("send");
        let reply = camera.reply_to(&format!("r{n}"), WAIT).await.expect("reply");
        let expected = if n <= 2 { None } else { Some("rate_limited") };
        assert_eq!(error_code(&reply), expected, "publish {n}: {reply}");
    }
}

#[tokio::test]
async fn http_publish_wraps_the_body_with_the_query_as_metadata() {
    let hub = start().await;
    let mut watcher = subscriber(&hub, "cams/2").await;
    let image = png(8);
    let (status, answer) = hub
        .send(
            "POST",
            "/api/publish/cams/2?kind=image&format=png&width=8&height=8&label=007&scale=0.5",
            &[],
            Some(("application/octet-stream", image.clone())),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["topic"], "cams/2");
    assert_eq!(answer["offset"], 1);
    let epoch = answer["epoch"].as_str().expect("epoch").to_owned();

    let delivered = next_binary(&mut watcher).await;
    let decoded = binary::decode(&delivered, usize::MAX).expect("valid");
    assert_eq!(decoded.kind(), BinaryKind::Image);
    assert_eq!(decoded.body(), image);
    let metadata = metadata_of(&delivered);
    assert_eq!(metadata["topic"], "cams/2");
    assert_eq!(metadata["format"], "png");
    assert_eq!(metadata["width"], 8, "a number in the query is a JSON number");
    assert_eq!(metadata["height"], 8);
    assert_eq!(metadata["scale"], 0.5);
    assert_eq!(metadata["label"], "007", "not a JSON number: a string");
    assert_eq!(metadata["sender_id"], "server");
    assert_eq!(metadata["epoch"], epoch.as_str());
    assert!(metadata.get("kind").is_none(), "kind is the kind byte");

    // `kind` defaults to raw.
    let (status, _) = hub
        .send(
            "POST",
            "/api/publish/cams/2",
            &[],
            Some(("application/octet-stream", b"raw".to_vec())),
        )
        .await;
    assert_eq!(status, 200);
    let raw = next_binary(&mut watcher).await;
    assert_eq!(binary::decode(&raw, usize::MAX).expect("valid").kind(), BinaryKind::Raw);

    let octets = |n: usize| Some(("application/octet-stream", vec![7u8; n]));
    let over = hub.send("POST", "/api/publish/cams/2", &[], octets(MAX + 1)).await;
    assert_api_error("a body over max_message_size", &over, 413);
    let grown = hub.send("POST", "/api/publish/cams/2", &[], octets(MAX - 16)).await;
    assert_api_error("a frame that outgrows max_message_size", &grown, 413);
    let kind = hub.send("POST", "/api/publish/cams/2?kind=video", &[], octets(4)).await;
    assert_api_error("an unknown kind", &kind, 400);
    let unknown = hub.send("POST", "/api/publish/elsewhere", &[], octets(4)).await;
    assert_api_error("a topic no rule matches", &unknown, 404);
    assert_eq!(unknown.1["error"]["code"], "unknown_channel");
    let twice = hub.send("POST", "/api/publish/cams/2?w=1&w=2", &[], octets(4)).await;
    assert_api_error("a parameter given twice", &twice, 400);
    // None of the refused ones was delivered: the next frame is a new publish's.
    hub.send("POST", "/api/publish/cams/2?n=3", &[], octets(1)).await;
    assert_eq!(metadata_of(&next_binary(&mut watcher).await)["n"], 3);
}

#[tokio::test]
async fn history_lists_a_binary_event_with_its_delivered_frame() {
    let hub = start().await;
    let mut watcher = subscriber(&hub, "cams/3").await;
    let mut camera = publisher(&hub).await;
    hub.publish("cams/3", "note", json!({"n": 1})).await;
    camera
        .send_binary(frame(
            BinaryKind::Image,
            r#"{"topic":"cams/3","format":"png"}"#,
            &png(4),
        ))
        .await
        .expect("send");
    assert_eq!(next_json(&mut watcher).await["type"], "note");
    let delivered = next_binary(&mut watcher).await;

    let reply = watcher
        .request("history", json!({"topic": "cams/3"}), WAIT)
        .await
        .expect("history");
    let over_http = hub.get("/api/history/cams/3").await;
    assert_eq!(over_http.0, 200, "{}", over_http.1);
    for messages in [&reply["payload"]["messages"], &over_http.1["messages"]] {
        let messages = messages.as_array().expect("messages");
        assert_eq!(messages.len(), 2, "{messages:?}");
        assert_eq!(messages[0]["type"], "note");
        let entry = &messages[1];
        let metadata = metadata_of(&delivered);
        assert_eq!(entry["type"], "binary");
        assert_eq!(entry["topic"], "cams/3");
        assert_eq!(entry["offset"], 2);
        assert_eq!(entry["epoch"], metadata["epoch"]);
        assert_eq!(entry["timestamp"], metadata["timestamp"]);
        assert_eq!(entry["sender_id"], "cam-operator");
        let b64 = entry["frame_b64"].as_str().expect("frame_b64");
        let frame = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b64).expect("base64");
        assert_eq!(frame, delivered, "exactly the delivered frame");
    }
}

#[tokio::test]
async fn recovery_replays_a_binary_event_as_a_binary_frame() {
    let hub = start().await;
    let mut first = subscriber(&hub, "cams/4").await;
    let mut camera = publisher(&hub).await;
    hub.publish("cams/4", "note", json!({"n": 1})).await;
    camera
        .send_binary(frame(
            BinaryKind::Raw,
            r#"{"topic":"cams/4","id":"b"}"#,
            b"\x00\x01\x02",
        ))
        .await
        .expect("send");
    camera.reply_to("b", WAIT).await.expect("published");
    hub.publish("cams/4", "note", json!({"n": 3})).await;
    let epoch = next_json(&mut first).await["epoch"].clone();
    let live = next_binary(&mut first).await;

    let (mut late, _) = hub.connect("").await;
    let reply = late
        .request(
            "subscribe",
            json!({"topic": "cams/4", "payload": {"recover": {"epoch": epoch, "offset": 0}}}),
            WAIT,
        )
        .await
        .expect("subscribed");
    assert_eq!(reply["payload"]["subscribed"][0]["recovered"], true, "{reply}");
    assert_eq!(next_json(&mut late).await["offset"], 1);
    assert_eq!(next_binary(&mut late).await, live, "the same frame, as a binary frame");
    assert_eq!(next_json(&mut late).await["offset"], 3);
}

#[tokio::test]
async fn a_resumed_session_replays_a_missed_binary_event() {
    let hub = start().await;
    let (mut old, _) = hub.connect_as(&token("viewer-1", "developer", 3600)).await;
    let reply = old
        .request("subscribe", json!({"topic": "cams/5"}), WAIT)
        .await
        .expect("subscribed");
    assert_eq!(reply["type"], "subscribed");
    let resume = old
        .request("get_reconnection_token", json!({}), WAIT)
        .await
        .expect("token");
    let resume = resume["payload"]["token"].as_str().expect("token").to_owned();
    old.close(1000).await.expect("close");
    assert_eq!(old.closed(WAIT).await.expect("closed"), Some(1000));

    let mut camera = publisher(&hub).await;
    camera
        .send_binary(frame(BinaryKind::Audio, r#"{"topic":"cams/5","id":"a"}"#, b"pcm"))
        .await
        .expect("send");
    camera.reply_to("a", WAIT).await.expect("published");

    let (mut new, established) = hub.connect(&format!("reconnection_token={resume}")).await;
    assert_eq!(established["payload"]["resumed"], true, "{established}");
    let replayed = next_binary(&mut new).await;
    let decoded = binary::decode(&replayed, usize::MAX).expect("valid");
    assert_eq!((decoded.kind(), decoded.body()), (BinaryKind::Audio, &b"pcm"[..]));
    assert_eq!(metadata_of(&replayed)["offset"], 1);
}

#[tokio::test]
async fn a_raw_stream_sends_a_binary_event_as_its_frame() {
    let hub = start().await;
    let mut stream = Client::connect(&format!("ws://{}/ws/stream/cams/6", hub.addr))
        .await
        .expect("raw stream");
    common::eventually("the raw stream's subscription", || async {
        hub.get("/ws/status").await.1["topics"]["cams/6"] == 1
    })
    .await;
    hub.publish("cams/6", "note", json!({"n": 1})).await;
    let mut watcher = subscriber(&hub, "cams/6").await;
    let mut camera = publisher(&hub).await;
    camera
        .send_binary(frame(
            BinaryKind::File,
            r#"{"topic":"cams/6","name":"a.bin"}"#,
            b"\xde\xad",
        ))
        .await
        .expect("send");
    assert_eq!(
        next_json(&mut stream).await,
        json!({"n": 1}),
        "a JSON event: its payload alone"
    );
    let on_stream = next_binary(&mut stream).await;
    assert_eq!(on_stream, next_binary(&mut watcher).await, "the same frame as on /ws");
    assert_eq!(metadata_of(&on_stream)["name"], "a.bin");
}
