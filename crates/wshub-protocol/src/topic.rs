//! Topic and event names: what characters they may hold and how long they may be.

use serde::Serialize;
use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;
use thiserror::Error;

/// A validated topic name: 1 to 255 bytes of `[A-Za-z0-9_.:/@-]` (CONTRACT §4).
///
/// Cheap to clone: the registry, the broker and every subscription share one allocation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Topic(Arc<str>);

/// Why a topic or event name was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TopicError {
    /// The name is empty.
    #[error("{what} is empty")]
    Empty { what: &'static str },
    /// The name is longer than allowed.
    #[error("{what} is longer than {max} bytes")]
    TooLong { what: &'static str, max: usize },
    /// The name holds a character outside the allowed set.
    #[error("{what} {name:?} has a character outside [A-Za-z0-9_.:/@-]")]
    BadCharacter { what: &'static str, name: String },
    /// The event name is one the protocol reserves.
    #[error("event name {0:?} is reserved")]
    Reserved(String),
}

/// Longest topic name, in bytes.
pub const MAX_TOPIC_LEN: usize = 255;
/// Longest event name, in bytes.
pub const MAX_EVENT_LEN: usize = 128;

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'/' | b'@' | b'-')
}

fn check_name(name: &str, what: &'static str, max: usize) -> Result<(), TopicError> {
    if name.is_empty() {
        return Err(TopicError::Empty { what });
    }
    if name.len() > max {
        return Err(TopicError::TooLong { what, max });
    }
    if !name.bytes().all(is_name_byte) {
        let mut shown: String = name.chars().take(64).collect();
        if shown.len() < name.len() {
            shown.push('…');
        }
        return Err(TopicError::BadCharacter { what, name: shown });
    }
    Ok(())
}

impl Topic {
    /// Validates a topic name.
    pub fn parse(name: &str) -> Result<Topic, TopicError> {
        check_name(name, "topic", MAX_TOPIC_LEN)?;
        Ok(Topic(Arc::from(name)))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Borrow<str> for Topic {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// Request and reply types an event may not be named after, so a client can always
/// tell events from control messages by `type` alone.
pub const RESERVED_TYPES: &[&str] = &[
    "subscribe",
    "unsubscribe",
    "publish",
    "ping",
    "pong",
    "auth",
    "get_reconnection_token",
    "history",
    "presence",
    "subscribed",
    "unsubscribed",
    "published",
    "authenticated",
    "reconnection_token",
    "error",
    "binary",
];

/// A validated event name: the topic character set, at most 128 bytes, not a
/// protocol type and not starting with `connection.`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct EventName(Arc<str>);

impl EventName {
    /// The event name used when a publisher gives none.
    pub const DEFAULT: &'static str = "message";

    /// Validates an event name.
    pub fn parse(name: &str) -> Result<EventName, TopicError> {
        check_name(name, "event", MAX_EVENT_LEN)?;
        if RESERVED_TYPES.contains(&name) || name.starts_with("connection.") {
            return Err(TopicError::Reserved(name.to_owned()));
        }
        Ok(EventName(Arc::from(name)))
    }

    /// Names made by the hub itself (`connection.opened`, …), which skip the reserved check.
    pub fn internal(name: &'static str) -> EventName {
        EventName(Arc::from(name))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_character_set_and_length() {
        assert!(Topic::parse("a-b_c.d:e/f@g").is_ok());
        assert!(Topic::parse(&"x".repeat(255)).is_ok());
        assert!(matches!(
            Topic::parse(&"x".repeat(256)),
            Err(TopicError::TooLong { .. })
        ));
        assert!(matches!(Topic::parse(""), Err(TopicError::Empty { .. })));
        for bad in ["a b", "a*", "é", "a#b", "a\u{0}"] {
            assert!(
                matches!(Topic::parse(bad), Err(TopicError::BadCharacter { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn event_names_refuse_reserved_types() {
        assert!(EventName::parse("token.created").is_ok());
        assert!(EventName::parse("error").is_err());
        assert!(EventName::parse("subscribed").is_err());
        assert!(EventName::parse("connection.opened").is_err());
        assert!(EventName::parse(&"e".repeat(129)).is_err());
    }
}
