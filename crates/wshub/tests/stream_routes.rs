//! Raw stream routes (`/ws/stream/{topic}` and `streams:`) through the real binary: payloads
//! only, handshake refusals, conflation to `rate_hz`, shutdown.

mod common;

use common::{Hub, WAIT, assert_api_error, eventually, token, with_secret};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::{Instant, MissedTickBehavior, interval, timeout};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What a raw stream client sees next.
#[derive(Debug, PartialEq)]
enum Got {
    Text(String),
    Closed(Option<u16>),
    /// Nothing within the wait.
    Nothing,
}

fn stream_url(hub: &Hub, path_and_query: &str) -> String {
    format!("ws://{}{path_and_query}", hub.addr)
}

/// Opens a raw stream; `headers` are added to the handshake.
async fn try_open(hub: &Hub, path_and_query: &str, headers: &[(&str, &str)]) -> Result<Socket, WsError> {
    let mut request = stream_url(hub, path_and_query).into_client_request().expect("request");
    for (name, value) in headers {
        request.headers_mut().insert(
            http::HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            http::HeaderValue::from_str(value).expect("header value"),
        );
    }
    tokio_tungstenite::connect_async(request)
        .await
        .map(|(socket, _)| socket)
}

async fn open(hub: &Hub, path_and_query: &str) -> Socket {
    try_open(hub, path_and_query, &[]).await.expect("raw stream opens")
}

/// The HTTP status and JSON body of a refused handshake.
async fn refusal(hub: &Hub, path_and_query: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    match try_open(hub, path_and_query, headers).await {
        Err(WsError::Http(response)) => {
            let body = response
                .body()
                .as_deref()
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or(Value::Null);
            (response.status().as_u16(), body)
        }
        Ok(_) => panic!("{path_and_query}: upgraded, expected a refusal"),
        Err(other) => panic!("{path_and_query}: {other}"),
    }
}

/// The next data frame or close within `wait` (Pings are answered by the library and skipped).
async fn next(socket: &mut Socket, wait: Duration) -> Got {
    let deadline = Instant::now() + wait;
    loop {
        let Ok(message) = timeout(deadline.saturating_duration_since(Instant::now()), socket.next()).await else {
            return Got::Nothing;
        };
        match message {
            Some(Ok(Message::Text(text))) => return Got::Text(text.to_string()),
            Some(Ok(Message::Close(frame))) => return Got::Closed(frame.map(|f| u16::from(f.code))),
            Some(Ok(Message::Binary(_))) => panic!("raw streams send text frames"),
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return Got::Closed(None),
        }
    }
}

async fn next_text(socket: &mut Socket) -> String {
    match next(socket, WAIT).await {
        Got::Text(text) => text,
        other => panic!("expected a payload, got {other:?}"),
    }
}

/// Waits until `/ws/status` shows `count` subscribers of `topic` (a raw stream subscribes right
/// after its upgrade and sends nothing to say so).
async fn subscribers(hub: &Hub, topic: &str, count: u64) {
    eventually(&format!("{count} subscriber(s) of {topic}"), || async {
        hub.get("/ws/status").await.1["topics"][topic].as_u64().unwrap_or(0) == count
    })
    .await;
}

