//! The plain HTTP endpoints of CONTRACT §1 and the WebSocket handshake itself, through the
//! real binary: probes, status, unknown paths, the upgrade, a configured path, and
//! `handshake_timeout`.

mod common;

use common::{Hub, WAIT, assert_api_error, next_json};
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wshub_client::{Client, ClientError};

/// The key and accept value from RFC 6455 §1.3, as in the contract's curl line.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// Reads an HTTP response head (through the blank line).
async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    tokio::time::timeout(WAIT, async {
        while !head.ends_with(b"\r\n\r\n") {
            head.push(stream.read_u8().await.expect("response head"));
        }
    })
    .await
    .expect("response head in time");
    String::from_utf8(head).expect("UTF-8 head")
}

/// A header's value in a response head (names are case-insensitive).
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Reads until the server closes the connection; returns when, or `None` if it stayed open
/// for `bound`.
async fn eof_within(stream: &mut TcpStream, bound: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut sink = Vec::new();
    tokio::time::timeout(bound, stream.read_to_end(&mut sink))
        .await
        .ok()
        .map(|_| started.elapsed())
}

#[tokio::test]
async fn health_and_ready() {
    let hub = Hub::start("").await;
    let (status, body) = hub.get("/health").await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"status": "ok"}));
    let (status, _) = hub.get("/ready").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn ws_health_reports_broker_uptime_and_live_connection_count() {
    let hub = Hub::start("").await;
    let (status, body) = hub.get("/ws/health").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ok");
    assert_eq!(body["broker"], "ok");
    assert_eq!(body["connections"], 0);
    assert!(body["uptime_seconds"].is_u64(), "{body}");

    let connections = || async { hub.get("/ws/health").await.1["connections"].clone() };
    let (first, _) = hub.connect("").await;
    let (second, _) = hub.connect("").await;
    common::eventually("2 connections", || async { connections().await == 2 }).await;
    drop(first);
    common::eventually("1 connection", || async { connections().await == 1 }).await;
    drop(second);
    common::eventually("0 connections", || async { connections().await == 0 }).await;
}

#[tokio::test]
async fn ws_status_reports_node_topics_broker_and_configured_limits() {
    let hub = Hub::start(
        "websocket:\n  max_connections: 1234\n  max_connections_per_ip: 321\n  max_subscriptions_per_connection: 77\n",
    )
    .await;
    let (mut a, established) = hub.connect("").await;
    let (mut b, _) = hub.connect("").await;
    for (client, topics) in [(&mut a, json!(["alpha", "beta"])), (&mut b, json!(["alpha"]))] {
        let reply = client
            .request("subscribe", json!({"topics": topics}), WAIT)
            .await
            .expect("reply");
        assert_eq!(reply["type"], "subscribed", "{reply}");
    }

    let (status, s) = hub.get("/ws/status").await;
    assert_eq!(status, 200, "{s}");
    assert_eq!(s["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(s["version"], established["payload"]["server"]["version"]);
    assert!(s["node"].as_str().is_some_and(|n| !n.is_empty()), "{s}");
    assert_eq!(s["node"], established["payload"]["server"]["node"]);
    assert!(s["uptime_seconds"].is_u64(), "{s}");
    assert_eq!(s["connections"], 2);
    assert_eq!(s["subscriptions"], 3);
    assert_eq!(s["topics"], json!({"alpha": 2, "beta": 1}));
    assert_eq!(s["broker"], json!({"kind": "memory", "state": "ok"}));
    let limits = &s["limits"];
    assert!(limits.is_object(), "{s}");
    assert_eq!(limits["max_connections"], 1234);
    assert_eq!(limits["max_connections_per_ip"], 321);
    assert_eq!(limits["max_subscriptions_per_connection"], 77);
}

#[tokio::test]
async fn unknown_path_is_a_json_404() {
    let hub = Hub::start("").await;
    for path in ["/nope", "/api/nope", "/ws/nope/deeper"] {
        let answer = hub.get(path).await;
        assert_api_error(path, &answer, 404);
    }
}

#[tokio::test]
async fn the_contract_curl_upgrade_gets_101_with_the_rfc_accept_key() {
    let hub = Hub::start("").await;
    let mut stream = TcpStream::connect(&hub.addr).await.expect("tcp connect");
    // Byte for byte what `curl -i -N -H … http://HOST/ws` sends.
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: {}\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {KEY}\r\n\r\n",
        hub.addr
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 101 Switching Protocols\r\n"), "{head}");
    assert_eq!(header(&head, "sec-websocket-accept"), Some(ACCEPT), "{head}");
    assert!(
        header(&head, "upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket")),
        "{head}"
    );
    // The first frame is the unmasked text frame carrying connection.established.
    let b0 = stream.read_u8().await.expect("frame");
    assert_eq!(b0 & 0x0f, 0x1, "a text frame");
    let len = match stream.read_u8().await.expect("length") & 0x7f {
        126 => usize::from(stream.read_u16().await.expect("length")),
        127 => usize::try_from(stream.read_u64().await.expect("length")).expect("fits"),
        n => usize::from(n),
    };
    let mut payload = vec![0; len];
    stream.read_exact(&mut payload).await.expect("payload");
    let first: serde_json::Value = serde_json::from_slice(&payload).expect("JSON");
    assert_eq!(first["type"], "connection.established");
}

#[tokio::test]
async fn a_plain_get_on_the_websocket_path_is_a_client_error() {
    let hub = Hub::start("").await;
    let (status, body) = hub.get("/ws").await;
    assert!((400..500).contains(&status), "plain GET /ws: {status} {body}");
}

#[tokio::test]
async fn a_configured_websocket_path_serves_the_protocol() {
    let hub = Hub::start("websocket:\n  path: /realtime\n").await;
    let mut client = Client::connect(&format!("ws://{}/realtime", hub.addr))
        .await
        .expect("connect to the configured path");
    let first = next_json(&mut client).await;
    assert_eq!(first["type"], "connection.established");
    let reply = client.request("ping", json!({}), WAIT).await.expect("reply");
    assert_eq!(reply["type"], "pong");
    match Client::connect(&format!("ws://{}/ws", hub.addr)).await {
        Err(ClientError::Refused { status, .. }) => assert_eq!(status, 404, "/ws is not the path any more"),
        Err(other) => panic!("expected an HTTP refusal on /ws, got {other}"),
        Ok(_) => panic!("/ws still upgrades although websocket.path is /realtime"),
    }
}

#[tokio::test]
async fn a_stalled_request_line_is_cut_off_after_handshake_timeout() {
    let hub = Hub::start("websocket:\n  handshake_timeout: 1s\n").await;
    let mut stream = TcpStream::connect(&hub.addr).await.expect("tcp connect");
    stream.write_all(b"GET /ws HT").await.expect("send half a line");
    let closed_after = eof_within(&mut stream, WAIT)
        .await
        .expect("the server closes a stalled handshake within 10 s");
    assert!(
        closed_after >= Duration::from_millis(900),
        "not before handshake_timeout: {closed_after:?}"
    );
}

#[tokio::test]
async fn a_silent_tcp_client_is_cut_off_after_handshake_timeout() {
    let hub = Hub::start("websocket:\n  handshake_timeout: 1s\n").await;
    let mut stream = TcpStream::connect(&hub.addr).await.expect("tcp connect");
    let closed_after = eof_within(&mut stream, WAIT)
        .await
        .expect("the server closes a connection that sends nothing within 10 s");
    assert!(
        closed_after >= Duration::from_millis(900),
        "not before handshake_timeout: {closed_after:?}"
    );
}
