//! The reading half of a connection: bytes from the socket to [`Inbound`] messages.
//!
//! Frames are parsed from one read buffer. The buffer starts at [`READ_BUFFER`] and grows only
//! to hold a frame larger than that, up to the message size limit; while the connection is idle
//! and nothing is buffered it is released altogether, so an idle connection holds no read
//! buffer. A one-frame message is handed on without a copy (a slice of the buffer).
//!
//! `next` is cancel-safe: the state of a half-read frame or message lives in `self`, and
//! nothing is taken off the buffer across an `.await`, so the session can `select!` on it.

use super::assemble::{Assembler, Event};
use super::control::Control;
use super::deflate::{InflateError, Inflater};
use super::frame::{FrameHeader, apply_mask};
use super::socket::ReadIo;
use bytes::{Buf, Bytes, BytesMut};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use thiserror::Error;
use wshub_protocol::CloseCode;

/// Read buffer per connection while bytes are arriving. Requests are small; a larger frame
/// grows the buffer only while it is read.
const READ_BUFFER: usize = 4 * 1024;

/// A message or signal received from the client.
#[derive(Debug)]
pub enum Inbound {
    /// A text message (valid UTF-8).
    Text(Bytes),
    /// A binary message.
    Binary(Bytes),
    /// A Ping or Pong control frame: proof of life (a Ping's Pong is already on its way).
    Heartbeat,
    /// The client closed, with its code if it gave one (the writer's close echoes it).
    Close(Option<u16>),
}

/// Why reading stopped.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ReadError {
    /// An inbound message exceeded `max_message_size`, on the wire or decompressed (1009).
    #[error("message too big")]
    TooBig,
    /// The client broke the WebSocket protocol (1002).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A message's data does not fit its type: text that is not UTF-8, or a compressed
    /// message that does not inflate (1007).
    #[error("invalid message data: {0}")]
    InvalidPayload(String),
    /// The TCP connection failed or ended in the middle of a frame.
    #[error("connection lost: {0}")]
    Io(String),
}

impl ReadError {
    /// The close code this error calls for (`Abnormal` when no close frame can be sent).
    pub fn close_code(&self) -> CloseCode {
        match self {
            ReadError::TooBig => CloseCode::TooBig,
            ReadError::Protocol(_) => CloseCode::Protocol,
            ReadError::InvalidPayload(_) => CloseCode::InvalidPayload,
            ReadError::Io(_) => CloseCode::Abnormal,
        }
    }
}

/// The reading half of a connection.
pub struct WsReader {
    io: ReadIo,
    buf: BytesMut,
    assembler: Assembler,
    /// Present when permessage-deflate was negotiated.
    inflater: Option<Inflater>,
    control: Arc<Control>,
    max_message_size: usize,
    /// After a Close, an error or the end of the stream nothing more is read.
    done: bool,
}

impl WsReader {
    pub(super) fn new(
        io: ReadIo,
        leftover: Bytes,
        max_message_size: usize,
        inflater: Option<Inflater>,
        control: Arc<Control>,
    ) -> WsReader {
        WsReader {
            io,
            buf: BytesMut::from(&leftover[..]),
            assembler: Assembler::new(max_message_size, inflater.is_some()),
            inflater,
            control,
            max_message_size,
            done: false,
        }
    }

    /// Bytes held by the read buffer (tests of the idle footprint).
    #[cfg(test)]
    pub(super) fn buffer_capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// The next message, or `None` once the connection is gone.
    pub async fn next(&mut self) -> Option<Result<Inbound, ReadError>> {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }

