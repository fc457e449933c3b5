//! One binary frame: [`decode`] checks and borrows it, [`encode`] and [`encode_map`] write it.

use super::{BinaryError, BinaryKind, HEADER_LEN, HUB_KEYS, VERSION};
use crate::ids::RequestId;
use crate::topic::Topic;
use serde::de::{Deserializer as _, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::{fmt, io};

/// A checked binary frame that borrows its metadata and body from the received bytes.
///
/// Only [`decode`] makes one, so holding a `BinaryFrame` means: a known kind, metadata that
/// is a JSON object with a valid `topic`, at most one `topic` and `id`, and a valid `id` if
/// there is one.
#[derive(Debug, Clone)]
pub struct BinaryFrame<'a> {
    kind: BinaryKind,
    /// The metadata object exactly as sent (without surrounding whitespace).
    metadata: &'a RawValue,
    body: &'a [u8],
    /// The metadata's members in order, kept so the delivered frame can be written without
    /// parsing the metadata again.
    members: Vec<Member<'a>>,
    topic: Topic,
    request_id: Option<RequestId>,
}

/// One `"key": value` of a metadata object, both as sent.
#[derive(Debug, Clone, Copy)]
pub(super) struct Member<'a> {
    /// The key's JSON string, quotes and escapes included.
    pub(super) key: &'a RawValue,
    /// The value's JSON text.
    pub(super) value: &'a RawValue,
    /// Whether the key (unescaped) is one of [`HUB_KEYS`].
    pub(super) hub: bool,
}

impl<'a> BinaryFrame<'a> {
    /// What the body holds.
    pub fn kind(&self) -> BinaryKind {
        self.kind
    }

    /// The metadata object as sent, ready to embed or parse.
    pub fn metadata(&self) -> &'a RawValue {
        self.metadata
    }

    /// The bytes after the metadata.
    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// The metadata's `topic`, validated.
    pub fn topic(&self) -> &Topic {
        &self.topic
    }

    /// The metadata's `id`, if any. On a client's publish it is the request id the
    /// `published` reply echoes; on a delivered frame it is the hub's `evt_…` id.
    pub fn request_id(&self) -> Option<&RequestId> {
        self.request_id.as_ref()
    }

    /// The raw JSON value of a metadata key (its last occurrence, as most JSON parsers read
    /// it), or `None`. On a delivered frame this reads the hub's `offset`, `epoch`, … .
    pub fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.members.iter().rev().find(|m| key_is(m.key, key)).map(|m| m.value)
    }

    pub(super) fn members(&self) -> &[Member<'a>] {
        &self.members
    }
}

/// Decodes and checks one binary frame of at most `max_size` bytes.
///
/// The checks run in this order, each with its own [`BinaryError`]: the size; the 6-byte
/// header; the version; the kind; the metadata length against the bytes present; the
/// metadata is UTF-8 JSON; it is an object; it holds `topic` and `id` at most once; `topic`
/// is a valid topic name; `id`, if present, is a valid request id. Never panics, and nothing
/// is allocated from the declared metadata length: it is only compared with what arrived.
pub fn decode(frame: &[u8], max_size: usize) -> Result<BinaryFrame<'_>, BinaryError> {
    if frame.len() > max_size {
        return Err(BinaryError::TooLarge {
            size: frame.len(),
            max: max_size,
        });
    }
    let Some((&[version, kind, l0, l1, l2, l3], rest)) = frame.split_first_chunk::<HEADER_LEN>() else {
        return Err(BinaryError::TruncatedHeader { len: frame.len() });
    };
    if version != VERSION {
        return Err(BinaryError::UnsupportedVersion(version));
    }
    let kind = BinaryKind::try_from(kind)?;
    let declared = u32::from_be_bytes([l0, l1, l2, l3]);
    let Some((metadata, body)) = usize::try_from(declared)
        .ok()
        .and_then(|len| rest.split_at_checked(len))
    else {
        return Err(BinaryError::MetadataPastEnd {
            declared,
            available: rest.len(),
        });
    };
    BinaryFrame::from_parts(kind, metadata, body)
}