/// Publishes a raw JSON body through the API, so the payload's bytes are exactly these.
async fn publish_raw(hub: &Hub, topic: &str, payload: &str) {
    let body = format!(r#"{{"topic":"{topic}","event":"tick","payload":{payload}}}"#);
    let (status, answer) = hub.post_raw("/api/publish", "application/json", body).await;
    assert_eq!(status, 200, "publish: {answer}");
}

#[tokio::test]
async fn payloads_arrive_alone_verbatim_and_in_order() {
    let hub = Hub::start("").await;
    let mut stream = open(&hub, "/ws/stream/news").await;
    subscribers(&hub, "news", 1).await;
    assert_eq!(
        next(&mut stream, Duration::from_millis(300)).await,
        Got::Nothing,
        "nothing is sent before the first event"
    );
    // Frames from the client are ignored; the stream stays open.
    stream
        .send(Message::text(r#"{"type":"subscribe","topic":"other"}"#))
        .await
        .expect("send");
    let payloads: Vec<String> = (0..20)
        .map(|n| format!(r#"{{ "n": {n},  "z": "last", "a": [true, null, 1.50] }}"#))
        .collect();
    for payload in &payloads {
        publish_raw(&hub, "news", payload).await;
    }
    for payload in &payloads {
        assert_eq!(
            &next_text(&mut stream).await,
            payload,
            "the payload's bytes, as published"
        );
    }
    assert_eq!(
        next(&mut stream, Duration::from_millis(200)).await,
        Got::Nothing,
        "one frame per event, nothing else"
    );
}

#[tokio::test]
async fn the_rest_of_the_path_is_the_topic() {
    let hub = Hub::start("").await;
    let mut stream = open(&hub, "/ws/stream/a/b").await;
    subscribers(&hub, "a/b", 1).await;
    publish_raw(&hub, "a", r#"{"to":"a"}"#).await;
    publish_raw(&hub, "a/b/c", r#"{"to":"a/b/c"}"#).await;
    publish_raw(&hub, "a/b", r#"{"to":"a/b"}"#).await;
    assert_eq!(next_text(&mut stream).await, r#"{"to":"a/b"}"#);
    let (_, status) = hub.get("/ws/status").await;
    assert_eq!(status["connections"], 1, "a raw stream counts as a connection");
    drop(stream);
    subscribers(&hub, "a/b", 0).await;
    eventually("the connection is released", || async {
        hub.get("/ws/status").await.1["connections"] == 0
    })
    .await;
}

#[tokio::test]
async fn handshakes_are_refused_like_ws_with_json_errors() {
    let config = with_secret(
        "  allow_anonymous: false
websocket:
  allowed_origins: [\"https://app.example.com\"]
topics:
  - { match: news, subscribe: [viewer, admin], publish: [admin] }
  - { match: secret, subscribe: [admin], publish: [admin] }
streams:
  - { path: /ws/secret, topic: secret }
",
    );
    let hub = Hub::start(&config).await;
    let viewer = token("v1", "viewer", 300);
    let admin = token("a1", "admin", 300);
    let expired = token("v1", "viewer", -3600);
    let forged = {
        let mut t = viewer.clone();
        t.push('x');
        t
    };
    let refused = async |what: &str, path: String, headers: &[(&str, &str)], status: u16| {
        let answer = refusal(&hub, &path, headers).await;
        assert_api_error(what, &answer, status);
    };
    refused("no token, anonymous access off", "/ws/stream/news".into(), &[], 401).await;
    refused("bad token", format!("/ws/stream/news?token={forged}"), &[], 401).await;
    refused("expired token", format!("/ws/stream/news?token={expired}"), &[], 401).await;
    let bad_bearer = [("authorization", "Bearer nonsense")];
    refused("bad bearer token", "/ws/stream/news".into(), &bad_bearer, 401).await;
    refused("forbidden topic", format!("/ws/stream/secret?token={viewer}"), &[], 403).await;
    refused(
        "forbidden configured path",
        format!("/ws/secret?token={viewer}"),
        &[],
        403,
    )
    .await;
    refused(
        "no topic rule",
        format!("/ws/stream/elsewhere?token={viewer}"),
        &[],
        404,
    )
    .await;
    refused(
        "invalid topic",
        format!("/ws/stream/has%20space?token={viewer}"),
        &[],
        400,
    )
    .await;
    let evil = [("origin", "https://evil.example.com")];
    refused(
        "origin not allowed",
        format!("/ws/stream/news?token={viewer}"),
        &evil,
        403,
    )
    .await;
    let (_, body) = refusal(&hub, &format!("/ws/stream/elsewhere?token={viewer}"), &[]).await;
    assert_eq!(body["error"]["code"], "unknown_channel");

    // The same identities where they are allowed: query token, bearer header, configured path.
    let mut by_query = open(&hub, &format!("/ws/stream/news?token={viewer}")).await;
    let bearer = format!("Bearer {viewer}");
    let mut by_header = try_open(&hub, "/ws/stream/news", &[("authorization", &bearer)])
        .await
        .expect("bearer token");
    let mut admin_path = open(&hub, &format!("/ws/secret?token={admin}")).await;
    subscribers(&hub, "news", 2).await;
    subscribers(&hub, "secret", 1).await;
    publish_raw(&hub, "news", r#"{"n":1}"#).await;
    publish_raw(&hub, "secret", r#"{"s":1}"#).await;
    assert_eq!(next_text(&mut by_query).await, r#"{"n":1}"#);
    assert_eq!(next_text(&mut by_header).await, r#"{"n":1}"#);
    assert_eq!(next_text(&mut admin_path).await, r#"{"s":1}"#);
}

#[tokio::test]
async fn a_stream_closes_with_4002_when_its_token_expires() {
    let hub = Hub::start(&with_secret("    leeway: 0s\n")).await;
    let short = token("v1", "viewer", 2);
    let mut stream = open(&hub, &format!("/ws/stream/news?token={short}")).await;
    assert_eq!(next(&mut stream, WAIT).await, Got::Closed(Some(4002)));
}

/// A `/ws` publisher that sends `publish` requests without waiting for their replies (a task
/// drains those), so it can go much faster than one round trip per event.
struct Publisher {
    sink: futures_util::stream::SplitSink<Socket, Message>,
    drain: tokio::task::JoinHandle<()>,
}

impl Publisher {
    async fn connect(hub: &Hub) -> Publisher {
        let admin = token("feeder", "admin", 3600);
        let (socket, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws?token={admin}", hub.addr))
            .await
            .expect("publisher connects");
        let (sink, mut replies) = socket.split();
        let drain = tokio::spawn(async move { while let Some(Ok(_)) = replies.next().await {} });
        Publisher { sink, drain }
    }

    async fn publish(&mut self, topic: &str, n: u64) {
        let request = json!({"type": "publish", "topic": topic, "event": "tick", "payload": {"n": n}});
        self.sink
            .feed(Message::text(request.to_string()))
            .await
            .expect("publish");
    }

    async fn flush(&mut self) {
        self.sink.flush().await.expect("flush");
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.drain.abort();
    }
}

/// The `n` of a `{"n":…}` payload.
fn n_of(text: &str) -> u64 {
    let value: Value = serde_json::from_str(text).expect("a JSON payload");
    value["n"].as_u64().expect("n")
}

const RATE_CONFIG: &str = "streams:
  - { path: /ws/latency, topic: latency, rate_hz: 30 }
rate_limits:
  default: { capacity: 100000, refill_per_sec: 100000 }
";

#[tokio::test]
async fn a_30_hz_route_holds_30_frames_a_second_of_the_latest_payload() {
    let hub = Hub::start(&with_secret(RATE_CONFIG)).await;
    let mut stream = open(&hub, "/ws/latency").await;
    subscribers(&hub, "latency", 1).await;
    let mut publisher = Publisher::connect(&hub).await;

    // About 1,000 events a second for 3 seconds: 10 every 10 ms.
    let publishing = tokio::spawn(async move {
        let mut tick = interval(Duration::from_millis(10));
        tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
        let started = Instant::now();
        let mut n = 0;
        while started.elapsed() < Duration::from_secs(3) {
            tick.tick().await;
            for _ in 0..10 {
                n += 1;
                publisher.publish("latency", n).await;
            }
            publisher.flush().await;
        }
        (n, started.elapsed())
    });

    let mut frames: Vec<(Instant, u64)> = Vec::new();
    // Until the publisher is done and the stream has gone quiet.
    loop {
        match next(&mut stream, Duration::from_millis(500)).await {
            Got::Text(text) => frames.push((Instant::now(), n_of(&text))),
            Got::Nothing if publishing.is_finished() => break,
            Got::Nothing => {}
            Got::Closed(code) => panic!("stream closed ({code:?}) after {} frames", frames.len()),
        }
    }
    let (published, took) = publishing.await.expect("publisher");
    let publish_rate = published as f64 / took.as_secs_f64();

    for pair in frames.windows(2) {
        assert!(
            pair[1].1 > pair[0].1,
            "each frame is newer than the one before: {} then {}",
            pair[0].1,
            pair[1].1
        );
    }
    assert_eq!(
        frames.last().map(|f| f.1),
        Some(published),
        "the newest payload is sent in the end"
    );
    // Frames while the publisher floods the topic: all but the first (sent at once) and the
    // last (the final payload, sent when its period came).
    let (first, last) = (frames[0].0, frames[frames.len() - 2].0);
    let span = (last - first).as_secs_f64();
    let rate = (frames.len() - 2) as f64 / span;
    // The busiest second anywhere in the run.
    let busiest = frames
        .iter()
        .enumerate()
        .map(|(i, (at, _))| {
            frames[i..]
                .iter()
                .take_while(|(t, _)| *t - *at < Duration::from_secs(1))
                .count()
        })
        .max()
        .unwrap_or(0);
    eprintln!(
        "published {published} events ({publish_rate:.0}/s); received {} frames, {rate:.2} frames/s over {span:.2} s; busiest second {busiest} frames",
        frames.len()
    );
    assert!(
        publish_rate > 300.0,
        "the publisher floods the topic ({publish_rate:.0}/s)"
    );
    assert!((24.0..=36.0).contains(&rate), "{rate:.2} frames/s on a 30 Hz route");
    assert!(busiest <= 36, "{busiest} frames within one second on a 30 Hz route");
}

#[tokio::test]
async fn a_publisher_slower_than_the_rate_gets_every_event_through() {
    let hub = Hub::start(&with_secret(RATE_CONFIG)).await;
    let mut stream = open(&hub, "/ws/latency").await;
    subscribers(&hub, "latency", 1).await;
    let mut publisher = Publisher::connect(&hub).await;
    let mut tick = interval(Duration::from_millis(200));
    let mut latencies = Vec::new();
    for n in 1..=10 {
        tick.tick().await;
        publisher.publish("latency", n).await;
        publisher.flush().await;
        let sent = Instant::now();
        assert_eq!(n_of(&next_text(&mut stream).await), n, "every event, in order");
        latencies.push(sent.elapsed());
    }
    latencies.sort();
    eprintln!("publish → frame latency at 5 events/s: median {:?}", latencies[5]);
    assert_eq!(next(&mut stream, Duration::from_millis(300)).await, Got::Nothing);
}

#[tokio::test]
async fn a_stream_that_cannot_keep_up_without_rate_hz_is_closed_as_a_slow_consumer() {
    let hub = Hub::start("websocket:\n  outbound_queue: 8\n  outbound_queue_bytes: 64KiB\n").await;
    // This client never reads until the end: the socket's buffers fill, then its queue.
    let mut stream = open(&hub, "/ws/stream/bulk").await;
    subscribers(&hub, "bulk", 1).await;
    let big = format!(r#"{{"fill":"{}"}}"#, "x".repeat(256 * 1024));
    let published = 80;
    for _ in 0..published {
        publish_raw(&hub, "bulk", &big).await;
    }
    subscribers(&hub, "bulk", 0).await;
    let mut received = 0;
    let end = loop {
        match next(&mut stream, WAIT).await {
            Got::Text(_) => received += 1,
            other => break other,
        }
    };
    assert!(
        received < published,
        "the backlog was dropped ({received} of {published})"
    );
    // The close frame is tried for a second; behind a full socket the client may see the
    // connection drop instead (CONTRACT §3).
    assert!(
        matches!(end, Got::Closed(Some(4008) | None)),
        "closed as a slow consumer: {end:?}"
    );
}

#[tokio::test]
async fn shutdown_closes_raw_streams_with_1001() {
    let mut hub = Hub::start("streams:\n  - { path: /ws/paced, topic: paced, rate_hz: 5 }\n").await;
    let mut every = open(&hub, "/ws/stream/news").await;
    let mut paced = open(&hub, "/ws/paced").await;
    subscribers(&hub, "news", 1).await;
    subscribers(&hub, "paced", 1).await;
    let (_, status) = hub.get("/ws/status").await;
    assert_eq!(status["connections"], 2);
    publish_raw(&hub, "news", r#"{"last":true}"#).await;
    hub.terminate();
    assert_eq!(next(&mut every, WAIT).await, Got::Text(r#"{"last":true}"#.into()));
    assert_eq!(next(&mut every, WAIT).await, Got::Closed(Some(1001)));
    assert_eq!(next(&mut paced, WAIT).await, Got::Closed(Some(1001)));
    let exit = timeout(WAIT, hub.child.wait()).await.expect("exits").expect("status");
    assert!(exit.success());
}
