//! Connection lifecycle: heartbeat, limits, slow consumers, shutdown — through the real binary.

mod common;

use common::{Hub, WAIT, error_code, next_json};
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wshub_client::{Client, ClientError, Incoming};

/// A WebSocket client written by hand on a raw socket: it completes the handshake and
/// then never sends a byte, so it cannot answer Pings the way a library would.
async fn silent_client(addr: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("tcp connect");
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("send handshake");
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(stream.read_u8().await.expect("handshake response"));
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
    stream
}

/// Reads one server frame: (opcode, payload).
async fn read_frame(stream: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    let b0 = stream.read_u8().await.ok()?;
    let b1 = stream.read_u8().await.ok()?;
    let len = match b1 & 0x7f {
        126 => u64::from(stream.read_u16().await.ok()?),
        127 => stream.read_u64().await.ok()?,
        n => u64::from(n),
    };
    let mut payload = vec![0; len as usize];
    stream.read_exact(&mut payload).await.ok()?;
    Some((b0 & 0x0f, payload))
}

#[tokio::test]
async fn silent_client_is_pinged_then_closed_with_4000() {
    let hub = Hub::start("websocket:\n  ping_period: 300ms\n  pong_wait: 1s\n").await;
    let mut stream = silent_client(&hub.addr).await;
    let started = Instant::now();
    let mut pings = 0;
    let close = tokio::time::timeout(WAIT, async {
        loop {
            match read_frame(&mut stream).await {
                Some((0x9, _)) => pings += 1,
                Some((0x8, payload)) => return u16::from_be_bytes([payload[0], payload[1]]),
                Some(_) => {}
                None => panic!("connection dropped without a close frame"),
            }
        }
    })
    .await
    .expect("closed in time");
    assert_eq!(close, 4000);
    assert!(pings >= 2, "server pings every ping_period (saw {pings})");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "not before pong_wait: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_client_that_answers_pings_stays_connected_past_pong_wait() {
    let hub = Hub::start("websocket:\n  ping_period: 200ms\n  pong_wait: 600ms\n").await;
    let (mut client, _) = hub.connect("").await;
    // The client library answers Pings while it reads; nothing else arrives meanwhile.
    match client.next(Duration::from_millis(1500)).await {
        Err(ClientError::Timeout(_)) => {}
        other => panic!("expected silence, got {other:?}"),
    }
    let reply = client.request("ping", json!({}), WAIT).await.expect("still connected");
    assert_eq!(reply["type"], "pong");
}

#[tokio::test]
async fn oversize_inbound_message_closes_with_1009() {
    let hub = Hub::start("websocket:\n  max_message_size: 1KiB\n").await;
    let (mut client, _) = hub.connect("").await;
    let big = json!({"type": "publish", "topic": "t", "payload": {"blob": "x".repeat(2048)}});
    client.send_json(&big).await.expect("send");
    assert_eq!(client.closed(WAIT).await.expect("closed"), Some(1009));
}

#[tokio::test]
async fn oversize_outbound_reply_is_message_too_large() {
    let hub = Hub::start("websocket:\n  max_message_size: 1KiB\n").await;
    for n in 0..4 {
        hub.publish("big", "chunk", json!({"n": n, "blob": "y".repeat(400)}))
            .await;
    }
    let (mut client, _) = hub.connect("").await;
    let reply = client
        .request("history", json!({"topic": "big"}), WAIT)
        .await
        .expect("reply");
    assert_eq!(error_code(&reply), Some("message_too_large"));
    let reply = client.request("ping", json!({}), WAIT).await.expect("still open");
    assert_eq!(reply["type"], "pong");
}

#[tokio::test]
async fn a_publish_whose_event_would_exceed_the_limit_is_message_too_large() {
    let hub = Hub::start(&common::with_secret("websocket:\n  max_message_size: 1KiB\n")).await;
    let (mut admin, _) = hub.connect_as(&common::token("root", "admin", 600)).await;
    admin
        .request("subscribe", json!({"topic": "edge"}), WAIT)
        .await
        .expect("subscribed");
    // The request fits in 1 KiB, but the event adds id, offset, epoch, timestamp and sender.
    let reply = admin
        .request(
            "publish",
            json!({"topic": "edge", "payload": {"blob": "b".repeat(900)}}),
            WAIT,
        )
        .await
        .expect("reply");
    assert_eq!(error_code(&reply), Some("message_too_large"));
    let reply = admin
        .request(
            "publish",
            json!({"topic": "edge", "payload": {"blob": "b".repeat(500)}}),
            WAIT,
        )
        .await
        .expect("reply");
    assert_eq!(reply["type"], "published");
    let event = admin
        .next_of_type("message", WAIT)
        .await
        .expect("the smaller event is delivered");
    assert!(event.to_string().len() <= 1024);
}

#[tokio::test]
async fn max_connections_refuses_the_handshake_with_503() {
    let hub = Hub::start("websocket:\n  max_connections: 2\n").await;
    let (_a, _) = hub.connect("").await;
    let (_b, _) = hub.connect("").await;
    match Client::connect(&hub.ws_url("")).await {
        Err(ClientError::Refused { status, .. }) => assert_eq!(status, 503),
        Ok(_) => panic!("third connection accepted"),
        Err(other) => panic!("{other}"),
    }
}