impl<'a> BinaryFrame<'a> {
    /// Checks the parts of a frame that did not arrive as one: metadata built by the hub (an
    /// HTTP upload's query) and a body received apart. The checks are [`decode`]'s after the
    /// header (UTF-8 JSON object, `topic` and `id` at most once, a valid `topic`, a valid `id`),
    /// plus that the metadata fits the header's 32-bit length.
    pub fn from_parts(kind: BinaryKind, metadata: &'a [u8], body: &'a [u8]) -> Result<Self, BinaryError> {
        metadata_len_u32(metadata.len())?;
        let text = std::str::from_utf8(metadata).map_err(BinaryError::MetadataNotUtf8)?;
        let metadata: &RawValue = serde_json::from_str(text).map_err(BinaryError::MetadataNotJson)?;
        let members = members(metadata)?;
        let topic = match unique(&members, "topic")?.map(RawValue::get) {
            None | Some("null") => return Err(BinaryError::MissingTopic),
            Some(token) if !token.starts_with('"') => return Err(BinaryError::TopicNotString),
            Some(token) => json_string(token).map_err(BinaryError::MetadataNotJson)?,
        };
        let topic = Topic::parse(&topic).map_err(BinaryError::InvalidTopic)?;
        let request_id = match unique(&members, "id")? {
            None => None,
            Some(raw) => RequestId::from_json(raw).map_err(BinaryError::InvalidId)?,
        };
        Ok(BinaryFrame {
            kind,
            metadata,
            body,
            members,
            topic,
            request_id,
        })
    }
}

/// Encodes a frame from metadata JSON kept as text (written verbatim) and a body.
///
/// The metadata is not checked: the hub refuses a frame whose metadata is not an object
/// with a valid `topic` (see [`decode`]).
pub fn encode(kind: BinaryKind, metadata: &RawValue, body: &[u8]) -> Result<Vec<u8>, BinaryError> {
    let metadata = metadata.get().as_bytes();
    let length_field = metadata_len_u32(metadata.len())?;
    let mut out = Vec::with_capacity(HEADER_LEN + metadata.len() + body.len());
    write_header(&mut out, kind, length_field);
    out.extend_from_slice(metadata);
    out.extend_from_slice(body);
    Ok(out)
}

/// Encodes a frame from a metadata map (written as compact JSON) and a body, in one
/// allocation of the frame's size. Like [`encode`], the metadata is not checked.
pub fn encode_map(
    kind: BinaryKind,
    metadata: &serde_json::Map<String, serde_json::Value>,
    body: &[u8],
) -> Result<Vec<u8>, BinaryError> {
    let mut count = ByteCount::default();
    serde_json::to_writer(&mut count, metadata).expect("a JSON map always serialises");
    let length_field = metadata_len_u32(count.0)?;
    let mut out = Vec::with_capacity(HEADER_LEN + count.0 + body.len());
    write_header(&mut out, kind, length_field);
    serde_json::to_writer(&mut out, metadata).expect("a JSON map always serialises into a Vec");
    out.extend_from_slice(body);
    Ok(out)
}

/// The metadata length as the header's 32-bit field, or [`BinaryError::MetadataTooLong`].
pub(super) fn metadata_len_u32(len: usize) -> Result<u32, BinaryError> {
    u32::try_from(len).map_err(|_| BinaryError::MetadataTooLong { len })
}

/// Writes the 6-byte header.
pub(super) fn write_header(out: &mut Vec<u8>, kind: BinaryKind, metadata_len: u32) {
    out.push(VERSION);
    out.push(kind.as_u8());
    out.extend_from_slice(&metadata_len.to_be_bytes());
}

/// An `io::Write` that only counts, to size a buffer before writing into it.
#[derive(Default)]
pub(super) struct ByteCount(pub(super) usize);

impl io::Write for ByteCount {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Splits a metadata value into its members, or says it is not an object.
fn members(metadata: &RawValue) -> Result<Vec<Member<'_>>, BinaryError> {
    if !metadata.get().starts_with('{') {
        return Err(BinaryError::MetadataNotObject);
    }
    serde_json::Deserializer::from_str(metadata.get())
        .deserialize_map(MembersVisitor)
        .map_err(BinaryError::MetadataNotJson)
}

struct MembersVisitor;

impl<'de> Visitor<'de> for MembersVisitor {
    type Value = Vec<Member<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members = Vec::new();
        while let Some(key) = map.next_key::<&'de RawValue>()? {
            let value = map.next_value::<&'de RawValue>()?;
            let hub = HUB_KEYS.iter().any(|name| key_is(key, name));
            members.push(Member { key, value, hub });
        }
        Ok(members)
    }
}

