//! `wshub bench` smoke runs: each scenario, briefly, against the real hub on port 0 (and the
//! adapters against tiny broadcast and Socket.IO servers written here), asserting the `--json`
//! report. Benchmarks proper are run by hand or by the bench/ scripts; these keep the command
//! working and its counting honest.

mod cli_support;
mod common;

use cli_support::spawn;
use common::{Hub, token, with_secret};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::Message;

/// A bench run's own bound: its scenario plus connecting and draining.
const RUN_LIMIT: Duration = Duration::from_secs(40);
/// Rate limits out of the way: the bench publishes far faster than a person.
const GENEROUS: &str = "rate_limits:\n  default: { capacity: 1000000000, refill_per_sec: 1000000000 }\n";

/// Runs `wshub bench ARGS --json`, expects success, returns the report.
async fn bench(args: &[&str]) -> Value {
    let mut all = vec!["bench"];
    all.extend_from_slice(args);
    all.push("--json");
    let finished = spawn(&all, None).finish_within(RUN_LIMIT).await;
    finished.assert_code(0);
    assert_eq!(finished.stdout.len(), 1, "one JSON object on stdout; {finished}");
    serde_json::from_str(&finished.stdout[0]).unwrap_or_else(|e| panic!("not JSON ({e}); {finished}"))
}

fn number(report: &Value, field: &str) -> f64 {
    report[field]
        .as_f64()
        .unwrap_or_else(|| panic!("{field} is not a number in {report}"))
}

/// Every message reached every subscriber once, in order, with sane latencies.
fn assert_clean_delivery(report: &Value) {
    let expected = number(report, "expected");
    assert!(expected > 0.0, "{report}");
    assert_eq!(
        number(report, "sent") * number(report, "subscribers"),
        expected,
        "{report}"
    );
    assert_eq!(number(report, "delivered"), expected, "{report}");
    for zero in ["loss", "duplicates", "out_of_order", "closed_connections"] {
        assert_eq!(number(report, zero), 0.0, "{zero} in {report}");
    }
    assert_latencies_ordered(report);
}

fn assert_latencies_ordered(report: &Value) {
    let latency = &report["latency_ms"];
    let at = |key: &str| number(latency, key);
    assert!(at("p50") > 0.0, "{report}");
    assert!(
        at("p50") <= at("p90") && at("p90") <= at("p99") && at("p99") <= at("p999") && at("p999") <= at("max"),
        "{report}"
    );
}

fn assert_server_measured(report: &Value, hub: &Hub) {
    let server = &report["server"];
    assert_eq!(server["pid"].as_u64(), hub.child.id().map(u64::from), "{report}");
    assert!(number(server, "rss_bytes") > 0.0, "{report}");
    assert!(number(server, "cpu_s") >= 0.0, "{report}");
    assert!(report["generator"]["bottleneck"].is_boolean(), "{report}");
}

#[tokio::test]
async fn fanout_over_websocket_delivers_everything() {
    let hub = Hub::start(&with_secret(GENEROUS)).await;
    let admin = token("bench", "admin", 600);
    let pid = hub.child.id().expect("running").to_string();
    let url = hub.ws_url("");
    let report = bench(&[
        "fanout",
        "--url",
        &url,
        "--subscribers",
        "20",
        "--rate",
        "200",
        "--duration",
        "1s",
        "--warmup",
        "0.2s",
        "--publish-via",
        "ws",
        "--token",
        &admin,
        "--server-pid",
        &pid,
    ])
    .await;
    assert_clean_delivery(&report);
    assert_server_measured(&report, &hub);
    assert_eq!(report["publish_via"], "ws");
    assert_eq!(
        report["acked"], report["sent"],
        "every publish in the window acknowledged"
    );
    // 200/s for 1 s, give or take a tick.
    assert!((180.0..=220.0).contains(&number(&report, "sent")), "{report}");
}

