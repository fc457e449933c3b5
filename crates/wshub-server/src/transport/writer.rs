//! The writing half of a connection: [`OutFrame`]s to bytes on the socket.
//!
//! Frames fed between two flushes are gathered in one buffer and leave in one write; a
//! payload too large to be worth copying is written from its shared bytes instead (one
//! vectored write with the buffered frames before it). The buffer is released after each
//! flush, so an idle connection holds none. Before each flush the Pong owed to the client's
//! latest Ping is added. On a connection that negotiated permessage-deflate, data messages of
//! at least the threshold are sent compressed (RSV1), a shared event's compressed form made
//! once for all its subscribers (`text.rs`).
//!
//! Every method keeps what is still unwritten in `self`, so a write abandoned at an `.await`
//! (a timeout, a close request) leaves the stream consistent: the next write finishes the
//! interrupted frame before anything else.

use super::control::Control;
use super::frame::{FrameHeader, MAX_HEADER_LEN, OpCode};
use super::socket::{CompressionStats, Deflate, WriteIo};
use super::text::SharedText;
use bytes::{Buf, Bytes, BytesMut};
use std::io::IoSlice;
use std::sync::Arc;
use thiserror::Error;
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Buffered bytes past which a batch is written before more frames are gathered.
const WRITE_BUFFER: usize = 64 * 1024;
/// Payloads above this are written from their own bytes rather than copied into the buffer.
const COPY_LIMIT: usize = 16 * 1024;

/// A frame to send.
#[derive(Debug, Clone)]
pub enum OutFrame {
    /// A text message.
    Text(SharedText),
    /// A binary message (sent uncompressed).
    Binary(Bytes),
    /// A heartbeat Ping.
    Ping,
}

