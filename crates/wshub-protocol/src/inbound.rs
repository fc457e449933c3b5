//! Decoding of client frames into typed requests (CONTRACT §2, §4).
//!
//! Decoding happens in two steps so that a request with an `id` always gets its
//! reply: first the frame is split into raw fields (this only fails for invalid
//! JSON or a non-object), then each field is checked, and a failure there still
//! knows the request's `id`.

use crate::ids::RequestId;
use crate::topic::{EventName, TopicError};
use serde::Deserialize;
use serde_json::value::RawValue;
use thiserror::Error;

/// At most this many topics in one `subscribe`/`unsubscribe` (CONTRACT §4).
pub const MAX_TOPICS_PER_REQUEST: usize = 100;
/// Largest `limit` of a `history` request.
pub const MAX_HISTORY_LIMIT: usize = 1000;
/// `limit` of a `history` request that gives none.
pub const DEFAULT_HISTORY_LIMIT: usize = 100;

/// One decoded client frame.
#[derive(Debug)]
pub struct ClientFrame {
    /// The request's `id`, echoed on its reply.
    pub id: Option<RequestId>,
    /// What the client asks for.
    pub request: Request,
}

/// Where a recovering subscriber left off (`payload.recover`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Recover {
    /// The epoch the client's offset belongs to.
    pub epoch: String,
    /// The last offset the client has seen.
    pub offset: u64,
}

/// A client request, its fields checked.
#[derive(Debug)]
pub enum Request {
    /// Subscribe to one or more topics; names are checked one by one by the session,
    /// since a bad name denies only that topic.
    Subscribe {
        topics: Vec<String>,
        recover: Option<Recover>,
    },
    /// Leave one or more topics.
    Unsubscribe { topics: Vec<String> },
    /// Publish an event.
    Publish {
        topic: String,
        event: EventName,
        payload: Box<RawValue>,
    },
    /// Application-level ping.
    Ping,
    /// Authenticate or refresh the token.
    Auth { token: String },
    /// Ask for a single-use reconnection token.
    GetReconnectionToken,
    /// Read a topic's history.
    History {
        topic: String,
        since: Option<u64>,
        limit: usize,
    },
    /// Read a topic's presence.
    Presence { topic: String },
    /// Any other type: routed to a handler if one matches.
    Other {
        kind: String,
        payload: Option<Box<RawValue>>,
    },
}

impl Request {
    /// The request type as sent, for logs and metric labels.
    pub fn kind(&self) -> &str {
        match self {
            Request::Subscribe { .. } => "subscribe",
            Request::Unsubscribe { .. } => "unsubscribe",
            Request::Publish { .. } => "publish",
            Request::Ping => "ping",
            Request::Auth { .. } => "auth",
            Request::GetReconnectionToken => "get_reconnection_token",
            Request::History { .. } => "history",
            Request::Presence { .. } => "presence",
            Request::Other { kind, .. } => kind,
        }
    }
}

/// A frame that could not be decoded; always answered with `invalid_message`.
#[derive(Debug, Error)]
#[error("{message}")]
pub struct DecodeError {
    /// The frame's `id` when it could be read, so the error reply carries it.
    pub id: Option<RequestId>,
    /// What was wrong, for the client.
    pub message: String,
    /// The request type, when it could be read (for rate-limit accounting).
    pub kind: Option<String>,
}

#[derive(Deserialize)]
struct RawEnvelope<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "type")]
    kind: Option<&'a RawValue>,
    #[serde(borrow, default)]
    topic: Option<&'a RawValue>,
    #[serde(borrow, default)]
    topics: Option<&'a RawValue>,
    #[serde(borrow, default)]
    event: Option<&'a RawValue>,
    #[serde(borrow, default)]
    payload: Option<&'a RawValue>,
}

/// Fields of `payload` that some requests read.
#[derive(Deserialize, Default)]
struct PayloadFields<'a> {
    #[serde(borrow, default)]
    topic: Option<&'a RawValue>,
    #[serde(borrow, default)]
    topics: Option<&'a RawValue>,
    #[serde(borrow, default)]
    recover: Option<&'a RawValue>,
    #[serde(borrow, default)]
    token: Option<&'a RawValue>,
    #[serde(borrow, default)]
    since: Option<&'a RawValue>,
    #[serde(borrow, default)]
    limit: Option<&'a RawValue>,
}

struct Fields<'a> {
    raw: RawEnvelope<'a>,
    payload: PayloadFields<'a>,
}

