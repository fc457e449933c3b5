//! Why a handler gave no reply, why a route could not be set up, and what the client is told.
//!
//! The cause (a backend's status and body, a Rust handler's message) goes to the log; the client
//! gets the wire code assigned here and a short message that names only the request type.

use thiserror::Error;
use wshub_protocol::ErrorCode;

/// Why a handler gave no reply.
#[derive(Debug, Error)]
pub enum HandlerError {
    /// The handler could not do what was asked. Logged; the client gets `handler_failed`.
    #[error("{0}")]
    Failed(String),
    /// The handler cannot serve now (a dependency is down). Logged; the client gets `unavailable`.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The handler's reply is not usable (payload not an object, a reserved `type`).
    #[error("unusable reply: {0}")]
    InvalidReply(String),
    /// The reply would exceed `websocket.max_message_size`.
    #[error("the answer exceeds max_message_size ({limit} bytes)")]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// An HTTP backend failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

impl HandlerError {
    /// A failure with a message for the log (the client gets `handler_failed`).
    pub fn failed(message: impl Into<String>) -> HandlerError {
        HandlerError::Failed(message.into())
    }

    /// The wire code the client gets.
    pub fn code(&self) -> ErrorCode {
        match self {
            HandlerError::Unavailable(_) => ErrorCode::Unavailable,
            HandlerError::TooLarge { .. } => ErrorCode::MessageTooLarge,
            HandlerError::Failed(_) | HandlerError::InvalidReply(_) | HandlerError::Backend(_) => {
                ErrorCode::HandlerFailed
            }
        }
    }

    /// What the client is told about a call of `kind`: never the cause itself, which may hold
    /// a backend's internals.
    pub fn client_message(&self, kind: &str) -> String {
        match self {
            HandlerError::Unavailable(_) => format!("the handler for {kind:?} is unavailable; try again later"),
            HandlerError::TooLarge { .. } => format!("the reply to {kind:?} would exceed max_message_size"),
            HandlerError::Failed(_) | HandlerError::InvalidReply(_) | HandlerError::Backend(_) => {
                format!("the handler for {kind:?} failed")
            }
        }
    }
}

/// An error with its causes, `outer: inner: root`, for the log (an HTTP client's own message
/// often names only the step that failed, the cause says why).
pub(crate) struct WithCauses<'a>(pub(crate) &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for WithCauses<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut last = self.0.to_string();
        let mut cause = self.0.source();
        while let Some(error) = cause {
            let text = error.to_string();
            // Some errors repeat their source's message in their own; say it once.
            if !last.contains(&text) {
                write!(f, ": {text}")?;
            }
            last = text;
            cause = error.source();
        }
        Ok(())
    }
}

/// How an HTTP backend failed.
#[derive(Debug, Error)]
pub enum BackendError {
    /// No answer could be had: connection refused, reset, or the body could not be read.
    #[error("backend unreachable at {url}: {source}")]
    Unreachable {
        /// The endpoint.
        url: String,
        /// The HTTP client's error.
        #[source]
        source: reqwest::Error,
    },
    /// The backend answered with a status outside 2xx.
    #[error("backend at {url} answered HTTP {status}: {body:?}")]
    Status {
        /// The endpoint.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The start of the answer's body, for the log.
        body: String,
    },
    /// A 2xx answer that is not a JSON object `{"type"?, "payload"?}`.
    #[error("backend at {url} answered something other than a JSON object {{\"type\"?, \"payload\"?}}: {problem}")]
    NotAnObject {
        /// The endpoint.
        url: String,
        /// What was wrong.
        problem: String,
    },
}

/// Why the handler routes could not be set up (the hub does not start).
#[derive(Debug, Error)]
pub enum HandlerSetupError {
    /// A route's glob does not compile.
    #[error("{key}: {pattern:?} is not a valid glob: {source}")]
    Pattern {
        /// Where it was given (`handlers[2].match`, or the registered route).
        key: String,
        /// The glob.
        pattern: String,
        /// Why.
        #[source]
        source: globset::Error,
    },
    /// A backend URL cannot be used.
    #[error("{key}: {url:?} {problem}")]
    Url {
        /// `handlers[i].url`.
        key: String,
        /// The URL.
        url: String,
        /// What is wrong.
        problem: String,
    },
    /// The shared HTTP client could not be built.
    #[error("cannot set up the HTTP client for handler backends: {0}")]
    Client(#[source] reqwest::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_stay_out_of_client_messages() {
        let error = HandlerError::Backend(BackendError::Status {
            url: "http://127.0.0.1:9/rpc".to_owned(),
            status: 500,
            body: "Traceback: secret".to_owned(),
        });
        assert_eq!(error.code(), ErrorCode::HandlerFailed);
        let message = error.client_message("token.create");
        assert!(!message.contains("secret") && !message.contains("500"), "{message}");
        assert!(error.to_string().contains("secret"), "the log keeps the cause");
        assert_eq!(HandlerError::failed("db down").code(), ErrorCode::HandlerFailed);
        assert_eq!(HandlerError::Unavailable("x".into()).code(), ErrorCode::Unavailable);
        assert_eq!(HandlerError::TooLarge { limit: 1 }.code(), ErrorCode::MessageTooLarge);
    }

    #[test]
    fn the_log_gets_every_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let setup = HandlerSetupError::Pattern {
            key: "k".to_owned(),
            pattern: "a[".to_owned(),
            source: globset::Glob::new("a[").expect_err("unclosed class"),
        };
        let chained = WithCauses(&setup).to_string();
        assert_eq!(chained.matches("unclosed").count(), 1, "{chained}");
        let wrapped = HandlerError::Failed(io.to_string());
        assert_eq!(WithCauses(&wrapped).to_string(), "connection refused");
    }
}
