//! Raw stream routes (CONTRACT §9): `/ws/stream/{topic}` and the paths of `streams:`.
//!
//! A raw stream is a WebSocket subscribed to one topic that receives each event's `payload`
//! alone, as a JSON text frame: no envelope, no requests, nothing before the first event.
//! On the message path it is a second kind of subscriber beside the `/ws` session:
//!
//! `accept` (shared admission checks) → `route` (token, topic, permission; refusals are HTTP
//! 401/403/404/400) → `connection` (subscribe, heartbeat, close) → broker → `fanout` (the
//! payload frame, encoded once per publication) → one of two writers:
//!
//! - without `rate_hz`: the session's bounded outbox and writer — every event is sent, and a
//!   client that cannot keep up is closed with 4008, as on `/ws`;
//! - with `rate_hz`: a `Latest` slot holding only the newest payload, drained by the
//!   `conflate` writer no more often than the `pacer` allows.

mod conflate;
mod connection;
mod error;
mod latest;
mod pacer;
mod route;

pub use error::StreamRefused;
pub(crate) use latest::Latest;
pub use route::{configured, topic_stream};
