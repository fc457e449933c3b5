//! Per-client-IP limits at the handshake: `max_connections_per_ip` and `handshake_rate_per_ip`
//! — through the real binary. Every client here comes from 127.0.0.1.

mod common;

use common::{Hub, WAIT, eventually};
use serde_json::Value;
use std::collections::HashMap;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wshub_client::{Client, ClientError};

/// The server's answer to a hand-written upgrade request.
struct Handshake {
    status: u16,
    /// Header names in lower case.
    headers: HashMap<String, String>,
    /// The JSON body of a refusal (`Null` for a 101).
    body: Value,
    /// Kept open so an accepted connection stays alive while the test needs it.
    _stream: TcpStream,
}

/// Sends an RFC 6455 upgrade request on a raw socket and reads the response head (and, for a
/// refusal, its body), so the test sees the status and headers exactly as sent.
async fn raw_handshake(addr: &str) -> Handshake {
    let mut stream = TcpStream::connect(addr).await.expect("tcp connect");
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("send handshake");
    let read = async {
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            head.push(stream.read_u8().await.expect("response head"));
        }
        let head = String::from_utf8(head).expect("ASCII head");
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|line| line.split(' ').nth(1))
            .and_then(|code| code.parse().ok())
            .expect("status line");
        let headers: HashMap<String, String> = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let body = match headers
            .get("content-length")
            .map(|n| n.parse::<usize>().expect("length"))
        {
            Some(length) if status != 101 => {
                let mut body = vec![0; length];
                stream.read_exact(&mut body).await.expect("body");
                serde_json::from_slice(&body).expect("JSON body")
            }
            _ => Value::Null,
        };
        (status, headers, body)
    };
    let (status, headers, body) = tokio::time::timeout(WAIT, read)
        .await
        .expect("handshake answered in time");
    Handshake {
        status,
        headers,
        body,
        _stream: stream,
    }
}

/// Asserts `answer` is a 429 refusal with the API's error shape and code `rate_limited`.
fn assert_rate_limited(what: &str, answer: &Handshake) {
    assert_eq!(answer.status, 429, "{what}: status (body {})", answer.body);
    assert_eq!(answer.body["error"]["code"], "rate_limited", "{what}: {}", answer.body);
    assert!(
        answer.body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: error.message in {}",
        answer.body
    );
}

async fn connect_status(hub: &Hub) -> Result<Client, u16> {
    match Client::connect(&hub.ws_url("")).await {
        Ok(client) => Ok(client),
        Err(ClientError::Refused { status, .. }) => Err(status),
        Err(other) => panic!("connect failed: {other}"),
    }
}

#[tokio::test]
async fn the_connection_past_max_connections_per_ip_gets_429_until_one_closes() {
    let hub = Hub::start("websocket:\n  max_connections_per_ip: 3\n").await;
    let (mut first, _) = hub.connect("").await;
    let (_second, _) = hub.connect("").await;
    let (_third, _) = hub.connect("").await;
    assert_eq!(connect_status(&hub).await.err(), Some(429), "the 4th from one address");

    let refused = raw_handshake(&hub.addr).await;
    assert_rate_limited("per-IP connection limit", &refused);
    let (_, status) = hub.get("/ws/status").await;
    assert_eq!(status["connections"], 3, "refusals hold no slot: {status}");

    first.close(1000).await.expect("send close");
    assert_eq!(first.closed(WAIT).await.expect("close reply"), Some(1000));
    // The slot is released when the session has finished its cleanup, just after the close reply.
    eventually("the closed connection's slot released", || async {
        hub.get("/ws/status").await.1["connections"] == 2
    })
    .await;
    let (_fourth, _) = hub.connect("").await;
    assert_eq!(
        connect_status(&hub).await.err(),
        Some(429),
        "three again, so the next is refused"
    );
}

#[tokio::test]
async fn the_per_ip_limit_answers_before_max_connections() {
    let hub = Hub::start("websocket:\n  max_connections: 2\n  max_connections_per_ip: 2\n").await;
    let (_a, _) = hub.connect("").await;
    let (_b, _) = hub.connect("").await;
    // Both limits are reached; the per-IP check comes first (429, not 503).
    assert_eq!(connect_status(&hub).await.err(), Some(429));
}

#[tokio::test]
async fn handshakes_past_the_per_ip_rate_get_429_with_retry_after() {
    let hub = Hub::start("websocket:\n  handshake_rate_per_ip: { capacity: 5, refill_per_sec: 1 }\n").await;
    let mut accepted = Vec::new();
    for i in 0..5 {
        let answer = raw_handshake(&hub.addr).await;
        assert_eq!(answer.status, 101, "handshake {i} is within the burst");
        accepted.push(answer);
    }
    let refused = raw_handshake(&hub.addr).await;
    assert_rate_limited("handshake rate", &refused);
    let retry_after: u64 = refused
        .headers
        .get("retry-after")
        .expect("Retry-After header")
        .parse()
        .expect("Retry-After in whole seconds");
    assert!(retry_after >= 1, "Retry-After {retry_after}");

    // At 1 token/s a handshake is admitted again within about a second; refusals cost nothing.
    eventually("a refilled handshake bucket", || async {
        let answer = raw_handshake(&hub.addr).await;
        if answer.status != 101 {
            assert_rate_limited("while refilling", &answer);
        }
        answer.status == 101
    })
    .await;
    let log = hub.log_text();
    assert_eq!(
        log.matches("refusing WebSocket upgrades from this address").count(),
        1,
        "one warning per address per minute, however many refusals"
    );
    assert!(
        log.matches("upgrade refused").count() >= 1,
        "each refusal at debug level"
    );
}
