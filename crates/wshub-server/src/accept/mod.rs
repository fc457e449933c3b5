//! Accepting connections: the first step of a message's path.
//!
//! `listener` accepts TCP and parses HTTP/1 (with `handshake_timeout` covering the
//! request head); `upgrade` decides whether a request on the WebSocket path becomes
//! a session (origin, capacity, draining) and hands the upgraded socket to it.

mod listener;
mod upgrade;

pub use listener::accept_loop;
pub use upgrade::{bearer_token, upgrade};
