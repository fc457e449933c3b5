//! The WebSocket seam: the only module that knows which WebSocket library runs.
//!
//! Everything above it speaks in [`Inbound`] and [`OutFrame`]; swapping the library
//! (for one that can send pre-compressed frames, say) changes this folder only.
//! `handshake` validates the HTTP upgrade; `socket` frames messages on the upgraded
//! connection and splits it into a reader half (the session) and a writer half (the
//! per-connection writer task).

mod handshake;
mod socket;

pub use handshake::{UpgradeError, accept_key, validate_upgrade};
pub use socket::{
    Inbound, OutFrame, ReadError, SharedText, SocketConfig, WriteError, WsReader, WsWriter, from_upgraded,
};
