//! An async Rust client for wshub's `/ws` protocol.
//!
//! It speaks the same envelope as every other client: requests get an `id` and
//! [`Client::request`] waits for the reply with that `id`, keeping any events that
//! arrive meanwhile for [`Client::next`]. Used by the CLI, the load generator and
//! the integration tests.

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::time::Duration;
use thiserror::Error;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Bytes, Message};
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

/// A connected client.
pub struct Client {
    sink: SplitSink<Socket, Message>,
    stream: SplitStream<Socket>,
    /// Messages read while waiting for a reply, delivered by `next` in order.
    pending: VecDeque<Incoming>,
    next_id: u64,
    closed: Option<Option<u16>>,
}

impl Client {
    /// Connects to a `ws://` URL (query parameters such as `token` included).
    pub async fn connect(url: &str) -> Result<Client, ClientError> {
        Client::connect_request(url, Vec::new()).await
    }

    /// Connects with extra handshake headers (e.g. `Authorization`, `Origin`).
    pub async fn connect_request(url: &str, headers: Vec<(&str, String)>) -> Result<Client, ClientError> {
        let connect_error = |e: tokio_tungstenite::tungstenite::Error| match e {
            tokio_tungstenite::tungstenite::Error::Http(response) => ClientError::Refused {
                url: url.to_owned(),
                status: response.status().as_u16(),
            },
            other => ClientError::Connect {
                url: url.to_owned(),
                source: Box::new(other),
            },
        };
        let mut request = url.into_client_request().map_err(connect_error)?;
        for (name, value) in headers {
            let name =
                http::HeaderName::from_bytes(name.as_bytes()).map_err(|e| ClientError::InvalidJson(e.to_string()))?;
            let value = http::HeaderValue::from_str(&value).map_err(|e| ClientError::InvalidJson(e.to_string()))?;
            request.headers_mut().insert(name, value);
        }
        let config = WebSocketConfig::default().max_message_size(Some(64 << 20));
        let (socket, _response) = tokio_tungstenite::connect_async_with_config(request, Some(config), true)
            .await
            .map_err(connect_error)?;
        let (sink, stream) = socket.split();
        Ok(Client {
            sink,
            stream,
            pending: VecDeque::new(),
            next_id: 1,
            closed: None,
        })
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
                Incoming::Json(value) if value.get("id").and_then(Value::as_str) == Some(id) && !is_event(&value) => {
                    return Ok(value);
                }
                Incoming::Closed(code) => {
                    self.pending.push_back(Incoming::Closed(code));
                    return Err(ClientError::Closed(code));
                }
                other => self.pending.push_back(other),
            }
        }
    }

    /// The next message, in arrival order.
    pub async fn next(&mut self, timeout: Duration) -> Result<Incoming, ClientError> {
        if let Some(message) = self.pending.pop_front() {
            return Ok(message);
        }
        self.read(timeout).await
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

    async fn read(&mut self, timeout: Duration) -> Result<Incoming, ClientError> {
        if let Some(code) = self.closed {
            return Ok(Incoming::Closed(code));
        }
        // One deadline for the whole call: control frames skipped below must not extend it.
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .map_err(|_| ClientError::Timeout(timeout))?;
            let incoming = match frame {
                Some(Ok(Message::Text(text))) => Incoming::Json(
                    serde_json::from_str(text.as_str()).map_err(|e| ClientError::InvalidJson(e.to_string()))?,
                ),
                Some(Ok(Message::Binary(bytes))) => Incoming::Binary(bytes),
                Some(Ok(Message::Close(frame))) => {
                    let code = frame.map(|f| u16::from(f.code));
                    self.closed = Some(code);
                    Incoming::Closed(code)
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => {
                    self.closed = Some(None);
                    Incoming::Closed(None)
                }
            };
            return Ok(incoming);
        }
    }
}

/// Whether a message is an event (it has an `offset`) rather than a reply.
pub fn is_event(message: &Value) -> bool {
    message.get("offset").is_some() && message.get("sender_id").is_some()
}