#[tokio::test]
async fn overlong_client_id_gets_invalid_message_then_1008() {
    let hub = Hub::start("").await;
    let id = "c".repeat(129);
    let mut client = Client::connect(&hub.ws_url(&format!("client_id={id}")))
        .await
        .expect("connect");
    assert_eq!(error_code(&next_json(&mut client).await), Some("invalid_message"));
    assert_eq!(client.closed(WAIT).await.expect("closed"), Some(1008));
    let (_, ok) = hub.connect(&format!("client_id={}", "c".repeat(128))).await;
    assert_eq!(ok["payload"]["client_id"].as_str().map(str::len), Some(128));
}

#[tokio::test]
async fn origin_allow_list_is_exact() {
    let hub = Hub::start("websocket:\n  allowed_origins: [\"https://app.example.com\"]\n").await;
    let ok = Client::connect_request(&hub.ws_url(""), vec![("Origin", "https://app.example.com".into())]).await;
    assert!(ok.is_ok());
    for bad in [
        "https://evil.example.com",
        "https://app.example.com.evil.io",
        "http://app.example.com",
    ] {
        match Client::connect_request(&hub.ws_url(""), vec![("Origin", bad.into())]).await {
            Err(ClientError::Refused { status, .. }) => assert_eq!(status, 403, "{bad}"),
            _ => panic!("{bad} accepted"),
        }
    }
    assert!(
        Client::connect(&hub.ws_url("")).await.is_ok(),
        "no Origin header: not a browser, allowed"
    );
}

/// One subscriber never reads; it is closed as a slow consumer while another
/// subscriber of the same topic receives every message and the publisher is never blocked.
#[tokio::test]
async fn slow_consumer_is_closed_with_4008_and_others_get_everything() {
    let hub = Hub::start("websocket:\n  outbound_queue: 16\n  write_timeout: 2s\n").await;
    let (mut slow, _) = hub.connect("").await;
    let (mut fast, _) = hub.connect("").await;
    for client in [&mut slow, &mut fast] {
        client
            .request("subscribe", json!({"topic": "firehose"}), WAIT)
            .await
            .expect("subscribed");
    }
    const EVENTS: usize = 300;
    let blob = "z".repeat(64 * 1024);
    let reader = tokio::spawn(async move {
        let mut seen = 0u64;
        while seen < EVENTS as u64 {
            match fast.next(WAIT).await.expect("fast subscriber keeps receiving") {
                Incoming::Json(event) if event["type"] == "chunk" => {
                    seen += 1;
                    assert_eq!(event["offset"], seen, "in order, none missing");
                }
                Incoming::Closed(code) => panic!("fast subscriber closed: {code:?}"),
                _ => {}
            }
        }
        (seen, fast)
    });
    let started = Instant::now();
    for n in 0..EVENTS {
        hub.publish("firehose", "chunk", json!({"n": n, "blob": blob})).await;
    }
    let publishing = started.elapsed();
    let (seen, _fast) = reader.await.expect("reader");
    assert_eq!(seen, EVENTS as u64);
    // ~19 MiB went to a client that never read: far beyond its queue and socket buffers.
    match slow.closed(WAIT).await {
        Ok(code) => assert!(
            code == Some(4008) || code.is_none(),
            "slow consumer close code: {code:?}"
        ),
        Err(e) => panic!("slow consumer not closed: {e}"),
    }
    assert!(
        publishing < Duration::from_secs(30),
        "publisher was held up: {publishing:?}"
    );
    let (_, status) = hub.get("/ws/status").await;
    assert_eq!(
        status["topics"]["firehose"], 1,
        "the slow consumer left the topic: {status}"
    );
}

#[tokio::test]
async fn sigterm_flushes_queued_events_then_closes_1001_and_exits_0() {
    let mut hub = Hub::start("").await;
    let (mut client, _) = hub.connect("").await;
    client
        .request("subscribe", json!({"topic": "final"}), WAIT)
        .await
        .expect("subscribed");
    for n in 1..=50 {
        hub.publish("final", "tick", json!({"n": n})).await;
    }
    hub.terminate();
    let mut received = 0;
    loop {
        match client.next(WAIT).await.expect("message") {
            Incoming::Json(event) if event["type"] == "tick" => received += 1,
            Incoming::Closed(code) => {
                assert_eq!(code, Some(1001));
                break;
            }
            _ => {}
        }
    }
    assert_eq!(received, 50, "every queued event is flushed before the close");
    let status = tokio::time::timeout(WAIT, hub.child.wait())
        .await
        .expect("exits")
        .expect("status");
    assert!(status.success(), "exit status {status:?}");
}

/// While connections drain (here: a client that stopped reading holds its writer until
/// write_timeout), readiness is off and new upgrades are refused with 503.
#[tokio::test]
async fn draining_refuses_upgrades_and_reports_not_ready() {
    let mut hub = Hub::start("websocket:\n  write_timeout: 3s\n").await;
    let (mut stuck, _) = hub.connect("").await;
    stuck
        .request("subscribe", json!({"topic": "flood"}), WAIT)
        .await
        .expect("subscribed");
    let blob = "q".repeat(256 * 1024);
    for n in 0..40 {
        hub.publish("flood", "chunk", json!({"n": n, "blob": blob})).await;
    }
    let (status, _) = hub.get("/ready").await;
    assert_eq!(status, 200);
    hub.terminate();
    common::eventually("readiness off", || async { hub.get("/ready").await.0 == 503 }).await;
    match Client::connect(&hub.ws_url("")).await {
        Err(ClientError::Refused { status, .. }) => assert_eq!(status, 503),
        other => panic!("upgrade during drain: {:?}", other.map(|_| ())),
    }
    let status = tokio::time::timeout(WAIT, hub.child.wait())
        .await
        .expect("exits")
        .expect("status");
    assert!(status.success());
}
