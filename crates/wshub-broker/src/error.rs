//! Broker errors.

use thiserror::Error;

/// What can go wrong talking to a broker engine.
#[derive(Debug, Error)]
pub enum BrokerError {
    /// The engine's backing service cannot be reached; the operation was not done.
    #[error("broker {kind} is unavailable: {reason}")]
    Unavailable {
        /// Engine name (`memory`, `redis`, `nats`).
        kind: &'static str,
        /// Why, for the log.
        reason: String,
    },
}
