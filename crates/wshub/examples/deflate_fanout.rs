//! Fan-out to subscribers that negotiate permessage-deflate, or not, through a running hub:
//! the measurement behind `bench/compare-compression`.
//!
//! `wshub bench` drives the hub with the Rust client, which cannot offer permessage-deflate;
//! the subscribers here are written by hand on raw sockets, with the offer (`--deflate`) or
//! without it, so both runs use the same client. Events are JSON of about `--payload-bytes`
//! (rows of objects, not one repeated character), published through `POST /api/publish`. With
//! `--server-pid` it reports the hub's CPU time from the first publish to the last delivery.
//!
//! ```sh
//! target/release/wshub serve --set websocket.max_connections=20000 & PID=$!
//! cargo run --release -p wshub --example deflate_fanout -- --addr 127.0.0.1:8000 \
//!     --subscribers 1000 --events 300 --deflate --server-pid $PID
//! ```

use clap::Parser;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

#[derive(Parser)]
struct Args {
    /// Hub address (host:port).
    #[arg(long, default_value = "127.0.0.1:8000")]
    addr: String,
    #[arg(long, default_value_t = 1000)]
    subscribers: usize,
    #[arg(long, default_value_t = 300)]
    events: usize,
    #[arg(long, default_value_t = 2000)]
    payload_bytes: usize,
    /// Offer permessage-deflate (and require the hub to accept it).
    #[arg(long)]
    deflate: bool,
    /// The hub's pid: report its CPU time from the first publish to the last delivery.
    #[arg(long)]
    server_pid: Option<u32>,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let shape = FanoutShape {
        subscribers: args.subscribers,
        events: args.events,
        payload_bytes: args.payload_bytes,
        deflate: args.deflate,
    };
    raw_fanout(&args.addr, shape, args.server_pid).await;
}

/// A subscriber on a raw socket: the handshake, a `subscribe`, then it counts data frames.
struct RawSubscriber {
    stream: tokio::io::BufReader<tokio::net::TcpStream>,
}

impl RawSubscriber {
    async fn connect(addr: &str, deflate: bool) -> RawSubscriber {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("tcp connect");
        stream.set_nodelay(true).expect("nodelay");
        let offer = if deflate {
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
        } else {
            ""
        };
        let request = format!(
            "GET /ws HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{offer}\r\n"
        );
        stream.write_all(request.as_bytes()).await.expect("handshake");
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            head.push(stream.read_u8().await.expect("handshake response"));
        }
        let head = String::from_utf8_lossy(&head).to_lowercase();
        assert!(head.starts_with("http/1.1 101"), "{head}");
        assert_eq!(head.contains("permessage-deflate"), deflate, "negotiation: {head}");
        let mut subscriber = RawSubscriber {
            stream: tokio::io::BufReader::new(stream),
        };
        let subscribe = json!({"id": "s", "type": "subscribe", "topic": "fanout"}).to_string();
        subscriber.send_text(subscribe.as_bytes()).await;
        loop {
            let (_, json) = subscriber.message().await;
            if json["type"] == "subscribed" {
                return subscriber;
            }
        }
    }

    async fn send_text(&mut self, payload: &[u8]) {
        use tokio::io::AsyncWriteExt;
        let key = [1u8, 2, 3, 4];
        let mut frame = vec![0x81];
        match payload.len() {
            n @ 0..=125 => frame.push(0x80 | n as u8),
            n => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
        }
        frame.extend_from_slice(&key);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        self.stream.get_mut().write_all(&frame).await.expect("send");
    }

    /// The next data frame: whether it came compressed, and its payload.
    async fn frame(&mut self) -> (bool, Vec<u8>) {
        use tokio::io::AsyncReadExt;
        loop {
            let first = self.stream.read_u8().await.expect("frame");
            let second = self.stream.read_u8().await.expect("frame");
            let len = match second & 0x7F {
                126 => u64::from(self.stream.read_u16().await.expect("length")),
                127 => self.stream.read_u64().await.expect("length"),
                n => u64::from(n),
            };
            let mut payload = vec![0; len as usize];
            self.stream.read_exact(&mut payload).await.expect("payload");
            match first & 0x0F {
                0x1 | 0x2 => return (first & 0x40 != 0, payload),
                0x8 => panic!("closed by the hub: {payload:?}"),
                _ => {}
            }
        }
    }

    /// The next data frame as JSON, inflated if needed.
    async fn message(&mut self) -> (bool, serde_json::Value) {
        let (compressed, payload) = self.frame().await;
        let payload = if compressed { inflate(&payload) } else { payload };
        (compressed, serde_json::from_slice(&payload).expect("JSON"))
    }
}

