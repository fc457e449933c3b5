//! A quick load probe for a running hub (the full load generator is `wshub bench`, later).
//!
//! idle:   opens N connections, each subscribed to its own topic, then reports the
//!         server's RSS per connection (from /proc/PID/status).
//! fanout: S subscribers on one topic, M events published through the HTTP API;
//!         reports deliveries per second until every subscriber has every event.
//!
//! ```sh
//! ./target/release/wshub serve --set websocket.max_connections=20000 & PID=$!
//! ulimit -n 65536
//! cargo run --release -p wshub --example probe -- idle --connections 10000 --server-pid $PID
//! cargo run --release -p wshub --example probe -- fanout --subscribers 1000 --events 1000
//! ```

use clap::{Parser, Subcommand};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use wshub_client::{Client, Incoming};

#[derive(Parser)]
struct Args {
    /// Hub address (host:port).
    #[arg(long, default_value = "127.0.0.1:8000", global = true)]
    addr: String,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    Idle {
        #[arg(long, default_value_t = 10_000)]
        connections: usize,
        #[arg(long)]
        server_pid: u32,
    },
    /// One client publishing as fast as replies come back (`window` requests in flight).
    Publish {
        #[arg(long, default_value_t = 50_000)]
        count: usize,
        #[arg(long, default_value_t = 64)]
        window: usize,
        /// A token allowed to publish (e.g. from `wshub token --role admin --sub probe`).
        #[arg(long)]
        token: String,
    },
    Fanout {
        #[arg(long, default_value_t = 1000)]
        subscribers: usize,
        #[arg(long, default_value_t = 1000)]
        events: usize,
        #[arg(long, default_value_t = 100)]
        payload_bytes: usize,
    },
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("server pid");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .expect("VmRSS")
}

async fn connect_many(addr: &str, n: usize, topic: impl Fn(usize) -> String) -> Vec<Client> {
    let mut clients = Vec::with_capacity(n);
    let started = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(200) {
        let tasks: Vec<_> = chunk
            .iter()
            .map(|&i| {
                let url = format!("ws://{addr}/ws");
                let topic = topic(i);
                tokio::spawn(async move {
                    let mut client = Client::connect(&url).await.expect("connect");
                    client
                        .next_of_type("connection.established", Duration::from_secs(30))
                        .await
                        .expect("established");
                    let reply = client
                        .request("subscribe", json!({"topic": topic}), Duration::from_secs(30))
                        .await
                        .expect("reply");
                    assert_eq!(reply["type"], "subscribed");
                    client
                })
            })
            .collect();
        for task in tasks {
            clients.push(task.await.expect("connect task"));
        }
        eprint!("\rconnected {}/{n}", clients.len());
    }
    eprintln!(
        "\rconnected {n} in {:.1}s ({:.0}/s, connect + subscribe, 200 in flight)",
        started.elapsed().as_secs_f64(),
        n as f64 / started.elapsed().as_secs_f64()
    );
    clients
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    match args.mode {
        Mode::Idle {
            connections,
            server_pid,
        } => {
            let before = rss_kib(server_pid);
            let clients = connect_many(&args.addr, connections, |i| format!("idle/{i}")).await;
            tokio::time::sleep(Duration::from_secs(2)).await;
            let after = rss_kib(server_pid);
            println!("server RSS: {before} KiB before, {after} KiB with {connections} connections");
            println!(
                "idle RSS per connection: {:.2} KiB",
                (after - before) as f64 / connections as f64
            );
            drop(clients);
        }
        Mode::Publish { count, window, token } => {
            let url = format!("ws://{}/ws?token={token}", args.addr);
            let mut client = Client::connect(&url).await.expect("connect");
            client
                .next_of_type("connection.established", Duration::from_secs(10))
                .await
                .expect("established");
            let started = Instant::now();
            let (mut sent, mut acked, mut refused) = (0usize, 0usize, 0usize);
            while acked < count {
                while sent < count && sent - acked < window {
                    let body =
                        json!({"type": "publish", "topic": "probe/publish", "event": "tick", "payload": {"n": sent}});
                    client.send_json(&body).await.expect("send");
                    sent += 1;
                }
                match client.next(Duration::from_secs(30)).await.expect("reply") {
                    Incoming::Json(v) if v["type"] == "published" => acked += 1,
                    Incoming::Json(v) if v["type"] == "error" => {
                        acked += 1;
                        refused += 1;
                    }
                    Incoming::Closed(code) => panic!("closed: {code:?}"),
                    _ => {}
                }
            }
            let elapsed = started.elapsed().as_secs_f64();
            println!(
                "{count} publishes in {elapsed:.2}s: {:.0} publishes/s ({refused} refused)",
                count as f64 / elapsed
            );
        }
        Mode::Fanout {
            subscribers,
            events,
            payload_bytes,
        } => {
            let clients = connect_many(&args.addr, subscribers, |_| "fanout".to_owned()).await;
            let received = Arc::new(AtomicU64::new(0));
            let readers: Vec<_> = clients
                .into_iter()
                .map(|mut client| {
                    let received = Arc::clone(&received);
                    tokio::spawn(async move {
                        let mut seen = 0;
                        while seen < events {
                            match client.next(Duration::from_secs(60)).await.expect("event") {
                                Incoming::Json(v) if v["type"] == "tick" => {
                                    seen += 1;
                                    received.fetch_add(1, Ordering::Relaxed);
                                }
                                Incoming::Closed(code) => panic!("subscriber closed: {code:?}"),
                                _ => {}
                            }
                        }
                    })
                })
                .collect();
            let http = reqwest::Client::new();
            let blob = "x".repeat(payload_bytes);
            let started = Instant::now();
            for n in 0..events {
                let body = json!({"topic": "fanout", "event": "tick", "payload": {"n": n, "blob": blob}});
                let response = http
                    .post(format!("http://{}/api/publish", args.addr))
                    .json(&body)
                    .send()
                    .await
                    .expect("publish");
                assert!(response.status().is_success());
            }
            let publish_time = started.elapsed();
            for reader in readers {
                reader.await.expect("reader");
            }
            let total = started.elapsed();
            let deliveries = received.load(Ordering::Relaxed);
            println!(
                "published {events} events in {:.2}s; {deliveries} deliveries to {subscribers} subscribers in {:.2}s",
                publish_time.as_secs_f64(),
                total.as_secs_f64()
            );
            println!(
                "delivered: {:.0} messages/s (zero loss: {})",
                deliveries as f64 / total.as_secs_f64(),
                deliveries == (events * subscribers) as u64
            );
        }
    }
}
