//! An async Rust client for wshub's `/ws` protocol.
//!
//! It speaks the same envelope as every other client: requests get an `id` and
//! [`Client::request`] waits for the reply with that `id`, keeping any events that
//! arrive meanwhile for [`Client::next`]. [`Client::next_frame`] gives the same stream with
//! what a debugging tool shows besides: each message's text exactly as the server sent it,
//! the server's Pings and the close reason. Used by the CLI, the load generator and
//! the integration tests.
//!
//! The load generator (`wshub bench`) needs two things more: [`ConnectOptions::bind`] opens the
//! connection from a chosen local address (so tens of thousands of connections can spread over
//! 127.0.0.x), and [`Client::next_raw`] hands over each text frame unparsed, for servers that do
//! not speak JSON and for receivers that read only a few fields of each message.

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use thiserror::Error;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Bytes, Message, Utf8Bytes};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What can go wrong on the client side.
#[derive(Debug, Error)]
pub enum ClientError {
    /// The WebSocket handshake or connection failed.
    #[error("cannot connect to {url}: {source}")]
    Connect {
        /// Where.
        url: String,
        /// Why.
        #[source]
        source: Box<tokio_tungstenite::tungstenite::Error>,
    },
    /// The handshake was answered with an HTTP status instead of 101.
    #[error("{url} refused the WebSocket upgrade with HTTP {status}")]
    Refused {
        /// Where.
        url: String,
        /// The status.
        status: u16,
        /// The response body, if it had one (the hub sends `{"error":{"code","message"}}`).
        body: Option<String>,
    },
    /// Sending failed.
    #[error("send failed: {0}")]
    Send(#[source] Box<tokio_tungstenite::tungstenite::Error>),
    /// Nothing arrived in time.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The connection closed while waiting.
    #[error("connection closed (code {0:?})")]
    Closed(Option<u16>),
    /// The server sent a frame that is not a JSON object.
    #[error("server sent invalid JSON: {0}")]
    InvalidJson(String),
}

/// One thing received from the server.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A JSON message (reply, error, or event).
    Json(Value),
    /// A binary frame.
    Binary(Bytes),
    /// The server closed the connection with this code (`None`: no close frame).
    Closed(Option<u16>),
}

/// One frame from the server as [`Client::next_frame`] gives it.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// A JSON text frame: its text exactly as sent, and its parsed value.
    Json {
        /// The frame's text, byte for byte.
        text: Utf8Bytes,
        /// The parsed object.
        value: Value,
    },
    /// A binary frame.
    Binary(Bytes),
    /// A WebSocket Ping from the server; the Pong answering it is sent automatically.
    Ping,
    /// The connection ended.
    Closed(Close),
}

/// One frame as it came off the wire, text not parsed: what [`Client::next_raw`] gives.
#[derive(Debug, Clone, PartialEq)]
pub enum RawFrame {
    /// A text frame, byte for byte.
    Text(Utf8Bytes),
    /// A binary frame.
    Binary(Bytes),
    /// A WebSocket Ping from the server; the Pong answering it is sent automatically.
    Ping,
    /// The connection ended.
    Closed(Close),
}

impl From<Frame> for RawFrame {
    fn from(frame: Frame) -> RawFrame {
        match frame {
            Frame::Json { text, .. } => RawFrame::Text(text),
            Frame::Binary(bytes) => RawFrame::Binary(bytes),
            Frame::Ping => RawFrame::Ping,
            Frame::Closed(close) => RawFrame::Closed(close),
        }
    }
}

/// How to open a connection, beyond its URL.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// Extra handshake headers (e.g. `Authorization`, `Origin`).
    pub headers: Vec<(String, String)>,
    /// The local address to connect from (port chosen by the system); `None`: the system's
    /// choice. Only for `ws://` URLs.
    pub bind: Option<IpAddr>,
    /// The read buffer, allocated up front for each connection; `None`: 128 KiB. Thousands of
    /// mostly idle connections want a small one.
    pub read_buffer: Option<usize>,
}

