//! Errors that stop the hub from starting.

use thiserror::Error;

/// Why the server could not start.
#[derive(Debug, Error)]
pub enum ServerError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The configuration is invalid in a way only the server sees (keys, globs).
    #[error("{0}")]
    Config(String),
    /// The configuration asks for something this build cannot do.
    #[error("{0}")]
    Unsupported(String),
    /// A handler route cannot be set up (a bad glob, an unusable backend URL).
    #[error(transparent)]
    Handlers(#[from] crate::handlers::HandlerSetupError),
}
