//! Both halves of a connection driven over an in-memory pipe by a hand-written client.
//! (`crates/wshub/tests/websocket_conformance.rs` does the same against the real binary.)

use super::deflate;
use super::extension::DeflateParams;
use super::frame::{FrameHeader, OpCode, apply_mask};
use super::socket::{self, CompressionStats, Deflate, ReadIo, SocketConfig, WriteIo};
use super::{Inbound, OutFrame, ReadError, SharedText, WsReader, WsWriter};
use bytes::{Bytes, BytesMut};
use flate2::write::DeflateEncoder;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use wshub_protocol::CloseCode;

#[derive(Default)]
struct Counted {
    messages: AtomicU64,
    plain: AtomicU64,
    wire: AtomicU64,
    connections: AtomicI64,
}

impl CompressionStats for Counted {
    fn written(&self, messages: u64, plain: u64, wire: u64) {
        self.messages.fetch_add(messages, Ordering::Relaxed);
        self.plain.fetch_add(plain, Ordering::Relaxed);
        self.wire.fetch_add(wire, Ordering::Relaxed);
    }

    fn connection(&self, open: bool) {
        self.connections.fetch_add(if open { 1 } else { -1 }, Ordering::Relaxed);
    }
}

fn deflate_with(stats: &Arc<Counted>, threshold: usize, client_no_context_takeover: bool) -> Deflate {
    Deflate {
        params: DeflateParams {
            client_no_context_takeover,
            server_max_window_bits: false,
        },
        threshold,
        stats: Arc::clone(stats) as Arc<dyn CompressionStats>,
    }
}

/// The server's halves and the client's end of the pipe.
fn connection(deflate: Option<Deflate>, max_message_size: usize, pipe: usize) -> (WsReader, WsWriter, DuplexStream) {
    let (client, server) = tokio::io::duplex(pipe);
    let (read, write) = tokio::io::split(server);
    let (reader, writer) = socket::halves(
        ReadIo::Other(Box::new(read)),
        WriteIo::Other(Box::new(write)),
        Bytes::new(),
        SocketConfig { max_message_size },
        deflate,
    );
    (reader, writer, client)
}

/// A masked client frame.
fn client_frame(opcode: OpCode, fin: bool, rsv1: bool, payload: &[u8]) -> Vec<u8> {
    let mask = [0x12, 0x34, 0x56, 0x78];
    let header = FrameHeader {
        fin,
        rsv1,
        mask: Some(mask),
        ..FrameHeader::server(opcode, false, payload.len())
    };
    let mut out = BytesMut::new();
    header.encode(&mut out);
    let mut body = payload.to_vec();
    apply_mask(&mut body, mask);
    out.extend_from_slice(&body);
    out.to_vec()
}

/// The client's side: reads the server's frames.
struct Client {
    io: DuplexStream,
    buf: BytesMut,
}

impl Client {
    async fn send(&mut self, bytes: &[u8]) {
        self.io.write_all(bytes).await.expect("client write");
    }

    async fn frame(&mut self) -> (FrameHeader, Vec<u8>) {
        loop {
            if let Some((header, len)) = FrameHeader::parse(&self.buf).expect("a valid server frame") {
                let total = len + header.payload_len as usize;
                if self.buf.len() >= total {
                    assert!(header.mask.is_none(), "server frames are never masked");
                    let frame = self.buf.split_to(total);
                    return (header, frame[len..].to_vec());
                }
            }
            let read = tokio::time::timeout(Duration::from_secs(5), self.io.read_buf(&mut self.buf))
                .await
                .expect("a frame in time")
                .expect("client read");
            assert!(read > 0, "the server closed the pipe");
        }
    }
}

fn client(io: DuplexStream) -> Client {
    Client {
        io,
        buf: BytesMut::new(),
    }
}

fn text(s: &str) -> OutFrame {
    OutFrame::Text(SharedText::from_vec(s.as_bytes().to_vec()).expect("utf-8"))
}

fn big_json(len: usize) -> String {
    let mut s = String::from("{\"items\":[");
    let mut i = 0;
    while s.len() < len - 12 {
        s.push_str(&format!("{{\"n\":{i}}},"));
        i += 1;
    }
    s.push_str("{}]}");
    s
}

fn inflate(compressed: &[u8]) -> Vec<u8> {
    let mut with_tail = compressed.to_vec();
    with_tail.extend_from_slice(&[0, 0, 0xFF, 0xFF]);
    let mut out = Vec::new();
    let mut decoder = flate2::read::DeflateDecoder::new(&with_tail[..]);
    // The sync-flushed stream has no end: read until the decoder runs out of input.
    let _ = std::io::Read::read_to_end(&mut decoder, &mut out);
    out
}

