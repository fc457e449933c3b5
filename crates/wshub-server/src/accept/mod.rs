//! Accepting connections: the first step of a message's path.
//!
//! `listener` accepts TCP and parses HTTP/1 (with `handshake_timeout` covering the
//! request head); `upgrade` decides whether a request on the WebSocket path becomes
//! a session (origin, per-IP limits, capacity, draining) and hands the upgraded socket to it.
//! Its admission checks and its 101 answer are shared with the raw stream routes (`streams`).
//! `handshake_rate` and `per_ip` hold the per-client-IP state those decisions need.

mod handshake_rate;
mod listener;
mod per_ip;
mod upgrade;

pub use handshake_rate::{HandshakeRate, retry_after_secs};
pub use listener::accept_loop;
pub use per_ip::{IpConnections, IpSlot, WarnThrottle, client_ip};
pub use upgrade::{Admission, admit, bearer_token, refuse, switch_protocols, upgrade};