/// How a connection ended.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Close {
    /// The close code; `None` when the connection ended without a close frame (what
    /// WebSocket libraries report as 1006).
    pub code: Option<u16>,
    /// The close frame's reason text (empty when none).
    pub reason: String,
}

/// The HTTP answer to the WebSocket handshake.
#[derive(Debug, Clone)]
pub struct Handshake {
    /// `101 Switching Protocols` on success.
    pub status: http::StatusCode,
    /// The response headers.
    pub headers: http::HeaderMap,
}

/// A connected client.
pub struct Client {
    sink: SplitSink<Socket, Message>,
    stream: SplitStream<Socket>,
    /// Frames read while waiting for a reply, delivered by `next`/`next_frame` in order.
    pending: VecDeque<Frame>,
    next_id: u64,
    closed: Option<Close>,
    handshake: Handshake,
}

impl Client {
    /// Connects to a `ws://` URL (query parameters such as `token` included).
    pub async fn connect(url: &str) -> Result<Client, ClientError> {
        Client::connect_request(url, Vec::new()).await
    }

    /// Connects with extra handshake headers (e.g. `Authorization`, `Origin`).
    pub async fn connect_request(url: &str, headers: Vec<(&str, String)>) -> Result<Client, ClientError> {
        let options = ConnectOptions {
            headers: headers
                .into_iter()
                .map(|(name, value)| (name.to_owned(), value))
                .collect(),
            bind: None,
            read_buffer: None,
        };
        Client::connect_with(url, &options).await
    }

    /// Connects with handshake headers and, when [`ConnectOptions::bind`] is set, from that
    /// local address.
    pub async fn connect_with(url: &str, options: &ConnectOptions) -> Result<Client, ClientError> {
        let connect_error = |e: tokio_tungstenite::tungstenite::Error| match e {
            tokio_tungstenite::tungstenite::Error::Http(response) => ClientError::Refused {
                url: url.to_owned(),
                status: response.status().as_u16(),
                body: response
                    .body()
                    .as_deref()
                    .map(|bytes| String::from_utf8_lossy(bytes).into_owned()),
            },
            other => ClientError::Connect {
                url: url.to_owned(),
                source: Box::new(other),
            },
        };
        let mut request = url.into_client_request().map_err(connect_error)?;
        for (name, value) in &options.headers {
            let name =
                http::HeaderName::from_bytes(name.as_bytes()).map_err(|e| ClientError::InvalidJson(e.to_string()))?;
            let value = http::HeaderValue::from_str(value).map_err(|e| ClientError::InvalidJson(e.to_string()))?;
            request.headers_mut().insert(name, value);
        }
        let mut config = WebSocketConfig::default().max_message_size(Some(64 << 20));
        if let Some(size) = options.read_buffer {
            config = config.read_buffer_size(size);
        }
        let (socket, response) = match options.bind {
            None => tokio_tungstenite::connect_async_with_config(request, Some(config), true)
                .await
                .map_err(connect_error)?,
            Some(local) => {
                let stream = connect_from(local, &request).await.map_err(connect_error)?;
                tokio_tungstenite::client_async_with_config(request, MaybeTlsStream::Plain(stream), Some(config))
                    .await
                    .map_err(connect_error)?
            }
        };
        let handshake = Handshake {
            status: response.status(),
            headers: response.headers().clone(),
        };
        let (sink, stream) = socket.split();
        Ok(Client {
            sink,
            stream,
            pending: VecDeque::new(),
            next_id: 1,
            closed: None,
            handshake,
        })
    }

    /// The HTTP answer to this connection's handshake.
    pub fn handshake(&self) -> &Handshake {
        &self.handshake
    }

    /// Sends a JSON value as a text frame.
    pub async fn send_json(&mut self, value: &Value) -> Result<(), ClientError> {
        self.send_text(&value.to_string()).await
    }