#[tokio::test]
async fn fragments_are_reassembled_and_a_ping_between_them_answered() {
    let (mut reader, mut writer, io) = connection(None, 1024, 1 << 16);
    let mut client = client(io);
    client.send(&client_frame(OpCode::Text, false, false, b"Hel")).await;
    client
        .send(&client_frame(OpCode::Ping, true, false, b"are you there"))
        .await;
    client
        .send(&client_frame(OpCode::Continuation, false, false, b"lo, "))
        .await;
    client
        .send(&client_frame(OpCode::Continuation, true, false, b"world"))
        .await;
    assert!(matches!(reader.next().await, Some(Ok(Inbound::Heartbeat))));
    writer.control_wanted().await;
    writer.flush().await.expect("flush");
    let (pong, data) = client.frame().await;
    assert_eq!((pong.opcode, data.as_slice()), (OpCode::Pong, &b"are you there"[..]));
    match reader.next().await {
        Some(Ok(Inbound::Text(t))) => assert_eq!(&t[..], b"Hello, world"),
        other => panic!("expected the text, got {other:?}"),
    }
}

#[tokio::test]
async fn frames_fed_before_a_flush_leave_together() {
    let (_reader, mut writer, io) = connection(None, 1024, 1 << 20);
    let mut client = client(io);
    writer.feed(text("one")).await.expect("feed");
    writer
        .feed(OutFrame::Binary(Bytes::from(vec![7u8; 40_000])))
        .await
        .expect("feed");
    writer.feed(OutFrame::Ping).await.expect("feed");
    writer.feed(text("two")).await.expect("feed");
    writer.flush().await.expect("flush");
    let (h, data) = client.frame().await;
    assert_eq!(
        (h.opcode, h.fin, h.rsv1, data.as_slice()),
        (OpCode::Text, true, false, &b"one"[..])
    );
    let (h, data) = client.frame().await;
    assert_eq!((h.opcode, data.len()), (OpCode::Binary, 40_000));
    assert!(data.iter().all(|b| *b == 7));
    assert_eq!(client.frame().await.0.opcode, OpCode::Ping);
    assert_eq!(client.frame().await.1, b"two");
}

#[tokio::test]
async fn the_clients_close_is_echoed_with_its_code() {
    let (mut reader, mut writer, io) = connection(None, 1024, 1 << 16);
    let mut client = client(io);
    let mut close = 4321u16.to_be_bytes().to_vec();
    close.extend_from_slice(b"done");
    client.send(&client_frame(OpCode::Close, true, false, &close)).await;
    assert!(matches!(reader.next().await, Some(Ok(Inbound::Close(Some(4321))))));
    assert!(reader.next().await.is_none(), "nothing is read after a close");
    // The hub asks for a normal close; the client's code goes back instead.
    writer.close(1000, "").await.expect("close");
    let (h, data) = client.frame().await;
    assert_eq!((h.opcode, data.as_slice()), (OpCode::Close, &4321u16.to_be_bytes()[..]));
    let mut rest = Vec::new();
    client.io.read_to_end(&mut rest).await.expect("end of stream");
    assert!(rest.is_empty(), "the server ended the stream after its close");
    assert!(
        writer.feed(text("late")).await.is_err(),
        "nothing after the close frame"
    );
}

#[tokio::test]
async fn the_servers_close_carries_code_and_reason() {
    let (_reader, mut writer, io) = connection(None, 1024, 1 << 16);
    let mut client = client(io);
    writer.close(4008, &"é".repeat(100)).await.expect("close");
    let (h, data) = client.frame().await;
    assert_eq!(h.opcode, OpCode::Close);
    assert_eq!(&data[..2], &4008u16.to_be_bytes());
    assert!(data.len() <= 125, "the reason is cut to fit a control frame");
    assert!(std::str::from_utf8(&data[2..]).is_ok(), "cut on a character boundary");
}