#[tokio::test]
async fn fanout_over_http_delivers_everything() {
    let hub = Hub::start("").await;
    let pid = hub.child.id().expect("running").to_string();
    let url = hub.ws_url("");
    let report = bench(&[
        "fanout",
        "--url",
        &url,
        "--subscribers",
        "20",
        "--rate",
        "200",
        "--duration",
        "1s",
        "--warmup",
        "0.2s",
        "--publish-via",
        "http",
        "--server-pid",
        &pid,
    ])
    .await;
    assert_clean_delivery(&report);
    assert_server_measured(&report, &hub);
    assert_eq!(report["publish_via"], "http");
    assert_eq!(report["publish_refused"], 0);
}

#[tokio::test]
async fn anonymous_websocket_publishers_are_told_what_to_pass() {
    let hub = Hub::start(GENEROUS).await;
    let url = hub.ws_url("");
    let finished = spawn(
        &[
            "bench",
            "fanout",
            "--url",
            &url,
            "--subscribers",
            "2",
            "--rate",
            "50",
            "--duration",
            "1s",
            "--publish-via",
            "ws",
            "--json",
        ],
        None,
    )
    .finish_within(RUN_LIMIT)
    .await;
    finished.assert_code(2);
    assert!(finished.stdout.is_empty(), "{finished}");
    let error = finished.stderr_text();
    assert!(error.contains("forbidden") && error.contains("--token"), "{finished}");
}

#[tokio::test]
async fn idle_reports_memory_per_connection() {
    let hub = Hub::start("").await;
    let pid = hub.child.id().expect("running").to_string();
    let url = hub.ws_url("");
    let report = bench(&[
        "idle",
        "--url",
        &url,
        "--connections",
        "50",
        "--duration",
        "1s",
        "--server-pid",
        &pid,
        "--source-ips",
        "127.0.0.1-127.0.0.3",
    ])
    .await;
    assert_eq!(report["scenario"], "idle");
    assert_eq!(report["connections"], 50);
    assert_eq!(report["closed_connections"], 0);
    assert_eq!(report["source_addresses"], 3);
    assert_server_measured(&report, &hub);
    assert!(report["server"]["rss_per_connection_bytes"].is_number(), "{report}");
    assert!(report["server"]["cpu_us_per_s_per_connection"].is_number(), "{report}");
    assert!(report["latency_ms"].is_null() && report["loss"].is_null(), "{report}");
}

#[tokio::test]
async fn connect_counts_handshakes() {
    let hub = Hub::start(&with_secret("")).await;
    let viewer = token("bench", "viewer", 600);
    let url = hub.ws_url("");
    let report = bench(&[
        "connect",
        "--url",
        &url,
        "--connections",
        "100",
        "--concurrency",
        "20",
        "--token",
        &viewer,
        "--subscribe",
        "bench",
    ])
    .await;
    assert_eq!(report["connections"], 100);
    assert_eq!(report["failed"], 0, "{report}");
    assert!(number(&report, "connect_per_s") > 0.0, "{report}");
    assert_latencies_ordered(&report);
}