    /// Sends raw text (for malformed-input tests and the CLI's `send`).
    pub async fn send_text(&mut self, text: &str) -> Result<(), ClientError> {
        self.sink
            .send(Message::text(text))
            .await
            .map_err(|e| ClientError::Send(Box::new(e)))
    }

    /// Queues a text frame without flushing it: many frames then go out in one write at
    /// [`flush`](Self::flush) (the queue is flushed on its own when it grows large).
    pub async fn feed_text(&mut self, text: String) -> Result<(), ClientError> {
        self.sink
            .feed(Message::text(text))
            .await
            .map_err(|e| ClientError::Send(Box::new(e)))
    }

    /// Writes out every frame queued by [`feed_text`](Self::feed_text).
    pub async fn flush(&mut self) -> Result<(), ClientError> {
        self.sink.flush().await.map_err(|e| ClientError::Send(Box::new(e)))
    }

    /// Sends a binary frame.
    pub async fn send_binary(&mut self, bytes: Vec<u8>) -> Result<(), ClientError> {
        self.sink
            .send(Message::binary(bytes))
            .await
            .map_err(|e| ClientError::Send(Box::new(e)))
    }

    /// Sends a close frame.
    pub async fn close(&mut self, code: u16) -> Result<(), ClientError> {
        use tokio_tungstenite::tungstenite::protocol::CloseFrame;
        let frame = CloseFrame {
            code: code.into(),
            reason: "".into(),
        };
        self.sink
            .send(Message::Close(Some(frame)))
            .await
            .map_err(|e| ClientError::Send(Box::new(e)))
    }

    /// A fresh request id (`r1`, `r2`, …).
    pub fn new_id(&mut self) -> String {
        let id = format!("r{}", self.next_id);
        self.next_id += 1;
        id
    }

    /// Sends `{"id", "type": kind, ...fields}` and waits for the reply with that id.
    pub async fn request(&mut self, kind: &str, fields: Value, timeout: Duration) -> Result<Value, ClientError> {
        let id = self.new_id();
        let mut message = match fields {
            Value::Object(map) => map,
            _ => serde_json::Map::new(),
        };
        message.insert("id".into(), json!(id));
        message.insert("type".into(), json!(kind));
        self.send_json(&Value::Object(message)).await?;
        self.reply_to(&id, timeout).await
    }