#[tokio::test]
async fn protocol_errors_are_named() {
    let mut unmasked = BytesMut::new();
    FrameHeader::server(OpCode::Text, false, 2).encode(&mut unmasked);
    unmasked.extend_from_slice(b"hi");
    let cases = [
        (unmasked.to_vec(), CloseCode::Protocol),
        (client_frame(OpCode::Text, true, true, b"x"), CloseCode::Protocol),
        (
            client_frame(OpCode::Continuation, true, false, b"x"),
            CloseCode::Protocol,
        ),
        (
            client_frame(OpCode::Text, true, false, b"\xC3\x28"),
            CloseCode::InvalidPayload,
        ),
        (client_frame(OpCode::Binary, true, false, &[0; 2000]), CloseCode::TooBig),
        // A 2^40-byte text frame: refused from its header.
        (
            vec![0x81, 0x80 | 127, 0, 0, 1, 0, 0, 0, 0, 0, 1, 2, 3, 4],
            CloseCode::TooBig,
        ),
        // A Pong of 200 bytes, a Ping without FIN, a frame with RSV1 and RSV2.
        (vec![0x8A, 0x80 | 126, 0, 200, 1, 2, 3, 4], CloseCode::Protocol),
        (vec![0x09, 0x80, 1, 2, 3, 4], CloseCode::Protocol),
        (vec![0xE1, 0x80, 1, 2, 3, 4], CloseCode::Protocol),
    ];
    for (bytes, expected) in cases {
        let (mut reader, _writer, io) = connection(None, 1024, 1 << 16);
        let mut client = client(io);
        client.send(&bytes).await;
        match reader.next().await {
            Some(Err(error)) => assert_eq!(error.close_code(), expected, "{bytes:02x?} gave {error:?}"),
            other => panic!("{bytes:02x?} gave {other:?}"),
        }
        assert!(reader.next().await.is_none(), "reading stops after an error");
    }
}

/// A client's permessage-deflate message (context kept, as most clients do).
fn deflated(encoder: &mut DeflateEncoder<Vec<u8>>, message: &[u8]) -> Vec<u8> {
    encoder.write_all(message).expect("write");
    encoder.flush().expect("sync flush");
    let mut out = std::mem::take(encoder.get_mut());
    out.truncate(out.len() - 4);
    out
}

#[tokio::test]
async fn compressed_messages_are_inflated_with_the_clients_context() {
    let stats = Arc::new(Counted::default());
    let (mut reader, _writer, io) = connection(Some(deflate_with(&stats, 64, false)), 1 << 20, 1 << 16);
    let mut client = client(io);
    let mut encoder = DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    let message = big_json(3000);
    for _ in 0..3 {
        let compressed = deflated(&mut encoder, message.as_bytes());
        // Split across two frames: RSV1 on the first only.
        let (a, b) = compressed.split_at(compressed.len() / 2);
        client.send(&client_frame(OpCode::Text, false, true, a)).await;
        client.send(&client_frame(OpCode::Continuation, true, false, b)).await;
        match reader.next().await {
            Some(Ok(Inbound::Text(t))) => assert_eq!(&t[..], message.as_bytes()),
            other => panic!("expected the text, got {other:?}"),
        }
    }
    // An uncompressed message is still fine on the same connection.
    client.send(&client_frame(OpCode::Text, true, false, b"plain")).await;
    assert!(matches!(reader.next().await, Some(Ok(Inbound::Text(t))) if &t[..] == b"plain"));
}

#[tokio::test]
async fn a_decompression_bomb_is_too_big() {
    let stats = Arc::new(Counted::default());
    let (mut reader, _writer, io) = connection(Some(deflate_with(&stats, 64, false)), 1 << 20, 1 << 16);
    let mut client = client(io);
    let mut encoder = DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    let bomb = deflated(&mut encoder, &vec![0u8; 10 << 20]);
    assert!(bomb.len() < 64 * 1024);
    client.send(&client_frame(OpCode::Binary, true, true, &bomb)).await;
    assert_eq!(reader.next().await.and_then(Result::err), Some(ReadError::TooBig));
}

#[tokio::test]
async fn large_messages_go_compressed_and_small_ones_plain() {
    let stats = Arc::new(Counted::default());
    let (_reader, mut writer, io) = connection(Some(deflate_with(&stats, 1024, false)), 1024, 1 << 20);
    let mut client = client(io);
    assert_eq!(stats.connections.load(Ordering::Relaxed), 1);
    let big = big_json(4096);
    writer.feed(text(&big)).await.expect("feed");
    writer.feed(text("{\"small\":true}")).await.expect("feed");
    writer
        .feed(OutFrame::Binary(Bytes::from(vec![0u8; 4096])))
        .await
        .expect("feed");
    writer.flush().await.expect("flush");
    let (h, data) = client.frame().await;
    assert!(h.rsv1, "at the threshold or above: compressed");
    assert!(data.len() < big.len() / 2);
    assert_eq!(inflate(&data), big.as_bytes());
    let (h, data) = client.frame().await;
    assert!(!h.rsv1, "under the threshold: plain");
    assert_eq!(data, b"{\"small\":true}");
    let (h, _) = client.frame().await;
    assert!(!h.rsv1 && h.opcode == OpCode::Binary, "binary goes plain");
    assert_eq!(stats.messages.load(Ordering::Relaxed), 1);
    assert_eq!(stats.plain.load(Ordering::Relaxed), big.len() as u64);
    assert_eq!(stats.wire.load(Ordering::Relaxed), data_len_of_first(&big));
    drop(writer);
    assert_eq!(stats.connections.load(Ordering::Relaxed), 0);
}

