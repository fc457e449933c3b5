//! The bounded label values of CONTRACT §10, fixed when the node starts.
//!
//! Every label set is known up front (request types plus the configured handler globs,
//! the topics written literally in the rules, close reasons, error codes), so each
//! counter handle is resolved once and the hot path indexes an array instead of hashing
//! a label set.

use crate::config::Config;
use std::collections::HashMap;
use wshub_protocol::{CloseCode, Request};

/// The request types of CONTRACT §4 that are the hub's own.
pub const REQUEST_TYPES: [&str; 8] = [
    "subscribe",
    "unsubscribe",
    "publish",
    "ping",
    "auth",
    "get_reconnection_token",
    "history",
    "presence",
];

/// The label value for anything outside a bounded set.
pub const OTHER: &str = "other";

/// `type` label values: the hub's request types, each handler `match`, then `other`.
#[derive(Debug, Clone)]
pub struct RequestTypes {
    names: Vec<String>,
    handler_index: HashMap<String, usize>,
}

impl RequestTypes {
    /// The label set for this configuration plus handlers registered in code.
    pub fn new<'a>(handler_patterns: impl IntoIterator<Item = &'a str>) -> RequestTypes {
        let mut names: Vec<String> = REQUEST_TYPES.iter().map(|s| (*s).to_owned()).collect();
        let mut handler_index = HashMap::new();
        for pattern in handler_patterns {
            if !handler_index.contains_key(pattern) && !REQUEST_TYPES.contains(&pattern) && pattern != OTHER {
                handler_index.insert(pattern.to_owned(), names.len());
                names.push(pattern.to_owned());
            }
        }
        names.push(OTHER.to_owned());
        RequestTypes { names, handler_index }
    }

    /// Every label value, in index order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The index of `other`.
    pub fn other(&self) -> usize {
        self.names.len() - 1
    }

    /// The index of `publish` (a binary publish counts as one).
    pub fn publish(&self) -> usize {
        2
    }

    /// The index of a hub request; `handler_pattern` is the matching route's glob for a
    /// request of the application's own type.
    pub fn of(&self, request: &Request, handler_pattern: Option<&str>) -> usize {
        match request {
            Request::Subscribe { .. } => 0,
            Request::Unsubscribe { .. } => 1,
            Request::Publish { .. } => 2,
            Request::Ping => 3,
            Request::Auth { .. } => 4,
            Request::GetReconnectionToken => 5,
            Request::History { .. } => 6,
            Request::Presence { .. } => 7,
            Request::Other { .. } => handler_pattern
                .and_then(|p| self.handler_index.get(p).copied())
                .unwrap_or_else(|| self.other()),
        }
    }
}

/// `topic` label values: topics written literally (no glob characters) in the rules.
pub fn literal_topics(config: &Config) -> Vec<String> {
    let mut topics: Vec<String> = config
        .topics
        .iter()
        .map(|rule| rule.r#match.clone())
        .filter(|m| !m.contains(['*', '?', '[', ']', '{', '}', '\\']) && m != OTHER)
        .collect();
    topics.sort();
    topics.dedup();
    topics
}

/// `reason` label values of `connections_closed_total`.
pub const CLOSE_REASONS: [&str; 9] = [
    "normal",
    "going_away",
    "policy",
    "too_big",
    "heartbeat",
    "unauthorized",
    "token_expired",
    "slow_consumer",
    "error",
];

/// The `reason` index of a close code.
pub fn close_reason(code: CloseCode) -> usize {
    match code {
        CloseCode::Normal => 0,
        CloseCode::GoingAway => 1,
        CloseCode::Policy => 2,
        CloseCode::TooBig => 3,
        CloseCode::Heartbeat => 4,
        CloseCode::Unauthorized => 5,
        CloseCode::TokenExpired => 6,
        CloseCode::SlowConsumer => 7,
        CloseCode::Protocol
        | CloseCode::InvalidPayload
        | CloseCode::Internal
        | CloseCode::Abnormal
        | CloseCode::Other(_) => 8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handler_globs_get_their_own_type_label_and_the_rest_is_other() {
        let types = RequestTypes::new(["token.*", "subscribe", "token.*", "admin.*"]);
        assert_eq!(types.names()[8..], ["token.*", "admin.*", "other"]);
        let other = Request::Other {
            kind: "token.create".into(),
            payload: None,
        };
        assert_eq!(types.names()[types.of(&other, Some("token.*"))], "token.*");
        assert_eq!(types.names()[types.of(&other, None)], "other");
        assert_eq!(types.names()[types.of(&Request::Ping, None)], "ping");
    }

    #[test]
    fn only_literal_rule_topics_are_topic_labels() {
        let config = Config::default();
        let topics = literal_topics(&config);
        assert!(topics.contains(&"metrics".to_owned()));
        assert!(topics.contains(&"signals".to_owned()));
        assert!(!topics.iter().any(|t| t.contains('*')));
    }

    #[test]
    fn every_close_code_has_a_reason() {
        assert_eq!(CLOSE_REASONS[close_reason(CloseCode::SlowConsumer)], "slow_consumer");
        assert_eq!(CLOSE_REASONS[close_reason(CloseCode::Abnormal)], "error");
        assert_eq!(CLOSE_REASONS[close_reason(CloseCode::Other(4100))], "error");
    }
}