fn is_json_object(bytes: &[u8]) -> bool {
    bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

fn is_null(raw: Option<&RawValue>) -> bool {
    raw.is_none_or(|v| v.get() == "null")
}

fn string_field(raw: &RawValue, name: &str) -> Result<String, String> {
    serde_json::from_str::<String>(raw.get()).map_err(|_| format!("`{name}` must be a string"))
}

/// Decodes one text frame sent by a client.
pub fn decode_client_frame(bytes: &[u8]) -> Result<ClientFrame, DecodeError> {
    let fail = |id: Option<RequestId>, kind: Option<String>, message: String| DecodeError { id, message, kind };
    if !is_json_object(bytes) {
        let message = if serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok() {
            "message must be a JSON object".to_owned()
        } else {
            "message is not valid JSON".to_owned()
        };
        return Err(fail(None, None, message));
    }
    let raw: RawEnvelope<'_> =
        serde_json::from_slice(bytes).map_err(|e| fail(None, None, format!("message is not valid JSON: {e}")))?;
    let id = decode_id(raw.id).map_err(|message| fail(None, None, message))?;
    let kind = match raw.kind {
        Some(kind) if !is_null(Some(kind)) => string_field(kind, "type").map_err(|m| fail(id.clone(), None, m))?,
        _ => return Err(fail(id, None, "message has no `type`".to_owned())),
    };
    if kind.is_empty() {
        return Err(fail(id, None, "`type` is empty".to_owned()));
    }
    let payload = match raw.payload {
        Some(p) if !is_null(Some(p)) => {
            if !is_json_object(p.get().as_bytes()) {
                return Err(fail(id, Some(kind), "`payload` must be an object".to_owned()));
            }
            serde_json::from_str::<PayloadFields<'_>>(p.get()).unwrap_or_default()
        }
        _ => PayloadFields::default(),
    };
    let fields = Fields { raw, payload };
    match decode_request(&kind, &fields) {
        Ok(request) => Ok(ClientFrame { id, request }),
        Err(message) => Err(fail(id, Some(kind), message)),
    }
}

fn decode_id(raw: Option<&RawValue>) -> Result<Option<RequestId>, String> {
    match raw {
        None => Ok(None),
        Some(raw) => RequestId::from_json(raw).map_err(|e| e.to_string()),
    }
}

fn decode_request(kind: &str, f: &Fields<'_>) -> Result<Request, String> {
    Ok(match kind {
        "subscribe" => Request::Subscribe {
            topics: topic_list(f)?,
            recover: recover(f)?,
        },
        "unsubscribe" => Request::Unsubscribe { topics: topic_list(f)? },
        "publish" => Request::Publish {
            topic: single_topic(f)?,
            event: event_name(f)?,
            payload: publish_payload(f),
        },
        "ping" => Request::Ping,
        "auth" => Request::Auth { token: auth_token(f)? },
        "get_reconnection_token" => Request::GetReconnectionToken,
        "history" => Request::History {
            topic: single_topic(f)?,
            since: history_since(f)?,
            limit: history_limit(f)?,
        },
        "presence" => Request::Presence {
            topic: single_topic(f)?,
        },
        other => Request::Other {
            kind: other.to_owned(),
            payload: f.raw.payload.filter(|p| p.get() != "null").map(|p| p.to_owned()),
        },
    })
}

/// `topic` or `topics`, at the top level or (for compatibility with clients that put
/// them there) inside `payload`.
fn topic_list(f: &Fields<'_>) -> Result<Vec<String>, String> {
    let (topic, topics) = if !is_null(f.raw.topic) || !is_null(f.raw.topics) {
        (f.raw.topic, f.raw.topics)
    } else {
        (f.payload.topic, f.payload.topics)
    };
    let mut list = Vec::new();
    if let Some(topic) = topic.filter(|t| t.get() != "null") {
        list.push(string_field(topic, "topic")?);
    }
    if let Some(topics) = topics.filter(|t| t.get() != "null") {
        let more: Vec<String> =
            serde_json::from_str(topics.get()).map_err(|_| "`topics` must be an array of strings".to_owned())?;
        list.extend(more);
    }
    if list.is_empty() {
        return Err("`topic` or `topics` is required".to_owned());
    }
    if list.len() > MAX_TOPICS_PER_REQUEST {
        return Err(format!("at most {MAX_TOPICS_PER_REQUEST} topics per request"));
    }
    let mut seen = std::collections::HashSet::with_capacity(list.len());
    list.retain(|t| seen.insert(t.clone()));
    Ok(list)
}

fn single_topic(f: &Fields<'_>) -> Result<String, String> {
    let topic = if !is_null(f.raw.topic) {
        f.raw.topic
    } else {
        f.payload.topic
    };
    match topic.filter(|t| t.get() != "null") {
        Some(t) => string_field(t, "topic"),
        None => Err("`topic` is required".to_owned()),
    }
}

fn event_name(f: &Fields<'_>) -> Result<EventName, String> {
    match f.raw.event.filter(|e| e.get() != "null") {
        None => Ok(EventName::parse(EventName::DEFAULT).map_err(|e: TopicError| e.to_string())?),
        Some(raw) => EventName::parse(&string_field(raw, "event")?).map_err(|e| e.to_string()),
    }
}

fn publish_payload(f: &Fields<'_>) -> Box<RawValue> {
    match f.raw.payload.filter(|p| p.get() != "null") {
        Some(p) => p.to_owned(),
        None => RawValue::from_string("{}".to_owned()).expect("an empty object is valid JSON"),
    }
}

fn recover(f: &Fields<'_>) -> Result<Option<Recover>, String> {
    match f.payload.recover.filter(|r| r.get() != "null") {
        None => Ok(None),
        Some(raw) => serde_json::from_str(raw.get())
            .map(Some)
            .map_err(|_| "`payload.recover` must be {\"epoch\": string, \"offset\": integer}".to_owned()),
    }
}

fn auth_token(f: &Fields<'_>) -> Result<String, String> {
    match f.payload.token.filter(|t| t.get() != "null") {
        Some(t) => string_field(t, "payload.token"),
        None => Err("`payload.token` is required".to_owned()),
    }
}

fn history_since(f: &Fields<'_>) -> Result<Option<u64>, String> {
    match f.payload.since.filter(|s| s.get() != "null") {
        None => Ok(None),
        Some(raw) => serde_json::from_str(raw.get())
            .map(Some)
            .map_err(|_| "`payload.since` must be a non-negative integer".to_owned()),
    }
}

fn history_limit(f: &Fields<'_>) -> Result<usize, String> {
    match f.payload.limit.filter(|l| l.get() != "null") {
        None => Ok(DEFAULT_HISTORY_LIMIT),
        Some(raw) => match serde_json::from_str::<usize>(raw.get()) {
            Ok(limit) if (1..=MAX_HISTORY_LIMIT).contains(&limit) => Ok(limit),
            _ => Err(format!(
                "`payload.limit` must be an integer from 1 to {MAX_HISTORY_LIMIT}"
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(s: &str) -> Result<ClientFrame, DecodeError> {
        decode_client_frame(s.as_bytes())
    }

    #[test]
    fn subscribe_accepts_topic_topics_and_payload_forms() {
        for frame in [
            r#"{"type":"subscribe","topic":"a","topics":["b","a"]}"#,
            r#"{"type":"subscribe","payload":{"topics":["a","b"]}}"#,
        ] {
            let f = decode(frame).expect("valid");
            let Request::Subscribe { topics, .. } = f.request else {
                panic!("not subscribe")
            };
            assert_eq!(topics, vec!["a", "b"]);
        }
    }

    #[test]
    fn errors_keep_the_request_id() {
        let err = decode(r#"{"id":"c1","type":"subscribe"}"#).expect_err("no topic");
        assert_eq!(err.id.expect("id kept").as_raw().get(), "\"c1\"");
        let err = decode(r#"{"id":7,"type":"publish","topic":"t","event":"error"}"#).expect_err("reserved");
        assert_eq!(err.id.expect("id kept").as_raw().get(), "7");
    }

    #[test]
    fn non_objects_and_bad_json_are_refused() {
        for bad in [
            "[1,2]",
            "42",
            "\"x\"",
            "{",
            "",
            "null",
            r#"{"id":"x"}"#,
            r#"{"type":5}"#,
        ] {
            assert!(decode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn id_length_limit() {
        let ok = format!(r#"{{"id":"{}","type":"ping"}}"#, "i".repeat(64));
        assert!(decode(&ok).is_ok());
        let long = format!(r#"{{"id":"{}","type":"ping"}}"#, "i".repeat(65));
        let err = decode(&long).expect_err("too long");
        assert!(err.id.is_none());
    }

    #[test]
    fn too_many_topics() {
        let topics: Vec<String> = (0..101).map(|i| format!("t{i}")).collect();
        let frame = serde_json::json!({"type":"subscribe","topics":topics}).to_string();
        assert!(decode(&frame).is_err());
    }

    #[test]
    fn publish_defaults() {
        let f = decode(r#"{"type":"publish","topic":"t"}"#).expect("valid");
        let Request::Publish { event, payload, .. } = f.request else {
            panic!()
        };
        assert_eq!(event.as_str(), "message");
        assert_eq!(payload.get(), "{}");
    }

    #[test]
    fn unknown_types_are_kept_for_handlers() {
        let f = decode(r#"{"id":"1","type":"token.create","payload":{"a":1}}"#).expect("valid");
        assert_eq!(f.request.kind(), "token.create");
    }
}
