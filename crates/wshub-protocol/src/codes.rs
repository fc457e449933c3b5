//! Error codes and WebSocket close codes: assigned here and nowhere else.

use crate::binary::BinaryError;
use std::fmt;

/// The `payload.code` of an `error` reply (CONTRACT §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The frame is not a valid request (bad JSON, not an object, bad field).
    InvalidMessage,
    /// No handler is configured for the request type.
    UnknownType,
    /// No topic rule matches the topic name.
    UnknownChannel,
    /// The connection's role may not do this on this topic.
    Forbidden,
    /// The connection already holds `max_subscriptions_per_connection` topics.
    TooManySubscriptions,
    /// Missing or bad credentials.
    Unauthorized,
    /// The connection's token expired; a fresh `auth` is expected.
    TokenExpired,
    /// A rate-limit bucket is empty.
    RateLimited,
    /// An outbound reply or event would exceed `max_message_size`.
    MessageTooLarge,
    /// The handler backend failed or answered something unusable.
    HandlerFailed,
    /// The handler backend did not answer in time.
    HandlerTimeout,
    /// The hub cannot serve this now (shutting down, feature off, too many in flight).
    Unavailable,
    /// A bug or an unexpected failure inside the hub; details are in its log.
    Internal,
}

impl ErrorCode {
    /// Every code, for documentation and metrics label sets.
    pub const ALL: [ErrorCode; 13] = [
        ErrorCode::InvalidMessage,
        ErrorCode::UnknownType,
        ErrorCode::UnknownChannel,
        ErrorCode::Forbidden,
        ErrorCode::TooManySubscriptions,
        ErrorCode::Unauthorized,
        ErrorCode::TokenExpired,
        ErrorCode::RateLimited,
        ErrorCode::MessageTooLarge,
        ErrorCode::HandlerFailed,
        ErrorCode::HandlerTimeout,
        ErrorCode::Unavailable,
        ErrorCode::Internal,
    ];

    /// The code as it appears on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidMessage => "invalid_message",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::UnknownChannel => "unknown_channel",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::TooManySubscriptions => "too_many_subscriptions",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::TokenExpired => "token_expired",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::MessageTooLarge => "message_too_large",
            ErrorCode::HandlerFailed => "handler_failed",
            ErrorCode::HandlerTimeout => "handler_timeout",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
        }
    }

    /// Parses a wire code back (used by clients).
    pub fn from_wire(code: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_str() == code)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl BinaryError {
    /// The `error` code a client gets for a refused binary frame (CONTRACT §12): a frame or
    /// metadata over the size limit is `message_too_large`, anything malformed is
    /// `invalid_message`.
    pub const fn code(&self) -> ErrorCode {
        match self {
            BinaryError::TooLarge { .. } | BinaryError::MetadataTooLong { .. } => ErrorCode::MessageTooLarge,
            BinaryError::TruncatedHeader { .. }
            | BinaryError::UnsupportedVersion(_)
            | BinaryError::UnknownKind(_)
            | BinaryError::MetadataPastEnd { .. }
            | BinaryError::MetadataNotUtf8(_)
            | BinaryError::MetadataNotJson(_)
            | BinaryError::MetadataNotObject
            | BinaryError::DuplicateKey(_)
            | BinaryError::MissingTopic
            | BinaryError::TopicNotString
            | BinaryError::InvalidTopic(_)
            | BinaryError::InvalidId(_) => ErrorCode::InvalidMessage,
        }
    }
}

/// WebSocket close codes the hub sends (CONTRACT §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseCode {
    /// 1000: normal closure (e.g. `POST /api/disconnect` without a code).
    Normal,
    /// 1001: the hub is shutting down.
    GoingAway,
    /// 1002: the client broke the WebSocket protocol (RFC 6455).
    Protocol,
    /// 1007: a message's data does not fit its type (text that is not UTF-8, a compressed
    /// message that does not inflate).
    InvalidPayload,
    /// 1008: policy violation (an over-long `client_id`, repeated abuse).
    Policy,
    /// 1009: an inbound message exceeded `max_message_size`.
    TooBig,
    /// 1011: internal error.
    Internal,
    /// 1006: the connection dropped without a close frame. Never sent on the wire; it
    /// records why a session ended so no close handshake is attempted.
    Abnormal,
    /// 4000: nothing heard from the client for `pong_wait`.
    Heartbeat,
    /// 4001: bad token, or no `auth` within `auth_timeout`.
    Unauthorized,
    /// 4002: token expired and not refreshed within `refresh_grace`.
    TokenExpired,
    /// 4008: the client could not keep up with its outbound queue.
    SlowConsumer,
    /// Any other code, e.g. one chosen through `POST /api/disconnect`.
    Other(u16),
}

