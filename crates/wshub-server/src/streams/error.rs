//! Why a raw stream handshake is refused, and the HTTP answer each reason gets.

use crate::auth::AuthError;
use crate::http::ApiError;
use crate::permissions::Denied;
use thiserror::Error;
use wshub_protocol::{Topic, TopicError};

/// A raw stream refused at the handshake, before the upgrade.
#[derive(Debug, Error)]
pub enum StreamRefused {
    /// The path does not name a valid topic (400).
    #[error("{0}")]
    InvalidTopic(#[source] TopicError),
    /// The token did not verify, or has expired (401).
    #[error("token refused: {0}")]
    BadToken(#[source] AuthError),
    /// No token, and anonymous access is off (401).
    #[error("a token is required (query `token` or `Authorization: Bearer`)")]
    TokenRequired,
    /// No topic rule matches the topic, and the token's `channels` do not name it (404).
    #[error("no topic rule matches {0}")]
    UnknownChannel(Topic),
    /// The identity may not subscribe to the topic (403).
    #[error("your role may not subscribe to {0}")]
    Forbidden(Topic),
}

impl From<StreamRefused> for ApiError {
    fn from(refused: StreamRefused) -> ApiError {
        let message = refused.to_string();
        match refused {
            StreamRefused::InvalidTopic(_) => ApiError::bad_request(message),
            StreamRefused::BadToken(_) | StreamRefused::TokenRequired => ApiError::unauthorized(message),
            StreamRefused::UnknownChannel(_) => ApiError::not_found("unknown_channel", message),
            StreamRefused::Forbidden(_) => ApiError::forbidden(message),
        }
    }
}

impl StreamRefused {
    /// A refusal of the permission check for `topic`.
    pub fn denied(topic: Topic, denied: Denied) -> StreamRefused {
        match denied {
            Denied::UnknownChannel => StreamRefused::UnknownChannel(topic),
            Denied::Forbidden => StreamRefused::Forbidden(topic),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    #[test]
    fn each_refusal_has_its_status() {
        let topic = Topic::parse("t").expect("topic");
        let cases = [
            (
                StreamRefused::InvalidTopic(Topic::parse("a b").expect_err("space")),
                StatusCode::BAD_REQUEST,
            ),
            (StreamRefused::TokenRequired, StatusCode::UNAUTHORIZED),
            (
                StreamRefused::denied(topic.clone(), Denied::UnknownChannel),
                StatusCode::NOT_FOUND,
            ),
            (StreamRefused::denied(topic, Denied::Forbidden), StatusCode::FORBIDDEN),
        ];
        for (refused, status) in cases {
            assert_eq!(ApiError::from(refused).status(), status);
        }
    }
}