fn data_len_of_first(big: &str) -> u64 {
    deflate::compress(big.as_bytes()).expect("compresses").len() as u64
}

#[tokio::test]
async fn one_event_to_many_compressing_connections_is_compressed_once() {
    let stats = Arc::new(Counted::default());
    let event = SharedText::from_json(Bytes::from(big_json(2048))).expect("utf-8");
    let mut clients = Vec::new();
    let before = deflate::compressions_on_this_thread();
    let mut first: Option<Vec<u8>> = None;
    for _ in 0..50 {
        let (_reader, mut writer, io) = connection(Some(deflate_with(&stats, 1024, false)), 1024, 1 << 16);
        let mut client = client(io);
        writer.feed(OutFrame::Text(event.clone())).await.expect("feed");
        writer.flush().await.expect("flush");
        let (h, data) = client.frame().await;
        assert!(h.rsv1);
        assert_eq!(
            first.get_or_insert_with(|| data.clone()),
            &data,
            "the same bytes for all"
        );
        clients.push(client);
    }
    assert_eq!(
        deflate::compressions_on_this_thread() - before,
        1,
        "one compression for 50 connections"
    );
    assert_eq!(stats.messages.load(Ordering::Relaxed), 50);
}

#[tokio::test]
async fn an_abandoned_write_is_finished_before_the_close() {
    let (_reader, mut writer, io) = connection(None, 1024, 1024);
    let mut client = client(io);
    let payload = vec![b'x'; 100_000];
    let body = String::from_utf8(payload.clone()).expect("ascii");
    let blocked = tokio::time::timeout(Duration::from_millis(50), async {
        writer.feed(text(&body)).await?;
        writer.flush().await
    })
    .await;
    assert!(blocked.is_err(), "the pipe is full: the write is abandoned");
    let reading = tokio::spawn(async move {
        let (h, data) = client.frame().await;
        let (close, _) = client.frame().await;
        (h.opcode, data, close.opcode)
    });
    writer.close(4008, "slow consumer").await.expect("close");
    let (opcode, data, close) = reading.await.expect("client");
    assert_eq!((opcode, close), (OpCode::Text, OpCode::Close));
    assert_eq!(data, payload, "the interrupted frame arrives whole");
}

/// A masked client frame (so the reader looks past the mask check) whose first byte — FIN, RSV
/// bits, opcode, reserved opcodes included — is arbitrary.
fn arbitrary_frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = client_frame(OpCode::Binary, true, false, payload);
    frame[0] = first;
    frame
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    #[test]
    fn the_reader_survives_any_frames_and_bytes(
        frames in proptest::collection::vec(
            (proptest::prelude::any::<u8>(), proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)),
            0..8,
        ),
        garbage in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
        deflate in proptest::prelude::any::<bool>(),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        runtime.block_on(async {
            let stats = Arc::new(Counted::default());
            let (mut reader, _writer, mut io) =
                connection(deflate.then(|| deflate_with(&stats, 64, false)), 256, 1 << 16);
            for (first, payload) in &frames {
                io.write_all(&arbitrary_frame(*first, payload)).await.expect("write");
            }
            io.write_all(&garbage).await.expect("write");
            drop(io);
            let mut steps = 0;
            while let Some(result) = reader.next().await {
                steps += 1;
                assert!(steps <= frames.len() + garbage.len() + 1, "the reader makes progress");
                if result.is_err() {
                    break;
                }
            }
            assert!(reader.next().await.is_none());
        });
    }
}

#[tokio::test]
async fn an_idle_tcp_reader_holds_no_buffer() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let mut client = tokio::net::TcpStream::connect(listener.local_addr().expect("addr"))
        .await
        .expect("connect");
    let (server, _) = listener.accept().await.expect("accept");
    let (read, write) = server.into_split();
    let (mut reader, _writer) = socket::halves(
        ReadIo::Tcp(read),
        WriteIo::Tcp(write),
        Bytes::new(),
        SocketConfig {
            max_message_size: 1 << 20,
        },
        None,
    );
    client
        .write_all(&client_frame(OpCode::Text, true, false, b"{\"type\":\"ping\"}"))
        .await
        .expect("send");
    assert!(matches!(reader.next().await, Some(Ok(Inbound::Text(_)))));
    let idle = tokio::time::timeout(Duration::from_millis(20), reader.next()).await;
    assert!(idle.is_err(), "nothing more to read");
    assert_eq!(reader.buffer_capacity(), 0, "no buffer while idle");
}