    /// [`next`](Self::next) as a poll. A connection's task waits on this most of its life,
    /// and a poll keeps nothing of its own between wake-ups (an `async fn` future would be
    /// part of every idle connection's task).
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Inbound, ReadError>>> {
        if self.done {
            return Poll::Ready(None);
        }
        let result = ready!(self.poll_read(cx));
        if !matches!(
            result,
            Ok(Some(Inbound::Text(_) | Inbound::Binary(_) | Inbound::Heartbeat))
        ) {
            self.done = true;
        }
        Poll::Ready(result.transpose())
    }

    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Inbound>, ReadError>> {
        loop {
            let want = match self.parse()? {
                Parsed::Inbound(inbound) => return Poll::Ready(Ok(Some(inbound))),
                Parsed::Consumed => continue,
                Parsed::Need(want) => want,
            };
            if ready!(self.poll_fill(cx, want))? == 0 {
                return Poll::Ready(if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(ReadError::Io("connection closed in the middle of a frame".into()))
                });
            }
        }
    }

    /// Takes one frame off the buffer if it is complete.
    fn parse(&mut self) -> Result<Parsed, ReadError> {
        let Some((header, header_len)) =
            FrameHeader::parse(&self.buf).map_err(|e| ReadError::Protocol(e.to_string()))?
        else {
            return Ok(Parsed::Need(2));
        };
        // Refused before its payload is buffered, however large it claims to be.
        self.assembler.check(&header)?;
        let len = usize::try_from(header.payload_len).map_err(|_| ReadError::TooBig)?;
        if self.buf.len() - header_len < len {
            return Ok(Parsed::Need(header_len + len));
        }
        self.buf.advance(header_len);
        let mut payload = self.buf.split_to(len);
        if let Some(mask) = header.mask {
            apply_mask(&mut payload, mask);
        }
        let Some(event) = self.assembler.push(&header, payload.freeze())? else {
            return Ok(Parsed::Consumed);
        };
        Ok(Parsed::Inbound(match event {
            Event::Ping(data) => {
                self.control.ping(data);
                Inbound::Heartbeat
            }
            Event::Pong => Inbound::Heartbeat,
            Event::Close(code) => {
                self.control.peer_closed(code);
                Inbound::Close(code)
            }
            Event::Message {
                text,
                compressed,
                payload,
            } => {
                let payload = if compressed { self.inflate(&payload)? } else { payload };
                if !text {
                    Inbound::Binary(payload)
                } else if std::str::from_utf8(&payload).is_ok() {
                    Inbound::Text(payload)
                } else {
                    return Err(ReadError::InvalidPayload("text message is not valid UTF-8".into()));
                }
            }
        }))
    }

    fn inflate(&mut self, payload: &[u8]) -> Result<Bytes, ReadError> {
        let inflater = self
            .inflater
            .as_mut()
            .ok_or_else(|| ReadError::Protocol("compressed message without permessage-deflate".into()))?;
        inflater
            .inflate(payload, self.max_message_size)
            .map_err(|error| match error {
                InflateError::TooBig => ReadError::TooBig,
                InflateError::Corrupt => ReadError::InvalidPayload("compressed message does not inflate".into()),
            })
    }

    /// Reads more bytes until the buffer could hold `want`; returns how many arrived (0 at
    /// the end of the stream).
    fn poll_fill(&mut self, cx: &mut Context<'_>, want: usize) -> Poll<Result<usize, ReadError>> {
        let io_error = |e: std::io::Error| ReadError::Io(e.to_string());
        match &mut self.io {
            ReadIo::Tcp(half) => loop {
                if self.buf.is_empty() {
                    // Idle: hold no buffer until the socket has something to read.
                    self.buf = BytesMut::new();
                }
                // Readiness may be stale (set by the last read): then the read below finds
                // nothing, clears it, and the next turn waits with the buffer released.
                ready!(half.as_ref().poll_read_ready(cx)).map_err(io_error)?;
                reserve(&mut self.buf, want);
                match half.try_read_buf(&mut self.buf) {
                    Ok(n) => return Poll::Ready(Ok(n)),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    Err(e) => return Poll::Ready(Err(io_error(e))),
                }
            },
            ReadIo::Other(reader) => {
                reserve(&mut self.buf, want);
                tokio_util::io::poll_read_buf(Pin::new(reader), cx, &mut self.buf).map_err(io_error)
            }
        }
    }
}

/// Room for at least a read of [`READ_BUFFER`], or for the whole of a larger frame.
fn reserve(buf: &mut BytesMut, want: usize) {
    let additional = want.saturating_sub(buf.len()).max(READ_BUFFER);
    buf.reserve(additional);
}

enum Parsed {
    /// A message or signal for the caller.
    Inbound(Inbound),
    /// A frame was taken that completes nothing yet (a fragment).
    Consumed,
    /// The buffer must hold this many bytes for the next frame.
    Need(usize),
}
