//! An upgraded connection, split into its reader and writer halves.
//!
//! The hub's connections are plain TCP under hyper, so the upgraded I/O is taken back as the
//! `TcpStream` and split into owned halves that need no lock between them; any other I/O
//! (none today) is split with `tokio::io::split`. Bytes hyper read past the upgrade request
//! (a client may send its first frame at once) go to the reader first.

use super::control::Control;
use super::deflate::Inflater;
use super::extension::DeflateParams;
use super::reader::WsReader;
use super::writer::{Outbound, WsWriter};
use bytes::Bytes;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// Limits for one connection.
#[derive(Debug, Clone, Copy)]
pub struct SocketConfig {
    /// Largest inbound message (after reassembly and decompression), in bytes.
    pub max_message_size: usize,
}

/// Where connections report what compression did (the hub's metrics implement it).
pub trait CompressionStats: Send + Sync {
    /// One flush sent `messages` compressed: `plain` bytes before compression, `wire` after.
    fn written(&self, messages: u64, plain: u64, wire: u64);
    /// A connection that negotiated compression opened (`true`) or ended.
    fn connection(&self, open: bool);
}

/// permessage-deflate for one connection: what its handshake agreed, and the hub's settings.
#[derive(Clone)]
pub struct Deflate {
    /// The negotiated parameters.
    pub params: DeflateParams,
    /// Messages of at least this many bytes are sent compressed.
    pub threshold: usize,
    /// Where the bytes saved are counted.
    pub stats: Arc<dyn CompressionStats>,
}

impl std::fmt::Debug for Deflate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deflate")
            .field("params", &self.params)
            .field("threshold", &self.threshold)
            .finish_non_exhaustive()
    }
}

/// An upgraded connection with what its handshake negotiated.
#[derive(Debug)]
pub struct UpgradedSocket {
    /// The connection, after the 101 answer.
    pub upgraded: Upgraded,
    /// permessage-deflate, if negotiated.
    pub deflate: Option<Deflate>,
}

/// Frames an upgraded connection as a server-side WebSocket and splits it into its halves.
pub fn from_upgraded(socket: UpgradedSocket, config: SocketConfig) -> (WsReader, WsWriter) {
    let (read, write, leftover) = match socket.upgraded.downcast::<TokioIo<TcpStream>>() {
        Ok(parts) => {
            let (read, write) = parts.io.into_inner().into_split();
            (ReadIo::Tcp(read), WriteIo::Tcp(write), parts.read_buf)
        }
        Err(upgraded) => {
            let (read, write) = tokio::io::split(TokioIo::new(upgraded));
            (
                ReadIo::Other(Box::new(read)),
                WriteIo::Other(Box::new(write)),
                Bytes::new(),
            )
        }
    };
    halves(read, write, leftover, config, socket.deflate)
}

/// Both halves over any I/O (tests drive them over in-memory pipes).
pub(super) fn halves(
    read: ReadIo,
    write: WriteIo,
    leftover: Bytes,
    config: SocketConfig,
    deflate: Option<Deflate>,
) -> (WsReader, WsWriter) {
    let control = Arc::new(Control::default());
    let inflater = deflate
        .as_ref()
        .map(|d| Inflater::new(d.params.client_no_context_takeover));
    let outbound = deflate.map(|d| Outbound {
        threshold: d.threshold,
        stats: d.stats,
    });
    let reader = WsReader::new(read, leftover, config.max_message_size, inflater, Arc::clone(&control));
    let writer = WsWriter::new(write, control, outbound);
    (reader, writer)
}

/// The reading side of the I/O.
pub(super) enum ReadIo {
    /// A TCP socket: read only when readable, so an idle connection holds no buffer.
    Tcp(OwnedReadHalf),
    /// Anything else.
    Other(Box<dyn AsyncRead + Send + Unpin>),
}

/// The writing side of the I/O.
pub(super) enum WriteIo {
    /// A TCP socket.
    Tcp(OwnedWriteHalf),
    /// Anything else.
    Other(Box<dyn AsyncWrite + Send + Unpin>),
}

impl AsyncWrite for WriteIo {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            WriteIo::Tcp(half) => Pin::new(half).poll_write(cx, buf),
            WriteIo::Other(io) => Pin::new(io).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            WriteIo::Tcp(half) => Pin::new(half).poll_write_vectored(cx, bufs),
            WriteIo::Other(io) => Pin::new(io).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            WriteIo::Tcp(half) => half.is_write_vectored(),
            WriteIo::Other(io) => io.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            WriteIo::Tcp(half) => Pin::new(half).poll_flush(cx),
            WriteIo::Other(io) => Pin::new(io).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            WriteIo::Tcp(half) => Pin::new(half).poll_shutdown(cx),
            WriteIo::Other(io) => Pin::new(io).poll_shutdown(cx),
        }
    }
}