impl CloseCode {
    /// The numeric code sent in the close frame.
    pub const fn code(self) -> u16 {
        match self {
            CloseCode::Normal => 1000,
            CloseCode::GoingAway => 1001,
            CloseCode::Protocol => 1002,
            CloseCode::InvalidPayload => 1007,
            CloseCode::Policy => 1008,
            CloseCode::TooBig => 1009,
            CloseCode::Internal => 1011,
            CloseCode::Abnormal => 1006,
            CloseCode::Heartbeat => 4000,
            CloseCode::Unauthorized => 4001,
            CloseCode::TokenExpired => 4002,
            CloseCode::SlowConsumer => 4008,
            CloseCode::Other(code) => code,
        }
    }

    /// Maps a numeric code to its named variant where there is one.
    pub const fn from_code(code: u16) -> CloseCode {
        match code {
            1000 => CloseCode::Normal,
            1001 => CloseCode::GoingAway,
            1002 => CloseCode::Protocol,
            1007 => CloseCode::InvalidPayload,
            1008 => CloseCode::Policy,
            1009 => CloseCode::TooBig,
            1011 => CloseCode::Internal,
            1006 => CloseCode::Abnormal,
            4000 => CloseCode::Heartbeat,
            4001 => CloseCode::Unauthorized,
            4002 => CloseCode::TokenExpired,
            4008 => CloseCode::SlowConsumer,
            other => CloseCode::Other(other),
        }
    }

    /// The `reason` label of `connections_closed_total` (CONTRACT §10).
    pub const fn metric_reason(self) -> &'static str {
        match self {
            CloseCode::Normal => "normal",
            CloseCode::GoingAway => "going_away",
            CloseCode::Policy => "policy",
            CloseCode::TooBig => "too_big",
            CloseCode::Heartbeat => "heartbeat",
            CloseCode::Unauthorized => "unauthorized",
            CloseCode::TokenExpired => "token_expired",
            CloseCode::SlowConsumer => "slow_consumer",
            CloseCode::Protocol
            | CloseCode::InvalidPayload
            | CloseCode::Internal
            | CloseCode::Abnormal
            | CloseCode::Other(_) => "error",
        }
    }

    /// Whether a client may send this code in its own close frame (RFC 6455 §7.4).
    pub const fn is_valid_on_wire(code: u16) -> bool {
        matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_round_trip() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_wire(code.as_str()), Some(code));
        }
        assert_eq!(ErrorCode::from_wire("nope"), None);
    }

    #[test]
    fn binary_errors_map_to_their_wire_codes() {
        let too_large = BinaryError::TooLarge { size: 2, max: 1 };
        assert_eq!(too_large.code(), ErrorCode::MessageTooLarge);
        assert_eq!(
            BinaryError::MetadataTooLong { len: 0 }.code(),
            ErrorCode::MessageTooLarge
        );
        for error in [
            BinaryError::TruncatedHeader { len: 3 },
            BinaryError::UnsupportedVersion(2),
            BinaryError::UnknownKind(9),
            BinaryError::MetadataNotObject,
            BinaryError::MissingTopic,
        ] {
            assert_eq!(error.code(), ErrorCode::InvalidMessage, "{error}");
        }
    }

    #[test]
    fn close_codes_round_trip() {
        for code in [
            1000, 1001, 1002, 1006, 1007, 1008, 1009, 1011, 4000, 4001, 4002, 4008, 4100,
        ] {
            assert_eq!(CloseCode::from_code(code).code(), code);
        }
    }
}
