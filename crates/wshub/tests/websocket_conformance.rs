//! RFC 6455 and RFC 7692 conformance of the hub's own framing, through the real binary.
//!
//! The client here is written by hand on a raw TCP socket, so it can send what a WebSocket
//! library refuses to (unmasked frames, reserved bits, oversized control frames, bombs). It
//! shares no code with the hub: frames are built and read with the few lines below, and
//! compressed data is made and checked with flate2 directly.

mod common;

use common::{Hub, WAIT};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const FIN: u8 = 0x80;
const RSV1: u8 = 0x40;
const RSV2: u8 = 0x20;
const RSV3: u8 = 0x10;
const CONTINUATION: u8 = 0x0;
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

/// A frame from the server: its first byte (FIN, RSV, opcode) and payload.
#[derive(Debug)]
struct Frame {
    first: u8,
    payload: Vec<u8>,
}

impl Frame {
    fn opcode(&self) -> u8 {
        self.first & 0x0F
    }

    fn rsv1(&self) -> bool {
        self.first & RSV1 != 0
    }
}

/// A hand-written WebSocket client.
struct Raw {
    stream: TcpStream,
    /// The 101 answer's head.
    head: String,
}

impl Raw {
    /// Upgrades `path`, offering `extensions` if given.
    async fn connect(hub: &Hub, path: &str, extensions: Option<&str>) -> Raw {
        let mut stream = TcpStream::connect(&hub.addr).await.expect("tcp connect");
        let offer = extensions
            .map(|e| format!("Sec-WebSocket-Extensions: {e}\r\n"))
            .unwrap_or_default();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{offer}\r\n",
            hub.addr
        );
        stream.write_all(request.as_bytes()).await.expect("send handshake");
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            head.push(stream.read_u8().await.expect("handshake response"));
        }
        let head = String::from_utf8(head).expect("ASCII head");
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        assert!(
            head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
            "the RFC's accept key: {head}"
        );
        Raw { stream, head }
    }

    /// Connects to `/ws` and reads `connection.established`.
    async fn session(hub: &Hub, extensions: Option<&str>) -> Raw {
        let mut raw = Raw::connect(hub, "/ws", extensions).await;
        let established = raw.json().await;
        assert_eq!(established["type"], "connection.established");
        raw
    }

    /// The negotiated `Sec-WebSocket-Extensions`, if any.
    fn extensions(&self) -> Option<&str> {
        self.head
            .lines()
            .find_map(|l| l.strip_prefix("sec-websocket-extensions: "))
            .map(str::trim)
    }

    /// Sends a frame masked (as clients must) unless `masked` is false.
    async fn send_with(&mut self, first: u8, payload: &[u8], masked: bool) {
        let mut frame = vec![first];
        let mask_bit = if masked { 0x80 } else { 0 };
        match payload.len() {
            n @ 0..=125 => frame.push(mask_bit | n as u8),
            n @ 126..=0xFFFF => {
                frame.push(mask_bit | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(mask_bit | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        let key = [0x5A, 0xC3, 0x1E, 0x77];
        if masked {
            frame.extend_from_slice(&key);
            frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        } else {
            frame.extend_from_slice(payload);
        }
        self.stream.write_all(&frame).await.expect("send frame");
    }

    async fn send(&mut self, first: u8, payload: &[u8]) {
        self.send_with(first, payload, true).await;
    }

    /// The next frame, or `None` once the server ended the stream.
    async fn frame(&mut self) -> Option<Frame> {
        let read = async {
            let first = self.stream.read_u8().await.ok()?;
            let second = self.stream.read_u8().await.ok()?;
            assert_eq!(second & 0x80, 0, "server frames are not masked");
            let len = match second & 0x7F {
                126 => u64::from(self.stream.read_u16().await.ok()?),
                127 => self.stream.read_u64().await.ok()?,
                n => u64::from(n),
            };
            let mut payload = vec![0; len as usize];
            self.stream.read_exact(&mut payload).await.ok()?;
            Some(Frame { first, payload })
        };
        tokio::time::timeout(WAIT, read).await.expect("a frame in time")
    }

    /// The next text message as JSON, inflated if it came compressed.
    async fn json(&mut self) -> Value {
        let (_, text) = self.text().await;
        serde_json::from_slice(&text).expect("JSON text")
    }

    /// The next text message (pings skipped): whether it was compressed, and its bytes.
    async fn text(&mut self) -> (bool, Vec<u8>) {
        loop {
            let frame = self.frame().await.expect("a text frame");
            match frame.opcode() {
                PING => continue,
                TEXT => {
                    assert_ne!(frame.first & FIN, 0, "the hub does not fragment");
                    return if frame.rsv1() {
                        (true, inflate(&frame.payload))
                    } else {
                        (false, frame.payload)
                    };
                }
                other => panic!("expected text, got opcode {other:#x}: {frame:?}"),
            }
        }
    }

    /// Reads until the close frame and returns its code; then expects the end of the stream.
    async fn close_code(&mut self) -> Option<u16> {
        loop {
            let frame = self.frame().await.expect("a close frame before the end");
            if frame.opcode() == CLOSE {
                assert!(self.frame().await.is_none(), "nothing after the close frame");
                return frame.payload.get(..2).map(|c| u16::from_be_bytes([c[0], c[1]]));
            }
        }
    }

    /// A request and the reply with its id.
    async fn request(&mut self, message: Value) -> Value {
        self.send(FIN | TEXT, message.to_string().as_bytes()).await;
        loop {
            let reply = self.json().await;
            if reply["id"] == message["id"] && reply.get("offset").is_none() {
                return reply;
            }
        }
    }
}

/// A message as a permessage-deflate client sends it (raw DEFLATE, sync flush, tail removed).
fn deflate(plain: &[u8]) -> Vec<u8> {
    let mut compress = Compress::new(Compression::default(), false);
    let mut out = Vec::with_capacity(plain.len() + 64);
    loop {
        let consumed = compress.total_in() as usize;
        compress
            .compress_vec(&plain[consumed..], &mut out, FlushCompress::Sync)
            .expect("compress");
        if compress.total_in() as usize == plain.len() && out.len() < out.capacity() {
            break;
        }
        out.reserve(out.capacity());
    }
    assert!(out.ends_with(&[0, 0, 0xFF, 0xFF]));
    out.truncate(out.len() - 4);
    out
}

/// What the server compressed (each message stands alone: server_no_context_takeover).
fn inflate(compressed: &[u8]) -> Vec<u8> {
    let mut input = compressed.to_vec();
    input.extend_from_slice(&[0, 0, 0xFF, 0xFF]);
    let mut decompress = Decompress::new(false);
    let mut out = Vec::with_capacity(input.len() * 8);
    loop {
        let consumed = decompress.total_in() as usize;
        decompress
            .decompress_vec(&input[consumed..], &mut out, FlushDecompress::Sync)
            .expect("a valid DEFLATE stream");
        if decompress.total_in() as usize == input.len() && out.len() < out.capacity() {
            return out;
        }
        out.reserve(out.capacity());
    }
}

/// The hub's peak resident memory so far (`VmHWM`), in KiB: an allocation that was made and
/// freed again still shows in it, where the current RSS would already have shrunk back.
fn peak_rss_kib(hub: &Hub) -> u64 {
    let pid = hub.child.id().expect("running");
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("the hub's status")
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

fn ping_request(id: &str) -> Vec<u8> {
    json!({"id": id, "type": "ping"}).to_string().into_bytes()
}

// ---------------------------------------------------------------- RFC 6455

#[tokio::test]
async fn a_fragmented_text_is_reassembled_and_a_ping_between_fragments_answered() {
    let hub = Hub::start("").await;
    let mut raw = Raw::session(&hub, None).await;
    let request = ping_request("frag");
    let (a, rest) = request.split_at(5);
    let (b, c) = rest.split_at(7);
    raw.send(TEXT, a).await;
    raw.send(FIN | PING, b"mid-message").await;
    raw.send(CONTINUATION, b).await;
    let pong = raw.frame().await.expect("a pong");
    assert_eq!((pong.opcode(), pong.payload.as_slice()), (PONG, &b"mid-message"[..]));
    raw.send(FIN | CONTINUATION, c).await;
    let reply = raw.json().await;
    assert_eq!(
        (reply["type"].as_str(), reply["id"].as_str()),
        (Some("pong"), Some("frag"))
    );
}

#[tokio::test]
async fn a_clients_close_is_echoed_with_its_code() {
    let hub = Hub::start("").await;
    let mut raw = Raw::session(&hub, None).await;
    let mut close = 4321u16.to_be_bytes().to_vec();
    close.extend_from_slice(b"see you");
    raw.send(FIN | CLOSE, &close).await;
    assert_eq!(raw.close_code().await, Some(4321));
}

#[tokio::test]
async fn protocol_violations_close_with_1002() {
    let hub = Hub::start("").await;
    let ping = ping_request("x");
    let too_long_ping = [b'p'; 126];
    let cases: [(&str, u8, &[u8], bool); 8] = [
        ("unmasked client frame", FIN | TEXT, &ping, false),
        ("RSV2 set", FIN | RSV2 | TEXT, &ping, true),
        ("RSV3 set", FIN | RSV3 | TEXT, &ping, true),
        ("RSV1 without permessage-deflate", FIN | RSV1 | TEXT, &ping, true),
        ("control frame over 125 bytes", FIN | PING, &too_long_ping, true),
        ("fragmented control frame", PING, b"x", true),
        ("continuation without a start", FIN | CONTINUATION, &ping, true),
        ("reserved opcode", FIN | 0x3, b"", true),
    ];
    for (what, first, payload, masked) in cases {
        let mut raw = Raw::session(&hub, None).await;
        raw.send_with(first, payload, masked).await;
        assert_eq!(raw.close_code().await, Some(1002), "{what}");
    }
    // A new message while one is still open.
    let mut raw = Raw::session(&hub, None).await;
    raw.send(TEXT, b"{").await;
    raw.send(FIN | TEXT, &ping).await;
    assert_eq!(
        raw.close_code().await,
        Some(1002),
        "data frame inside a fragmented message"
    );
    // A close code no endpoint may send.
    let mut raw = Raw::session(&hub, None).await;
    raw.send(FIN | CLOSE, &1005u16.to_be_bytes()).await;
    assert_eq!(raw.close_code().await, Some(1002), "close code 1005 on the wire");
}

#[tokio::test]
async fn invalid_utf8_text_closes_with_1007() {
    let hub = Hub::start("").await;
    let mut raw = Raw::session(&hub, None).await;
    raw.send(FIN | TEXT, b"{\"type\":\"ping\",\"x\":\"\xC3\x28\"}").await;
    assert_eq!(raw.close_code().await, Some(1007));
    // Split inside a multi-byte character is fine; only the whole message counts.
    let mut raw = Raw::session(&hub, None).await;
    let message = "{\"id\":\"é\",\"type\":\"ping\"}".as_bytes();
    let at = message.iter().position(|b| *b == 0xC3).expect("é") + 1;
    raw.send(TEXT, &message[..at]).await;
    raw.send(FIN | CONTINUATION, &message[at..]).await;
    assert_eq!(raw.json().await["id"], "é");
}

#[tokio::test]
async fn oversize_messages_close_with_1009_even_when_only_announced() {
    let hub = Hub::start("websocket:\n  max_message_size: 1KiB\n").await;
    let mut raw = Raw::session(&hub, None).await;
    raw.send(FIN | BINARY, &[0; 1025]).await;
    assert_eq!(raw.close_code().await, Some(1009), "one frame over the limit");

    let mut raw = Raw::session(&hub, None).await;
    raw.send(TEXT, &[b' '; 600]).await;
    raw.send(FIN | CONTINUATION, &[b' '; 600]).await;
    assert_eq!(raw.close_code().await, Some(1009), "fragments adding up past the limit");

    // A header announcing 2^62 bytes, and none of them sent: refused from the header alone.
    let before = peak_rss_kib(&hub);
    let mut raw = Raw::session(&hub, None).await;
    let mut header = vec![FIN | BINARY, 0x80 | 127];
    header.extend_from_slice(&(1u64 << 62).to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    raw.stream.write_all(&header).await.expect("send header");
    assert_eq!(raw.close_code().await, Some(1009), "announced by a 64-bit length");
    assert!(
        peak_rss_kib(&hub) < before + 4096,
        "nothing of the announced size was allocated"
    );
}

// ---------------------------------------------------------------- RFC 7692

const OFFER: &str = "permessage-deflate; client_max_window_bits";

fn compression(threshold: &str) -> String {
    format!("compression:\n  enabled: true\n  threshold: {threshold}\n")
}

#[tokio::test]
async fn every_websocket_path_negotiates_permessage_deflate() {
    let hub = Hub::start("").await;
    for path in ["/ws", "/ws/metrics", "/ws/stream/metrics"] {
        let raw = Raw::connect(&hub, path, Some(OFFER)).await;
        assert_eq!(
            raw.extensions(),
            Some("permessage-deflate; server_no_context_takeover"),
            "{path}"
        );
        let plain = Raw::connect(&hub, path, None).await;
        assert_eq!(plain.extensions(), None, "{path} without an offer");
    }
    let raw = Raw::connect(
        &hub,
        "/ws",
        Some("permessage-deflate; server_max_window_bits=10, permessage-deflate; client_no_context_takeover"),
    )
    .await;
    assert_eq!(
        raw.extensions(),
        Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
        "the first offer asks for a window the hub cannot do; the second is taken"
    );
    let raw = Raw::connect(&hub, "/ws", Some("permessage-deflate; server_max_window_bits=9")).await;
    assert_eq!(raw.extensions(), None, "no acceptable offer: no compression");
}

#[tokio::test]
async fn events_at_the_threshold_go_compressed_and_smaller_ones_plain() {
    let hub = Hub::start(&compression("1KiB")).await;
    let mut raw = Raw::session(&hub, Some(OFFER)).await;
    let reply = raw
        .request(json!({"id": "s", "type": "subscribe", "topic": "room"}))
        .await;
    assert_eq!(reply["type"], "subscribed");
    let big = json!({"rows": (0..100).map(|i| json!({"n": i, "name": format!("row {i}")})).collect::<Vec<_>>()});
    hub.publish("room", "big", big.clone()).await;
    hub.publish("room", "small", json!({"n": 1})).await;
    let (compressed, bytes) = raw.text().await;
    let event: Value = serde_json::from_slice(&bytes).expect("JSON");
    assert!(compressed && bytes.len() >= 1024, "{} bytes", bytes.len());
    assert_eq!((event["type"].as_str(), &event["payload"]), (Some("big"), &big));
    let (compressed, bytes) = raw.text().await;
    let event: Value = serde_json::from_slice(&bytes).expect("JSON");
    assert!(!compressed, "under the threshold");
    assert_eq!(event["payload"], json!({"n": 1}));

    // Every compressing subscriber gets the same compressed bytes, and the status counts them.
    let mut others = Vec::new();
    for i in 0..5 {
        let mut other = Raw::session(&hub, Some(OFFER)).await;
        other
            .request(json!({"id": format!("s{i}"), "type": "subscribe", "topic": "room"}))
            .await;
        others.push(other);
    }
    hub.publish("room", "big", big.clone()).await;
    let mut wire = Vec::new();
    for other in others.iter_mut().chain([&mut raw]) {
        let frame = loop {
            let frame = other.frame().await.expect("the event");
            if frame.opcode() == TEXT {
                break frame;
            }
        };
        assert!(frame.rsv1());
        wire.push(frame.payload);
    }
    assert!(wire.windows(2).all(|w| w[0] == w[1]), "one compressed form for all");
    // Writers count after their flush returns, which may be just after the client read.
    common::eventually("the status to count every compressed event", || async {
        hub.get("/ws/status").await.1["compression"]["messages"].as_u64() == Some(7)
    })
    .await;
    let (_, status) = hub.get("/ws/status").await;
    let c = &status["compression"];
    assert_eq!(
        (c["enabled"].as_bool(), c["threshold"].as_u64()),
        (Some(true), Some(1024))
    );
    assert_eq!(c["connections"], 6);
    assert!(
        c["saved_bytes"].as_u64() > Some(0) && c["ratio"].as_f64() < Some(0.5),
        "{c}"
    );
    let metrics = reqwest::get(hub.url("/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let saved = metrics
        .lines()
        .find_map(|l| l.strip_prefix("wshub_compression_saved_bytes_total "))
        .and_then(|v| v.parse::<u64>().ok())
        .expect("the counter");
    assert_eq!(Some(saved), c["saved_bytes"].as_u64());
}

#[tokio::test]
async fn a_compressed_publish_is_accepted() {
    let hub = Hub::start(&common::with_secret("")).await;
    let path = format!("/ws?token={}", common::token("ana", "admin", 3600));
    let mut raw = Raw::connect(&hub, &path, Some(OFFER)).await;
    assert_eq!(raw.json().await["type"], "connection.established");
    raw.request(json!({"id": "s", "type": "subscribe", "topic": "room"}))
        .await;
    let payload = json!({"text": "hello ".repeat(500)});
    let publish = json!({"id": "p", "type": "publish", "topic": "room", "event": "chat", "payload": payload});
    let compressed = deflate(publish.to_string().as_bytes());
    // Split over two frames: RSV1 on the first only.
    let (a, b) = compressed.split_at(compressed.len() / 2);
    raw.send(RSV1 | TEXT, a).await;
    raw.send(FIN | CONTINUATION, b).await;
    let mut replied = false;
    let mut delivered = false;
    while !(replied && delivered) {
        let message = raw.json().await;
        match message["type"].as_str() {
            Some("published") => replied = true,
            Some("chat") => {
                assert_eq!(message["payload"], payload);
                delivered = true;
            }
            other => panic!("unexpected {other:?}: {message}"),
        }
    }
}

#[tokio::test]
async fn a_decompression_bomb_closes_with_1009_without_inflating_it() {
    let hub = Hub::start("").await;
    let mut raw = Raw::session(&hub, Some(OFFER)).await;
    let bomb = deflate(&vec![0u8; 10 << 20]);
    assert!(bomb.len() < 64 * 1024, "{} bytes", bomb.len());
    let before = peak_rss_kib(&hub);
    raw.send(FIN | RSV1 | BINARY, &bomb).await;
    assert_eq!(raw.close_code().await, Some(1009));
    let after = peak_rss_kib(&hub);
    assert!(
        after < before + 8 * 1024,
        "peak RSS went from {before} KiB to {after} KiB"
    );
}

#[tokio::test]
async fn with_compression_disabled_nothing_is_negotiated_and_rsv1_is_refused() {
    let hub = Hub::start("compression:\n  enabled: false\n").await;
    let mut raw = Raw::session(&hub, Some(OFFER)).await;
    assert_eq!(raw.extensions(), None);
    raw.send(FIN | RSV1 | TEXT, &deflate(&ping_request("z"))).await;
    assert_eq!(raw.close_code().await, Some(1002));
    let (_, status) = hub.get("/ws/status").await;
    assert_eq!(status["compression"]["enabled"], false);
}

#[tokio::test]
async fn a_library_client_without_compression_still_works() {
    // tokio-tungstenite offers no extension: the hub's framing against an independent peer.
    let hub = Hub::start("").await;
    let (mut client, _) = hub.connect("").await;
    let reply = client
        .request("subscribe", json!({"topic": "room"}), WAIT)
        .await
        .expect("reply");
    assert_eq!(reply["type"], "subscribed");
    let big = json!({"blob": "x".repeat(200_000)});
    hub.publish("room", "big", big.clone()).await;
    let event = client.next_of_type("big", WAIT).await.expect("the event");
    assert_eq!(event["payload"], big);
}
