//! The WebSocket seam: the server side of RFC 6455 and RFC 7692, owned by the hub.
//!
//! Everything above it speaks in [`Inbound`] and [`OutFrame`]. The hub frames its own
//! connections (no WebSocket library on the server) because it needs what libraries do not
//! offer: one permessage-deflate copy of an event shared by every subscriber. One file per job,
//! in the order bytes pass through them:
//!
//! - `handshake` validates the HTTP upgrade and derives `Sec-WebSocket-Accept`;
//!   `extension` parses `Sec-WebSocket-Extensions` and negotiates permessage-deflate;
//! - `socket` splits the upgraded connection into a reader half (the session's) and a writer
//!   half (the per-connection writer task's), which share only `control` (Pongs and the
//!   client's Close, which the writer sends for the reader);
//! - `frame` parses and encodes frame headers; `assemble` turns frames into messages and
//!   enforces the protocol's rules and the size limit; `reader` reads and `writer` writes;
//! - `deflate` compresses and inflates; `text` is the shared text body whose compressed form
//!   is made once for all the connections that send it.

mod assemble;
mod control;
mod deflate;
mod extension;
mod frame;
mod handshake;
mod reader;
mod socket;
mod text;
mod writer;

#[cfg(test)]
mod tests;

#[cfg(test)]
pub(crate) use deflate::compressions_on_this_thread;
pub use extension::{DeflateParams, negotiate};
pub use handshake::{UpgradeError, accept_key, validate_upgrade};
pub use reader::{Inbound, ReadError, WsReader};
pub use socket::{CompressionStats, Deflate, SocketConfig, UpgradedSocket, from_upgraded};
pub use text::SharedText;
pub use writer::{OutFrame, WriteError, WsWriter};