#[tokio::test]
async fn saturate_climbs_until_the_maximum() {
    let hub = Hub::start("").await;
    let url = hub.ws_url("");
    let report = bench(&[
        "saturate",
        "--url",
        &url,
        "--subscribers",
        "10",
        "--start-rate",
        "100",
        "--step",
        "2",
        "--max-rate",
        "200",
        "--step-duration",
        "0.5s",
        "--warmup",
        "0.1s",
        "--p99-limit",
        "5s",
    ])
    .await;
    let steps = report["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 2, "{report}");
    assert_eq!((number(&steps[0], "rate"), number(&steps[1], "rate")), (100.0, 200.0));
    assert!(
        steps.iter().all(|step| step["held"] == true && step["loss"] == 0),
        "{report}"
    );
    assert_eq!(report["max_rate_held"], 200.0);
    assert!(
        report["stopped_because"]
            .as_str()
            .is_some_and(|s| s.contains("max-rate")),
        "{report}"
    );
    assert_clean_delivery(&report);
}

/// What a test server did to the frames it forwarded to receivers (not to the publisher).
#[derive(Default)]
struct Mischief {
    dropped: AtomicU64,
    duplicated: AtomicU64,
    reordered: AtomicU64,
    /// Frames that carried more than one message (packed servers only).
    packed: AtomicU64,
}

/// How a test broadcast server forwards frames to receivers.
#[derive(Clone, Copy, PartialEq)]
enum Forwarding {
    /// One frame per message.
    Plain,
    /// One frame per message, with some dropped, duplicated and reordered.
    Faulty,
    /// Like gorilla's chat hub: what queued up while writing goes out in one frame, one
    /// message per line.
    Packed,
}

/// A broadcast server: every text frame from any client goes to every client. When `faulty`,
/// each receiver's 5th frame of every 30 is dropped, its 15th sent twice and its 25th held
/// back until after the 26th.
async fn broadcast_server(forwarding: Forwarding) -> (String, Arc<Mischief>) {
    let faulty = forwarding == Forwarding::Faulty;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address").to_string();
    let mischief = Arc::new(Mischief::default());
    let (frames, _) = broadcast::channel::<String>(1 << 16);
    let counts = Arc::clone(&mischief);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (frames, counts) = (frames.clone(), Arc::clone(&counts));
            tokio::spawn(async move {
                let Ok(socket) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                let (mut sink, mut incoming) = socket.split();
                let mut outgoing = frames.subscribe();
                let (mut publisher, mut forwarded, mut held) = (false, 0u64, None);
                loop {
                    tokio::select! {
                        message = incoming.next() => match message {
                            Some(Ok(Message::Text(text))) => {
                                publisher = true;
                                let _ = frames.send(text.as_str().to_owned());
                            }
                            Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                            Some(Ok(_)) => {}
                        },
                        frame = outgoing.recv() => {
                            let Ok(mut frame) = frame else { break };
                            forwarded += 1;
                            if forwarding == Forwarding::Packed && !publisher {
                                // A slow writer: the next message, once it has come (or
                                // after a moment, for the last one), goes out packed with
                                // this one, with whatever else queued meanwhile.
                                let mut lines = 1;
                                let next = tokio::time::timeout(Duration::from_millis(100), outgoing.recv()).await;
                                if let Ok(Ok(next)) = next {
                                    frame.push('\n');
                                    frame.push_str(&next);
                                    lines += 1;
                                }
                                while let Ok(next) = outgoing.try_recv() {
                                    frame.push('\n');
                                    frame.push_str(&next);
                                    lines += 1;
                                }
                                if lines > 1 {
                                    counts.packed.fetch_add(1, Ordering::SeqCst);
                                }
                            }
                            let mut send = vec![frame];
                            if faulty && !publisher {
                                match forwarded % 30 {
                                    5 => {
                                        counts.dropped.fetch_add(1, Ordering::SeqCst);
                                        send.clear();
                                    }
                                    15 => {
                                        counts.duplicated.fetch_add(1, Ordering::SeqCst);
                                        send.push(send[0].clone());
                                    }
                                    // Held: lost unless the next frame comes, so counted so.
                                    25 => {
                                        counts.dropped.fetch_add(1, Ordering::SeqCst);
                                        held = send.pop();
                                    }
                                    26 => {
                                        if let Some(late) = held.take() {
                                            counts.dropped.fetch_sub(1, Ordering::SeqCst);
                                            counts.reordered.fetch_add(1, Ordering::SeqCst);
                                            send.push(late);
                                        }
                                    }
                                    _ => {}
                                }
                            }
                            for text in send {
                                if sink.send(Message::text(text)).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                }
            });
        }
    });
    (addr, mischief)
}

#[tokio::test]
async fn the_broadcast_adapter_counts_every_delivery() {
    let (addr, _) = broadcast_server(Forwarding::Plain).await;
    let url = format!("ws://{addr}/");
    let report = bench(&[
        "fanout",
        "--target",
        "broadcast",
        "--url",
        &url,
        "--subscribers",
        "10",
        "--rate",
        "300",
        "--duration",
        "1s",
        "--warmup",
        "0.2s",
    ])
    .await;
    assert_eq!(report["target"], "broadcast");
    assert_clean_delivery(&report);
}

#[tokio::test]
async fn the_broadcast_adapter_sees_loss_duplicates_and_disorder() {
    let (addr, mischief) = broadcast_server(Forwarding::Faulty).await;
    let url = format!("ws://{addr}/");
    // No warm-up: every frame the server forwards was sent inside the window.
    let report = bench(&[
        "fanout",
        "--target",
        "broadcast",
        "--url",
        &url,
        "--subscribers",
        "4",
        "--rate",
        "300",
        "--duration",
        "1s",
        "--warmup",
        "0s",
    ])
    .await;
    let (dropped, duplicated, reordered) = (
        mischief.dropped.load(Ordering::SeqCst),
        mischief.duplicated.load(Ordering::SeqCst),
        mischief.reordered.load(Ordering::SeqCst),
    );
    assert!(dropped > 0 && duplicated > 0 && reordered > 0);
    assert_eq!(number(&report, "loss"), dropped as f64, "{report}");
    assert_eq!(number(&report, "duplicates"), duplicated as f64, "{report}");
    assert_eq!(number(&report, "out_of_order"), reordered as f64, "{report}");
    assert_eq!(
        number(&report, "delivered"),
        number(&report, "expected") - dropped as f64,
        "{report}"
    );
}

#[tokio::test]
async fn the_broadcast_adapter_reads_every_line_of_a_packed_frame() {
    let (addr, mischief) = broadcast_server(Forwarding::Packed).await;
    let url = format!("ws://{addr}/");
    let report = bench(&[
        "fanout",
        "--target",
        "broadcast",
        "--url",
        &url,
        "--subscribers",
        "4",
        "--rate",
        "1000",
        "--duration",
        "1s",
        "--warmup",
        "0.2s",
    ])
    .await;
    assert!(mischief.packed.load(Ordering::SeqCst) > 0, "the server packed frames");
    assert_clean_delivery(&report);
}

/// A Socket.IO (engine.io v4 over WebSocket) server that re-emits every event to every client
/// and pings every 100 ms; counts the pongs it gets.
async fn socketio_server() -> (String, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address").to_string();
    let pongs = Arc::new(AtomicU64::new(0));
    let (events, _) = broadcast::channel::<String>(1 << 16);
    let counted = Arc::clone(&pongs);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (events, pongs) = (events.clone(), Arc::clone(&counted));
            tokio::spawn(async move {
                let Ok(socket) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                let (mut sink, mut incoming) = socket.split();
                let open = r#"0{"sid":"s","upgrades":[],"pingInterval":100,"pingTimeout":1000,"maxPayload":1000000}"#;
                if sink.send(Message::text(open)).await.is_err() {
                    return;
                }
                let mut outgoing = events.subscribe();
                let mut ping = tokio::time::interval(Duration::from_millis(100));
                loop {
                    let reply = tokio::select! {
                        message = incoming.next() => match message {
                            Some(Ok(Message::Text(text))) => match text.as_str() {
                                "3" => {
                                    pongs.fetch_add(1, Ordering::SeqCst);
                                    None
                                }
                                packet if packet.starts_with("40") => Some(r#"40{"sid":"n"}"#.to_owned()),
                                packet if packet.starts_with("42") => {
                                    let _ = events.send(packet.to_owned());
                                    None
                                }
                                _ => None,
                            },
                            Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                            Some(Ok(_)) => None,
                        },
                        event = outgoing.recv() => match event {
                            Ok(event) => Some(event),
                            Err(_) => break,
                        },
                        _ = ping.tick() => Some("2".to_owned()),
                    };
                    if let Some(text) = reply
                        && sink.send(Message::text(text)).await.is_err()
                    {
                        break;
                    }
                }
            });
        }
    });
    (addr, pongs)
}

#[tokio::test]
async fn the_socketio_adapter_speaks_engine_io() {
    let (addr, pongs) = socketio_server().await;
    let url = format!("ws://{addr}");
    let report = bench(&[
        "fanout",
        "--target",
        "socketio",
        "--url",
        &url,
        "--subscribers",
        "10",
        "--rate",
        "200",
        "--duration",
        "1s",
        "--warmup",
        "0.2s",
    ])
    .await;
    assert_eq!(report["target"], "socketio");
    assert!(
        report["url"]
            .as_str()
            .is_some_and(|u| u.contains("/socket.io/?EIO=4&transport=websocket"))
    );
    assert_clean_delivery(&report);
    assert!(pongs.load(Ordering::SeqCst) > 0, "engine.io pings answered");
}
