//! Message framing on an upgraded connection, split into reader and writer halves.

use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use thiserror::Error;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError, ProtocolError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

type Stream = WebSocketStream<TokioIo<Upgraded>>;

/// Buffer sizes and limits for one connection.
#[derive(Debug, Clone, Copy)]
pub struct SocketConfig {
    /// Largest inbound message (after reassembly), in bytes.
    pub max_message_size: usize,
}

/// Read buffer per connection. The library default (128 KiB) would cost 1.3 GB for
/// 10,000 idle connections; requests are small, and a large message only grows the
/// buffer while it is being read.
const READ_BUFFER: usize = 4 * 1024;
/// Frames are gathered up to this size before a write; `flush` writes the rest.
const WRITE_BUFFER: usize = 16 * 1024;

/// A frame received from the client.
#[derive(Debug)]
pub enum Inbound {
    /// A text message (valid UTF-8).
    Text(Bytes),
    /// A binary message.
    Binary(Bytes),
    /// A Ping or Pong control frame: proof of life, already answered by the library.
    Heartbeat,
    /// The client closed, with its code if it gave one.
    Close(Option<u16>),
}

/// A text frame body that is shared between many connections without copying.
#[derive(Debug, Clone)]
pub struct SharedText(Utf8Bytes);

impl SharedText {
    /// Wraps bytes known to be UTF-8 JSON. Checked once here, then cloned for free.
    pub fn from_json(bytes: Bytes) -> Option<SharedText> {
        Utf8Bytes::try_from(bytes).ok().map(SharedText)
    }

    /// Wraps a freshly encoded reply.
    pub fn from_vec(bytes: Vec<u8>) -> Option<SharedText> {
        String::from_utf8(bytes).ok().map(|s| SharedText(Utf8Bytes::from(s)))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A frame to send.
#[derive(Debug, Clone)]
pub enum OutFrame {
    /// A text message.
    Text(SharedText),
    /// A binary message.
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

/// Why reading stopped.
#[derive(Debug, Error)]
pub enum ReadError {
    /// An inbound message exceeded `max_message_size` (close with 1009).
    #[error("message too big")]
    TooBig,
    /// The client broke the WebSocket protocol (close with 1002).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The TCP connection failed or ended without a close frame.
    #[error("connection lost: {0}")]
    Io(String),
}

/// Why a write failed.
#[derive(Debug, Error)]
#[error("write failed: {0}")]
pub struct WriteError(String);

/// The reading half of a connection.
pub struct WsReader {
    inner: SplitStream<Stream>,
}

/// The writing half of a connection.
pub struct WsWriter {
    inner: SplitSink<Stream, Message>,
}

/// Frames an upgraded HTTP connection as a server-side WebSocket.
pub async fn from_upgraded(upgraded: Upgraded, config: SocketConfig) -> (WsReader, WsWriter) {
    let ws_config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        // Never reached in practice: the session's outbound queue bounds what is written.
        .max_write_buffer_size(usize::MAX)
        .max_message_size(Some(config.max_message_size))
        .max_frame_size(Some(config.max_message_size));
    let stream = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(ws_config)).await;
    let (sink, stream) = stream.split();
    (WsReader { inner: stream }, WsWriter { inner: sink })
}

impl WsReader {
    /// The next frame, or `None` once the connection is gone.
    pub async fn next(&mut self) -> Option<Result<Inbound, ReadError>> {
        loop {
            let message = match self.inner.next().await? {
                Ok(message) => message,
                Err(error) => return Some(Err(classify(error))),
            };
            return Some(Ok(match message {
                Message::Text(text) => Inbound::Text(Bytes::from(text)),
                Message::Binary(bytes) => Inbound::Binary(bytes),
                Message::Ping(_) | Message::Pong(_) => Inbound::Heartbeat,
                Message::Close(frame) => Inbound::Close(frame.map(|f| u16::from(f.code))),
                // Raw frames are never produced by reads.
                Message::Frame(_) => continue,
            }));
        }
    }
}

fn classify(error: WsError) -> ReadError {
    match error {
        WsError::Capacity(CapacityError::MessageTooLong { .. }) => ReadError::TooBig,
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
            ReadError::Io("reset without closing handshake".into())
        }
        WsError::Protocol(p) => ReadError::Protocol(p.to_string()),
        WsError::Utf8(_) => ReadError::Protocol("text frame is not valid UTF-8".into()),
        other => ReadError::Io(other.to_string()),
    }
}

impl WsWriter {
    /// Queues a frame in the write buffer; [`flush`](Self::flush) sends it. Several
    /// frames fed before one flush leave in as few writes as the buffer allows.
    pub async fn feed(&mut self, frame: OutFrame) -> Result<(), WriteError> {
        let message = match frame {
            OutFrame::Text(text) => Message::Text(text.0),
            OutFrame::Binary(bytes) => Message::Binary(bytes),
            OutFrame::Ping => Message::Ping(Bytes::new()),
        };
        self.inner.feed(message).await.map_err(|e| WriteError(e.to_string()))
    }

    /// Writes everything fed so far.
    pub async fn flush(&mut self) -> Result<(), WriteError> {
        self.inner.flush().await.map_err(|e| WriteError(e.to_string()))
    }

    /// Sends a close frame and flushes it.
    pub async fn close(&mut self, code: u16, reason: &str) -> Result<(), WriteError> {
        let frame = CloseFrame {
            code: WsCloseCode::from(code),
            reason: Utf8Bytes::from(truncate_reason(reason).to_owned()),
        };
        match self.inner.send(Message::Close(Some(frame))).await {
            Ok(()) => Ok(()),
            // The client closed first and the library already answered it.
            Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => Ok(()),
            Err(e) => Err(WriteError(e.to_string())),
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