impl OutFrame {
    /// Payload size, for the outbound byte budget.
    pub fn len(&self) -> usize {
        match self {
            OutFrame::Text(t) => t.len(),
            OutFrame::Binary(b) => b.len(),
            OutFrame::Ping => 0,
        }
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why a write failed.
#[derive(Debug, Error)]
#[error("write failed: {0}")]
pub struct WriteError(String);

impl From<std::io::Error> for WriteError {
    fn from(error: std::io::Error) -> Self {
        WriteError(error.to_string())
    }
}

/// What permessage-deflate means for this connection's writes.
pub(super) struct Outbound {
    /// Messages of at least this many bytes are compressed.
    pub threshold: usize,
    /// Where the bytes saved are counted.
    pub stats: Arc<dyn CompressionStats>,
}

/// Compression done since the last flush, reported once the flush succeeded.
#[derive(Debug, Default)]
struct Tally {
    messages: u64,
    plain: u64,
    wire: u64,
}

/// The writing half of a connection.
pub struct WsWriter {
    io: WriteIo,
    /// Encoded frames not written yet.
    head: BytesMut,
    /// A large payload to write after `head`, from its own bytes.
    body: Bytes,
    control: Arc<Control>,
    compression: Option<Outbound>,
    tally: Tally,
    /// Set once the close frame is queued: nothing may follow it.
    closed: bool,
}

impl WsWriter {
    pub(super) fn new(io: WriteIo, control: Arc<Control>, compression: Option<Outbound>) -> WsWriter {
        if let Some(c) = &compression {
            c.stats.connection(true);
        }
        WsWriter {
            io,
            head: BytesMut::new(),
            body: Bytes::new(),
            control,
            compression,
            tally: Tally::default(),
            closed: false,
        }
    }

    /// A writer half over any I/O, without a reader (benchmarks and tests of the write path).
    pub fn over(io: impl AsyncWrite + Send + Unpin + 'static, deflate: Option<Deflate>) -> WsWriter {
        let outbound = deflate.map(|d| Outbound {
            threshold: d.threshold,
            stats: d.stats,
        });
        WsWriter::new(WriteIo::Other(Box::new(io)), Arc::default(), outbound)
    }

    /// Queues a frame; [`flush`](Self::flush) sends it. Frames fed before one flush leave in
    /// one write, unless they add up to more than the write buffer.
    pub async fn feed(&mut self, frame: OutFrame) -> Result<(), WriteError> {
        if self.closed {
            return Err(WriteError("the close frame was sent".into()));
        }
        self.finish_body().await?;
        self.encode(frame);
        if !self.body.is_empty() || self.head.len() >= WRITE_BUFFER {
            self.write_out().await?;
        }
        Ok(())
    }

    /// Encodes a frame after what is buffered; a large payload goes to `body` (which must be
    /// empty), to be written from its own bytes.
    fn encode(&mut self, frame: OutFrame) {
        match frame {
            OutFrame::Text(text) => {
                let compressed = match &self.compression {
                    Some(c) if text.len() >= c.threshold => text.compressed(),
                    _ => None,
                };
                match compressed {
                    Some(deflated) => {
                        self.tally.messages += 1;
                        self.tally.plain += text.len() as u64;
                        self.tally.wire += deflated.len() as u64;
                        self.data(OpCode::Text, true, deflated);
                    }
                    None => self.data(OpCode::Text, false, text.bytes().clone()),
                }
            }
            OutFrame::Binary(bytes) => self.data(OpCode::Binary, false, bytes),
            OutFrame::Ping => self.control_frame(OpCode::Ping, &[]),
        }
    }

    /// Writes everything fed so far, and the Pong owed to the client's latest Ping.
    pub async fn flush(&mut self) -> Result<(), WriteError> {
        self.finish_body().await?;
        if !self.closed
            && let Some(data) = self.control.take_pong()
        {
            self.control_frame(OpCode::Pong, &data);
        }
        self.write_out().await?;
        self.io.flush().await?;
        self.flushed();
        Ok(())
    }

    /// Everything fed was written: the buffer is released and compression reported.
    fn flushed(&mut self) {
        // An idle connection keeps no write buffer.
        self.head = BytesMut::new();
        let tally = std::mem::take(&mut self.tally);
        if let Some(c) = &self.compression
            && tally.messages > 0
        {
            c.stats.written(tally.messages, tally.plain, tally.wire);
        }
    }

    /// [`control_wanted`](Self::control_wanted) as a poll, for a writer that checks it beside
    /// its queue on every wake-up.
    pub fn poll_control_wanted(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        self.control.poll_wanted(cx)
    }

    /// Whether a frame can be added with [`feed_now`](Self::feed_now): nothing large is
    /// waiting to be written and the buffer is below its limit.
    pub fn can_feed_now(&self) -> bool {
        !self.closed && self.body.is_empty() && self.head.len() < WRITE_BUFFER
    }

    /// Adds a frame to what the next write sends, without writing; only when
    /// [`can_feed_now`](Self::can_feed_now). A large payload is kept to be written from its own
    /// bytes, after which nothing more can be fed until it is written.
    pub fn feed_now(&mut self, frame: OutFrame) {
        debug_assert!(self.can_feed_now());
        self.encode(frame);
    }

    /// Writes what was fed (and a Pong owed) as far as the socket takes it now, without
    /// waiting. `Ok(true)` when everything went out (then it is as after
    /// [`flush`](Self::flush)); `Ok(false)` when bytes are left, for `flush` to finish.
    pub fn try_flush_now(&mut self) -> Result<bool, WriteError> {
        if !self.closed
            && self.body.is_empty()
            && let Some(data) = self.control.take_pong()
        {
            self.control_frame(OpCode::Pong, &data);
        }
        if !self.try_write_now()? {
            return Ok(false);
        }
        self.flushed();
        Ok(true)
    }

    /// Writes `head` then `body` as far as the socket takes them without waiting; `true` when
    /// both are empty. Only a TCP socket can be written this way.
    pub fn try_write_now(&mut self) -> Result<bool, WriteError> {
        let WriteIo::Tcp(tcp) = &self.io else {
            return Ok(self.head.is_empty() && self.body.is_empty());
        };
        while !self.head.is_empty() || !self.body.is_empty() {
            let written = if self.body.is_empty() {
                tcp.try_write(&self.head)
            } else if self.head.is_empty() {
                tcp.try_write(&self.body)
            } else {
                tcp.try_write_vectored(&[IoSlice::new(&self.head), IoSlice::new(&self.body)])
            };
            let written = match written {
                Ok(0) => return Err(WriteError("the connection accepts no more bytes".into())),
                Ok(n) => n,
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => return Ok(false),
                Err(error) => return Err(error.into()),
            };
            let from_head = written.min(self.head.len());
            self.head.advance(from_head);
            self.body.advance(written - from_head);
        }
        Ok(true)
    }

    /// Resolves when the reader left a Pong to send (or saw the client's Close): call
    /// [`flush`](Self::flush) then. Writer loops `select!` on it beside their queue. (The
    /// future holds the shared state, not the writer, so the writer can be used meanwhile.)
    pub fn control_wanted(&self) -> impl Future<Output = ()> + Send + 'static {
        let control = Arc::clone(&self.control);
        async move { control.wanted().await }
    }

    /// Sends the close frame after what is queued, then ends the stream (TCP FIN). If the
    /// client closed first, its close is echoed with its own code instead (RFC 6455 §5.5.1).
    pub async fn close(&mut self, code: u16, reason: &str) -> Result<(), WriteError> {
        if self.closed {
            return Ok(());
        }
        self.finish_body().await?;
        let mut payload = Vec::with_capacity(2 + reason.len());
        match self.control.peer_close() {
            Some(Some(peer)) => payload.extend_from_slice(&peer.to_be_bytes()),
            Some(None) => {}
            None => {
                payload.extend_from_slice(&code.to_be_bytes());
                payload.extend_from_slice(truncate_reason(reason).as_bytes());
            }
        }
        self.control_frame(OpCode::Close, &payload);
        self.closed = true;
        self.write_out().await?;
        self.io.flush().await?;
        // The server closes TCP first once the handshake is done (RFC 6455 §7.1.1); a peer
        // that already went away makes this fail harmlessly.
        let _ = self.io.shutdown().await;
        Ok(())
    }

    /// Adds a data frame; a large payload is kept in `body`, to be written from its own bytes.
    fn data(&mut self, opcode: OpCode, rsv1: bool, payload: Bytes) {
        let header = FrameHeader::server(opcode, rsv1, payload.len());
        if payload.len() <= COPY_LIMIT {
            self.head.reserve(header.encoded_len() + payload.len());
            header.encode(&mut self.head);
            self.head.extend_from_slice(&payload);
            return;
        }
        header.encode(&mut self.head);
        self.body = payload;
    }

    fn control_frame(&mut self, opcode: OpCode, payload: &[u8]) {
        self.head.reserve(MAX_HEADER_LEN + payload.len());
        FrameHeader::server(opcode, false, payload.len()).encode(&mut self.head);
        self.head.extend_from_slice(payload);
    }

    /// Writes a large payload left half-written by an abandoned write, so that nothing is
    /// added to `head` while `body` still has to follow it.
    async fn finish_body(&mut self) -> Result<(), WriteError> {
        if self.body.is_empty() {
            return Ok(());
        }
        self.write_out().await
    }

    /// Writes `head` then `body`, advancing both as bytes leave, so an abandoned call leaves
    /// exactly the unwritten rest.
    async fn write_out(&mut self) -> Result<(), WriteError> {
        while !self.head.is_empty() || !self.body.is_empty() {
            let written = if self.body.is_empty() {
                self.io.write(&self.head).await?
            } else if self.head.is_empty() {
                self.io.write(&self.body).await?
            } else {
                let parts = [IoSlice::new(&self.head), IoSlice::new(&self.body)];
                self.io.write_vectored(&parts).await?
            };
            if written == 0 {
                return Err(WriteError("the connection accepts no more bytes".into()));
            }
            let from_head = written.min(self.head.len());
            self.head.advance(from_head);
            self.body.advance(written - from_head);
        }
        Ok(())
    }
}

impl Drop for WsWriter {
    fn drop(&mut self) {
        if let Some(c) = &self.compression {
            c.stats.connection(false);
        }
    }
}

/// A close frame's reason is at most 123 bytes (RFC 6455 §5.5); cut on a char boundary.
fn truncate_reason(reason: &str) -> &str {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}