    /// Waits for the reply carrying `id`; other messages are kept for [`next`](Self::next).
    pub async fn reply_to(&mut self, id: &str, timeout: Duration) -> Result<Value, ClientError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.read(remaining).await? {
                Frame::Json { value, .. }
                    if value.get("id").and_then(Value::as_str) == Some(id) && !is_event(&value) =>
                {
                    return Ok(value);
                }
                Frame::Closed(close) => {
                    let code = close.code;
                    self.pending.push_back(Frame::Closed(close));
                    return Err(ClientError::Closed(code));
                }
                other => self.pending.push_back(other),
            }
        }
    }

    /// The next message, in arrival order (Pings are skipped).
    pub async fn next(&mut self, timeout: Duration) -> Result<Incoming, ClientError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            let incoming = match self.next_frame(remaining).await? {
                Frame::Json { value, .. } => Incoming::Json(value),
                Frame::Binary(bytes) => Incoming::Binary(bytes),
                Frame::Ping => continue,
                Frame::Closed(close) => Incoming::Closed(close.code),
            };
            return Ok(incoming);
        }
    }

    /// The next frame, in arrival order, Pings and the close reason included.
    ///
    /// Cancel-safe: dropping the future (in a `select!`) loses no frame.
    pub async fn next_frame(&mut self, timeout: Duration) -> Result<Frame, ClientError> {
        if let Some(frame) = self.pending.pop_front() {
            return Ok(frame);
        }
        self.read(timeout).await
    }

    /// The next frame with its text unparsed, Pings and the close included: for servers that
    /// do not speak JSON, and for readers that want a few fields of a message, not all of it.
    ///
    /// Cancel-safe like [`next_frame`](Self::next_frame).
    pub async fn next_raw(&mut self, timeout: Duration) -> Result<RawFrame, ClientError> {
        if let Some(frame) = self.pending.pop_front() {
            return Ok(frame.into());
        }
        self.read_raw(timeout).await
    }

    /// The next JSON message whose `type` is `kind`, skipping others.
    pub async fn next_of_type(&mut self, kind: &str, timeout: Duration) -> Result<Value, ClientError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(remaining).await? {
                Incoming::Json(value) if value["type"] == kind => return Ok(value),
                Incoming::Closed(code) => return Err(ClientError::Closed(code)),
                _ => {}
            }
        }
    }

    /// Reads until the server closes; returns its close code.
    pub async fn closed(&mut self, timeout: Duration) -> Result<Option<u16>, ClientError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            if let Incoming::Closed(code) = self.next(remaining).await? {
                return Ok(code);
            }
        }
    }

    async fn read(&mut self, timeout: Duration) -> Result<Frame, ClientError> {
        Ok(match self.read_raw(timeout).await? {
            RawFrame::Text(text) => {
                let value = serde_json::from_str(text.as_str()).map_err(|e| ClientError::InvalidJson(e.to_string()))?;
                Frame::Json { text, value }
            }
            RawFrame::Binary(bytes) => Frame::Binary(bytes),
            RawFrame::Ping => Frame::Ping,
            RawFrame::Closed(close) => Frame::Closed(close),
        })
    }

    async fn read_raw(&mut self, timeout: Duration) -> Result<RawFrame, ClientError> {
        if let Some(close) = &self.closed {
            return Ok(RawFrame::Closed(close.clone()));
        }
        // One deadline for the whole call: control frames skipped below must not extend it.
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let message = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .map_err(|_| ClientError::Timeout(timeout))?;
            let frame = match message {
                Some(Ok(Message::Text(text))) => RawFrame::Text(text),
                Some(Ok(Message::Binary(bytes))) => RawFrame::Binary(bytes),
                Some(Ok(Message::Ping(_))) => RawFrame::Ping,
                Some(Ok(Message::Close(frame))) => {
                    let close = frame
                        .map(|f| Close {
                            code: Some(u16::from(f.code)),
                            reason: f.reason.as_str().to_owned(),
                        })
                        .unwrap_or_default();
                    self.closed = Some(close.clone());
                    RawFrame::Closed(close)
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => {
                    self.closed = Some(Close::default());
                    RawFrame::Closed(Close::default())
                }
            };
            return Ok(frame);
        }
    }
}

/// A TCP connection to the request's host from `local` (any free port).
async fn connect_from(local: IpAddr, request: &Request) -> Result<TcpStream, tokio_tungstenite::tungstenite::Error> {
    use tokio_tungstenite::tungstenite::Error;
    use tokio_tungstenite::tungstenite::error::UrlError;
    let uri = request.uri();
    if uri.scheme_str() == Some("wss") {
        return Err(Error::Url(UrlError::TlsFeatureNotEnabled));
    }
    let host = uri.host().ok_or(Error::Url(UrlError::NoHostName))?;
    // `[::1]` in a URL is `::1` to the resolver.
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(80);
    let remote = tokio::net::lookup_host((host, port))
        .await?
        .find(|address| address.is_ipv4() == local.is_ipv4())
        .ok_or(Error::Url(UrlError::UnableToConnect(format!(
            "{host}:{port} has no address of the same family as {local}"
        ))))?;
    let socket = if local.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.bind(SocketAddr::new(local, 0))?;
    let stream = socket.connect(remote).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Whether a message is an event (it has an `offset`) rather than a reply.
pub fn is_event(message: &Value) -> bool {
    message.get("offset").is_some() && message.get("sender_id").is_some()
}
