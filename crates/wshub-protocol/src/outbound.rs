//! Encoding of everything the hub sends on `/ws`: replies, errors and events.
//!
//! Each function returns the finished bytes of one text frame. Events are encoded
//! once per publication and the same bytes are shared by every subscriber.

use crate::codes::ErrorCode;
use crate::ids::RequestId;
use serde::Serialize;
use serde_json::value::RawValue;

#[derive(Serialize)]
struct Reply<'a, P: Serialize> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a RequestId>,
    #[serde(rename = "type")]
    kind: &'a str,
    payload: P,
    timestamp: u64,
}

/// Encodes a reply (or a server notice when `id` is `None`).
pub fn reply<P: Serialize>(id: Option<&RequestId>, kind: &str, payload: &P, timestamp: u64) -> Vec<u8> {
    serde_json::to_vec(&Reply {
        id,
        kind,
        payload,
        timestamp,
    })
    .expect("reply payloads are plain data and always serialise")
}

#[derive(Serialize)]
struct ErrorPayload<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after: Option<f64>,
}

/// Encodes an `error` reply.
pub fn error(
    id: Option<&RequestId>,
    code: ErrorCode,
    message: &str,
    retry_after: Option<f64>,
    timestamp: u64,
) -> Vec<u8> {
    let payload = ErrorPayload {
        code: code.as_str(),
        message,
        retry_after,
    };
    reply(id, "error", &payload, timestamp)
}

/// The fields of one event as delivered to subscribers (CONTRACT §4, `publish`).
#[derive(Debug, Serialize)]
pub struct EventView<'a> {
    /// The event name.
    #[serde(rename = "type")]
    pub kind: &'a str,
    /// The topic it was published on.
    pub topic: &'a str,
    /// The publisher's payload, verbatim.
    pub payload: &'a RawValue,
    /// The hub's `evt_…` id.
    pub id: &'a str,
    /// Position in the topic's stream.
    pub offset: u64,
    /// The stream's epoch.
    pub epoch: &'a str,
    /// When the hub accepted the publication (ms since the Unix epoch).
    pub timestamp: u64,
    /// The publishing user id, or `"server"`.
    pub sender_id: &'a str,
}

/// An upper bound of an event's encoded size, known before the broker places it:
/// the variable parts plus room for keys, an `evt_` id, an epoch, an offset and a timestamp.
pub fn event_size_bound(topic: &str, event: &str, payload: &str, sender_id: &str) -> usize {
    const FIXED: usize = 200;
    topic.len() + event.len() + payload.len() + sender_id.len() + FIXED
}

/// Encodes an event.
pub fn event(view: &EventView<'_>) -> Vec<u8> {
    serde_json::to_vec(view).expect("events hold only strings, numbers and raw JSON")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn error_shape() {
        let bytes = error(None, ErrorCode::RateLimited, "slow down", Some(0.8), 5);
        let v: Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(v["type"], "error");
        assert_eq!(v["payload"]["code"], "rate_limited");
        assert_eq!(v["payload"]["retry_after"], 0.8);
        assert!(v.get("id").is_none());
    }

    #[test]
    fn size_bound_covers_the_encoding() {
        let payload = RawValue::from_string(r#"{"x":"yyyyyyyyyy"}"#.to_owned()).expect("json");
        let view = EventView {
            kind: "some.event",
            topic: "a/b/c",
            payload: &payload,
            id: "evt_0123456789abcdef0123",
            offset: u64::MAX,
            epoch: "0123456789abcdef",
            timestamp: 1_732_190_000_000,
            sender_id: "user-42",
        };
        assert!(event(&view).len() <= event_size_bound("a/b/c", "some.event", payload.get(), "user-42"));
    }

    #[test]
    fn event_shape() {
        let payload = RawValue::from_string(r#"{"x":1}"#.to_owned()).expect("json");
        let bytes = event(&EventView {
            kind: "e",
            topic: "t",
            payload: &payload,
            id: "evt_1",
            offset: 3,
            epoch: "ep",
            timestamp: 9,
            sender_id: "server",
        });
        let v: Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(
            v,
            serde_json::json!({"type":"e","topic":"t","payload":{"x":1},"id":"evt_1","offset":3,"epoch":"ep","timestamp":9,"sender_id":"server"})
        );
    }
}