/// One message of a server that uses `server_no_context_takeover`.
fn inflate(compressed: &[u8]) -> Vec<u8> {
    let mut input = compressed.to_vec();
    input.extend_from_slice(&[0, 0, 0xFF, 0xFF]);
    let mut inflater = flate2::Decompress::new(false);
    let mut out = Vec::with_capacity(input.len() * 8);
    loop {
        let consumed = inflater.total_in() as usize;
        inflater
            .decompress_vec(&input[consumed..], &mut out, flate2::FlushDecompress::Sync)
            .expect("inflate");
        if inflater.total_in() as usize == input.len() && out.len() < out.capacity() {
            return out;
        }
        out.reserve(out.capacity());
    }
}

/// CPU time (user + system) of a process so far, in µs (from clock ticks of 10 ms).
fn cpu_micros(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("server pid");
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')').expect("stat").1.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    ticks * 10_000
}

struct FanoutShape {
    subscribers: usize,
    events: usize,
    payload_bytes: usize,
    deflate: bool,
}

async fn raw_fanout(addr: &str, shape: FanoutShape, server_pid: Option<u32>) {
    let FanoutShape {
        subscribers,
        events,
        payload_bytes,
        deflate,
    } = shape;
    let started = Instant::now();
    let mut connected = Vec::with_capacity(subscribers);
    for chunk in (0..subscribers).collect::<Vec<_>>().chunks(200) {
        let tasks: Vec<_> = chunk
            .iter()
            .map(|_| {
                let addr = addr.to_owned();
                tokio::spawn(async move { RawSubscriber::connect(&addr, deflate).await })
            })
            .collect();
        for task in tasks {
            connected.push(task.await.expect("connect task"));
        }
    }
    eprintln!(
        "{subscribers} raw subscribers in {:.1}s (deflate: {deflate})",
        started.elapsed().as_secs_f64()
    );
    let received = Arc::new(AtomicU64::new(0));
    let compressed = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = connected
        .into_iter()
        .enumerate()
        .map(|(i, mut subscriber)| {
            let received = Arc::clone(&received);
            let compressed = Arc::clone(&compressed);
            tokio::spawn(async move {
                for n in 0..events {
                    // The first subscriber checks what it gets; the others only count frames.
                    let was_compressed = if i == 0 {
                        let (was_compressed, event) = subscriber.message().await;
                        assert_eq!(event["payload"]["n"], n, "events in order, none lost");
                        was_compressed
                    } else {
                        subscriber.frame().await.0
                    };
                    received.fetch_add(1, Ordering::Relaxed);
                    if was_compressed {
                        compressed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    let row =
        |i: usize| json!({"id": i, "name": format!("sensor-{i}"), "value": i as f64 * 1.5, "ok": !i.is_multiple_of(3)});
    let mut rows = Vec::new();
    while serde_json::to_string(&rows).expect("json").len() < payload_bytes {
        rows.push(row(rows.len()));
    }
    let http = reqwest::Client::new();
    let cpu_before = server_pid.map(cpu_micros);
    let started = Instant::now();
    for n in 0..events {
        let body = json!({"topic": "fanout", "event": "tick", "payload": {"n": n, "rows": rows}});
        let response = http
            .post(format!("http://{addr}/api/publish"))
            .json(&body)
            .send()
            .await
            .expect("publish");
        assert!(response.status().is_success());
    }
    for reader in readers {
        reader.await.expect("reader");
    }
    let total = started.elapsed();
    if let (Some(pid), Some(before)) = (server_pid, cpu_before) {
        let cpu = cpu_micros(pid) - before;
        println!(
            "server CPU: {:.1} us/event, {:.3} us/delivery",
            cpu as f64 / events as f64,
            cpu as f64 / (events * subscribers) as f64
        );
    }
    let deliveries = received.load(Ordering::Relaxed);
    println!(
        "{events} events of {payload_bytes} payload bytes to {subscribers} subscribers in {:.2}s; compressed: {}",
        total.as_secs_f64(),
        compressed.load(Ordering::Relaxed)
    );
    println!(
        "delivered: {:.0} messages/s (zero loss: {})",
        deliveries as f64 / total.as_secs_f64(),
        deliveries == (events * subscribers) as u64
    );
}