/// The value of the only member named `name`; refuses a second one.
fn unique<'a>(members: &[Member<'a>], name: &'static str) -> Result<Option<&'a RawValue>, BinaryError> {
    let mut found = members.iter().filter(|m| key_is(m.key, name));
    let first = found.next().map(|m| m.value);
    if found.next().is_some() {
        return Err(BinaryError::DuplicateKey(name));
    }
    Ok(first)
}

/// Whether a key token names `name` once unescaped (`"\u0074opic"` is `topic`).
fn key_is(key: &RawValue, name: &str) -> bool {
    json_string(key.get()).is_ok_and(|key| key == name)
}

/// The text of a JSON string token, borrowed unless it has escapes. Fails for anything
/// but a string, and for a string Rust cannot hold (an escaped lone surrogate).
fn json_string(token: &str) -> Result<Cow<'_, str>, serde_json::Error> {
    match token.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(inner) if !inner.contains('\\') => Ok(Cow::Borrowed(inner)),
        _ => serde_json::from_str::<String>(token).map(Cow::Owned),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::RequestIdError;
    use crate::topic::TopicError;
    use serde_json::json;

    const MAX: usize = 1 << 20;

    /// A frame with any header bytes and metadata text.
    fn raw_frame(version: u8, kind: u8, metadata: &str, body: &[u8]) -> Vec<u8> {
        let mut frame = vec![version, kind];
        frame.extend_from_slice(&u32::try_from(metadata.len()).expect("small").to_be_bytes());
        frame.extend_from_slice(metadata.as_bytes());
        frame.extend_from_slice(body);
        frame
    }

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).expect("valid JSON")
    }

    fn decode_meta(metadata: &str) -> Result<BinaryFrame<'static>, BinaryError> {
        let frame = raw_frame(1, 0, metadata, b"body").leak();
        decode(frame, MAX)
    }

    #[test]
    fn every_kind_round_trips() {
        let metadata = raw(r#"{"topic":"cams/1","format":"jpeg","width":2,"height":1}"#);
        let body = [0xff, 0xd8, 0x00, 0xff, 0xd9];
        for kind in BinaryKind::ALL {
            let bytes = encode(kind, &metadata, &body).expect("small metadata");
            assert_eq!(bytes.len(), bytes.capacity(), "one allocation of the exact size");
            let frame = decode(&bytes, MAX).expect("valid frame");
            assert_eq!(frame.kind(), kind);
            assert_eq!(frame.topic().as_str(), "cams/1");
            assert_eq!(frame.metadata().get(), metadata.get());
            assert_eq!(frame.body(), body);
            assert_eq!(frame.get("width").map(RawValue::get), Some("2"));
            assert!(frame.request_id().is_none());
        }
    }

    #[test]
    fn empty_body_round_trips() {
        let bytes = encode(BinaryKind::Raw, &raw(r#"{"topic":"t"}"#), b"").expect("encodes");
        assert_eq!(bytes.len(), HEADER_LEN + 13);
        let frame = decode(&bytes, MAX).expect("valid");
        assert!(frame.body().is_empty());
    }

    #[test]
    fn unicode_metadata_round_trips() {
        let text = r#"{"topic":"uploads","name":"résumé ✓ 📷.txt","note":"\u00e9\n"}"#;
        let bytes = encode(BinaryKind::File, &raw(text), b"hello\0world").expect("encodes");
        let frame = decode(&bytes, MAX).expect("valid");
        assert_eq!(frame.metadata().get(), text, "metadata is kept byte for byte");
        let name: String = serde_json::from_str(frame.get("name").expect("name").get()).expect("string");
        assert_eq!(name, "résumé ✓ 📷.txt");
        assert_eq!(frame.body(), b"hello\0world");
    }

    #[test]
    fn encode_map_writes_compact_json_in_one_allocation() {
        let metadata = json!({"topic":"cams/1","format":"png","id":"b1"});
        let map = metadata.as_object().expect("object");
        let bytes = encode_map(BinaryKind::Image, map, b"\x89PNG").expect("encodes");
        assert_eq!(bytes.len(), bytes.capacity());
        let frame = decode(&bytes, MAX).expect("valid");
        assert_eq!(frame.kind(), BinaryKind::Image);
        let back: serde_json::Value = serde_json::from_str(frame.metadata().get()).expect("json");
        assert_eq!(back, metadata);
        assert_eq!(frame.request_id().expect("id").as_raw().get(), r#""b1""#);
    }

    #[test]
    fn the_size_limit_counts_the_whole_frame() {
        let bytes = raw_frame(1, 0, r#"{"topic":"t"}"#, b"xyz");
        assert!(decode(&bytes, bytes.len()).is_ok());
        assert!(matches!(
            decode(&bytes, bytes.len() - 1),
            Err(BinaryError::TooLarge { size, max }) if size == bytes.len() && max == bytes.len() - 1
        ));
        // Size comes first: an oversized frame is refused before anything else is read.
        assert!(matches!(decode(&[9; 10], 5), Err(BinaryError::TooLarge { .. })));
    }

    #[test]
    fn a_truncated_header_is_refused() {
        let valid = raw_frame(1, 0, r#"{"topic":"t"}"#, b"");
        for len in 0..HEADER_LEN {
            assert!(
                matches!(decode(&valid[..len], MAX), Err(BinaryError::TruncatedHeader { len: l }) if l == len),
                "{len} bytes"
            );
        }
        assert!(matches!(decode(&[2, 9], MAX), Err(BinaryError::TruncatedHeader { .. })));
    }

    #[test]
    fn a_bad_version_is_refused_before_the_kind() {
        for version in [0, 2, 255] {
            let bytes = raw_frame(version, 9, r#"{"topic":"t"}"#, b"");
            assert!(matches!(decode(&bytes, MAX), Err(BinaryError::UnsupportedVersion(v)) if v == version));
        }
    }

    #[test]
    fn an_unknown_kind_is_refused() {
        for kind in [4, 9, 255] {
            let bytes = raw_frame(1, kind, r#"{"topic":"t"}"#, b"");
            assert!(matches!(decode(&bytes, MAX), Err(BinaryError::UnknownKind(k)) if k == kind));
        }
    }

    #[test]
    fn a_metadata_length_past_the_end_is_refused_without_allocating_it() {
        let mut bytes = raw_frame(1, 0, r#"{"topic":"t"}"#, b"");
        bytes[2..6].copy_from_slice(&14u32.to_be_bytes());
        assert!(matches!(
            decode(&bytes, MAX),
            Err(BinaryError::MetadataPastEnd {
                declared: 14,
                available: 13
            })
        ));
        bytes[2..6].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            decode(&bytes, MAX),
            Err(BinaryError::MetadataPastEnd { declared: u32::MAX, .. })
        ));
    }

    #[test]
    fn metadata_that_is_not_json_is_refused() {
        for text in ["", "{\"topic\":", "{\"topic\":\"t\"} x", "{'topic':'t'}", "nul"] {
            assert!(
                matches!(decode_meta(text), Err(BinaryError::MetadataNotJson(_))),
                "{text:?}"
            );
        }
        let mut bytes = raw_frame(1, 0, "{\"topic\":\"t\",\"x\":\"?\"}", b"");
        let at = bytes.iter().position(|&b| b == b'?').expect("placeholder");
        bytes[at] = 0xff;
        assert!(matches!(decode(&bytes, MAX), Err(BinaryError::MetadataNotUtf8(_))));
        assert!(
            decode(&bytes, MAX)
                .expect_err("not UTF-8")
                .to_string()
                .starts_with("metadata is not valid JSON")
        );
    }

    #[test]
    fn metadata_that_is_not_an_object_is_refused() {
        for text in ["[\"topic\"]", "\"topic\"", "1", "null", "true", " [1] "] {
            assert!(
                matches!(decode_meta(text), Err(BinaryError::MetadataNotObject)),
                "{text:?}"
            );
        }
    }

    #[test]
    fn a_missing_or_invalid_topic_is_refused() {
        for text in [r#"{}"#, r#"{"topic":null}"#, r#"{"Topic":"t"}"#] {
            assert!(matches!(decode_meta(text), Err(BinaryError::MissingTopic)), "{text}");
        }
        for text in [r#"{"topic":5}"#, r#"{"topic":["t"]}"#, r#"{"topic":{"a":1}}"#] {
            assert!(matches!(decode_meta(text), Err(BinaryError::TopicNotString)), "{text}");
        }
        assert!(matches!(
            decode_meta(r#"{"topic":""}"#),
            Err(BinaryError::InvalidTopic(TopicError::Empty { .. }))
        ));
        assert!(matches!(
            decode_meta(r#"{"topic":"a b"}"#),
            Err(BinaryError::InvalidTopic(TopicError::BadCharacter { .. }))
        ));
        let long = format!(r#"{{"topic":"{}"}}"#, "t".repeat(256));
        assert!(matches!(
            decode_meta(&long),
            Err(BinaryError::InvalidTopic(TopicError::TooLong { .. }))
        ));
        // An escaped lone surrogate is JSON syntax that no string can hold.
        assert!(matches!(
            decode_meta(r#"{"topic":"\ud800"}"#),
            Err(BinaryError::MetadataNotJson(_))
        ));
    }

    #[test]
    fn topic_and_id_may_not_repeat_however_spelled() {
        for text in [
            r#"{"topic":"a","topic":"b"}"#,
            r#"{"topic":"a","x":1,"\u0074opic":"b"}"#,
        ] {
            assert!(
                matches!(decode_meta(text), Err(BinaryError::DuplicateKey("topic"))),
                "{text}"
            );
        }
        assert!(matches!(
            decode_meta(r#"{"topic":"a","id":"1","id":"2"}"#),
            Err(BinaryError::DuplicateKey("id"))
        ));
        // Other keys may repeat; `get` reads the last, like most parsers.
        let frame = decode_meta(r#"{"topic":"a","w":1,"w":2}"#).expect("valid");
        assert_eq!(frame.get("w").map(RawValue::get), Some("2"));
    }

    #[test]
    fn escaped_topic_is_read_unescaped() {
        let frame = decode_meta(r#"{"\u0074opic":"cams\/1"}"#).expect("valid");
        assert_eq!(frame.topic().as_str(), "cams/1");
    }

    #[test]
    fn the_request_id_follows_the_envelope_rules() {
        let frame = decode_meta(r#"{"topic":"t","id":"b1"}"#).expect("valid");
        assert_eq!(frame.request_id().expect("id").as_raw().get(), r#""b1""#);
        let frame = decode_meta(r#"{"topic":"t","id":7}"#).expect("valid");
        assert_eq!(frame.request_id().expect("id").as_raw().get(), "7");
        assert!(
            decode_meta(r#"{"topic":"t","id":null}"#)
                .expect("valid")
                .request_id()
                .is_none()
        );
        let ok = format!(r#"{{"topic":"t","id":"{}"}}"#, "i".repeat(64));
        assert!(decode_meta(&ok).is_ok());
        let long = format!(r#"{{"topic":"t","id":"{}"}}"#, "i".repeat(65));
        assert!(matches!(
            decode_meta(&long),
            Err(BinaryError::InvalidId(RequestIdError::TooLong { max: 64 }))
        ));
        assert!(matches!(
            decode_meta(r#"{"topic":"t","id":{}}"#),
            Err(BinaryError::InvalidId(RequestIdError::NotStringOrNumber))
        ));
    }

    #[test]
    fn whitespace_around_metadata_is_accepted_and_trimmed() {
        let frame = decode_meta(" \n{ \"topic\" : \"t\" }\t").expect("valid");
        assert_eq!(frame.metadata().get(), "{ \"topic\" : \"t\" }");
        assert_eq!(frame.body(), b"body");
    }

    #[test]
    fn hub_keys_are_recognised_however_spelled() {
        let frame = decode_meta(r#"{"topic":"t","\u006fffset":9,"epoch":"e","format":"x"}"#).expect("valid");
        let hub: Vec<bool> = frame.members().iter().map(|m| m.hub).collect();
        assert_eq!(hub, [false, true, true, false]);
    }

    #[test]
    fn deep_nesting_is_read_without_recursion() {
        // serde_json skips a raw value with an explicit stack, so depth costs memory in
        // proportion to the bytes received, never the thread's stack.
        let text = format!(r#"{{"topic":"t","x":{}1{}}}"#, "[".repeat(100_000), "]".repeat(100_000));
        assert!(decode_meta(&text).is_ok());
    }
}
