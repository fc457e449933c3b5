//! What the hub makes of a decoded publish: [`extend_metadata`] builds the frame every
//! subscriber receives, and [`history_entry`] is that frame's JSON form in a `history` reply.

use super::frame::{BinaryFrame, ByteCount, metadata_len_u32, write_header};
use super::{BinaryError, HEADER_LEN};
use base64::display::Base64Display;
use base64::engine::general_purpose::STANDARD;
use serde::ser::{Serialize, SerializeStruct, Serializer};
use std::io::{self, Write};

/// What the hub adds to a binary publication's metadata (CONTRACT §12), replacing any
/// field of the same name the publisher sent.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    /// Position in the topic's stream.
    pub offset: u64,
    /// The stream's epoch.
    pub epoch: &'a str,
    /// The hub's `evt_…` id.
    pub id: &'a str,
    /// When the hub accepted the publication (ms since the Unix epoch).
    pub timestamp: u64,
    /// The publishing user id, or `"server"`.
    pub sender_id: &'a str,
}

/// Room [`BinaryFrame::delivered_len_bound`] leaves for each of the epoch and the event id,
/// which the hub makes short and ASCII.
const HUB_ID_ROOM: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

impl Delivery<'_> {
    /// Writes the added members, in [`HUB_KEYS`](super::HUB_KEYS) order, without braces.
    fn write_members(&self, out: &mut impl Write) -> io::Result<()> {
        write!(out, "\"offset\":{},\"epoch\":", self.offset)?;
        serde_json::to_writer(&mut *out, self.epoch)?;
        out.write_all(b",\"id\":")?;
        serde_json::to_writer(&mut *out, self.id)?;
        write!(out, ",\"timestamp\":{},\"sender_id\":", self.timestamp)?;
        serde_json::to_writer(&mut *out, self.sender_id)?;
        Ok(())
    }

    fn members_len(&self) -> usize {
        let mut count = ByteCount::default();
        self.write_members(&mut count)
            .expect("strings always serialise and counting cannot fail");
        count.0
    }
}

impl BinaryFrame<'_> {
    /// The exact length of the frame [`extend_metadata`] builds with `delivery`.
    pub fn delivered_len(&self, delivery: &Delivery<'_>) -> usize {
        HEADER_LEN + self.delivered_metadata_len(delivery) + self.body().len()
    }

    /// An upper bound of [`delivered_len`](Self::delivered_len) known before the broker has
    /// placed the publication (so before its offset and epoch exist), for checking the
    /// delivered frame against the size limit up front. It assumes an epoch and an event id
    /// of at most 64 bytes each, as the hub makes them.
    pub fn delivered_len_bound(&self, sender_id: &str) -> usize {
        self.delivered_len(&Delivery {
            offset: u64::MAX,
            epoch: HUB_ID_ROOM,
            id: HUB_ID_ROOM,
            timestamp: u64::MAX,
            sender_id,
        })
    }

    /// `{`, the publisher's members but the hub's, the hub's members, `}`.
    fn delivered_metadata_len(&self, delivery: &Delivery<'_>) -> usize {
        let kept: usize = self
            .members()
            .iter()
            .filter(|m| !m.hub)
            .map(|m| m.key.get().len() + 1 + m.value.get().len() + 1)
            .sum();
        1 + kept + delivery.members_len() + 1
    }
}

/// Builds the frame subscribers receive for a publication: the publisher's frame with
/// `offset`, `epoch`, `id`, `timestamp` and `sender_id` set in its metadata (any the
/// publisher sent, under any spelling, are dropped; the other members keep their order and
/// bytes, written compactly).
///
/// The result is one allocation of exactly [`BinaryFrame::delivered_len`] bytes into which
/// the body is copied once; the hub shares it with every subscriber (`Bytes::from` takes it
/// without copying). Fails only if the metadata outgrows the header's 32-bit length.
pub fn extend_metadata(frame: &BinaryFrame<'_>, delivery: &Delivery<'_>) -> Result<Vec<u8>, BinaryError> {
    let metadata_len = frame.delivered_metadata_len(delivery);
    // Checked before allocating, so a refused frame costs nothing.
    let length_field = metadata_len_u32(metadata_len)?;
    let body = frame.body();
    let total = HEADER_LEN + metadata_len + body.len();
    let mut out = Vec::with_capacity(total);
    write_header(&mut out, frame.kind(), length_field);
    out.push(b'{');
    for member in frame.members().iter().filter(|m| !m.hub) {
        out.extend_from_slice(member.key.get().as_bytes());
        out.push(b':');
        out.extend_from_slice(member.value.get().as_bytes());
        out.push(b',');
    }
    delivery
        .write_members(&mut out)
        .expect("strings always serialise and a Vec always takes bytes");
    out.push(b'}');
    out.extend_from_slice(body);
    debug_assert_eq!(out.len(), total, "delivered_len must match what is written");
    Ok(out)
}

/// A binary event as a `history` reply lists it (CONTRACT §12). It serialises to
/// `{"type":"binary","topic","offset","epoch","timestamp","sender_id","frame_b64"}`.
#[derive(Debug, Clone, Copy)]
pub struct HistoryView<'a> {
    /// The topic it was published on.
    pub topic: &'a str,
    /// Position in the topic's stream.
    pub offset: u64,
    /// The stream's epoch.
    pub epoch: &'a str,
    /// When the hub accepted it (ms since the Unix epoch).
    pub timestamp: u64,
    /// The publishing user id, or `"server"`.
    pub sender_id: &'a str,
    /// The delivered frame (what [`extend_metadata`] built), written as `frame_b64`:
    /// standard base64 alphabet, with padding.
    pub frame: &'a [u8],
}

impl Serialize for HistoryView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("HistoryView", 7)?;
        s.serialize_field("type", "binary")?;
        s.serialize_field("topic", self.topic)?;
        s.serialize_field("offset", &self.offset)?;
        s.serialize_field("epoch", self.epoch)?;
        s.serialize_field("timestamp", &self.timestamp)?;
        s.serialize_field("sender_id", self.sender_id)?;
        s.serialize_field("frame_b64", &Base64(self.frame))?;
        s.end()
    }
}

/// Bytes serialised as a base64 string, streamed without an intermediate `String`.
struct Base64<'a>(&'a [u8]);

impl Serialize for Base64<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&Base64Display::new(self.0, &STANDARD))
    }
}

/// Encodes a binary event's `history` entry as JSON (UTF-8), to embed in the reply's
/// `messages` the way JSON events are.
pub fn history_entry(view: &HistoryView<'_>) -> Vec<u8> {
    const KEYS_AND_NUMBERS: usize = 128;
    let capacity = view.frame.len().div_ceil(3) * 4
        + view.topic.len()
        + view.epoch.len()
        + view.sender_id.len()
        + KEYS_AND_NUMBERS;
    let mut out = Vec::with_capacity(capacity);
    serde_json::to_writer(&mut out, view).expect("a history view holds only strings and numbers");
    out
}

#[cfg(test)]
mod tests {
    use super::super::{BinaryKind, HUB_KEYS, decode, encode};
    use super::*;
    use base64::Engine;
    use serde_json::value::RawValue;
    use serde_json::{Value, json};

    const MAX: usize = 1 << 20;

    const DELIVERY: Delivery<'static> = Delivery {
        offset: 7,
        epoch: "6418f65f1",
        id: "evt_c2e6923810",
        timestamp: 1_795_316_896_406,
        sender_id: "server",
    };

    fn publish(metadata: &str, body: &[u8]) -> Vec<u8> {
        let metadata = RawValue::from_string(metadata.to_owned()).expect("valid JSON");
        encode(BinaryKind::Image, &metadata, body).expect("encodes")
    }

    fn metadata_of(frame: &[u8]) -> Value {
        let frame = decode(frame, MAX).expect("the delivered frame decodes");
        serde_json::from_str(frame.metadata().get()).expect("JSON")
    }

    #[test]
    fn the_hub_fields_replace_the_publishers_and_come_last() {
        let bytes = publish(
            r#"{"topic":"cams/1","id":"b1","format":"png","offset":99,"width":1,"height":1}"#,
            b"\x89PNG",
        );
        let frame = decode(&bytes, MAX).expect("valid publish");
        let delivered = extend_metadata(&frame, &DELIVERY).expect("fits");
        assert_eq!(delivered.len(), frame.delivered_len(&DELIVERY));
        assert_eq!(
            delivered.len(),
            delivered.capacity(),
            "one allocation of the exact size"
        );
        let text = std::str::from_utf8(&delivered[HEADER_LEN..delivered.len() - 4]).expect("UTF-8");
        assert_eq!(
            text,
            r#"{"topic":"cams/1","format":"png","width":1,"height":1,"offset":7,"epoch":"6418f65f1","id":"evt_c2e6923810","timestamp":1795316896406,"sender_id":"server"}"#
        );
        let back = decode(&delivered, MAX).expect("the delivered frame decodes");
        assert_eq!(back.kind(), BinaryKind::Image);
        assert_eq!(back.body(), b"\x89PNG");
        assert_eq!(back.topic().as_str(), "cams/1");
        assert_eq!(back.request_id().expect("id").as_raw().get(), r#""evt_c2e6923810""#);
    }

    #[test]
    fn forged_hub_fields_are_dropped_however_spelled() {
        let bytes = publish(
            r#"{"topic":"t","\u006fffset":1,"sender_id":"admin","sender_\u0069d":"root","timestamp":0,"epoch":"x","x":{"offset":3}}"#,
            b"",
        );
        let frame = decode(&bytes, MAX).expect("valid publish");
        let delivered = extend_metadata(&frame, &DELIVERY).expect("fits");
        let text = std::str::from_utf8(&delivered[HEADER_LEN..]).expect("UTF-8");
        assert!(
            !text.contains("admin") && !text.contains("root") && !text.contains("\\u"),
            "{text}"
        );
        let metadata = metadata_of(&delivered);
        assert_eq!(metadata["sender_id"], "server");
        assert_eq!(metadata["offset"], 7);
        assert_eq!(
            metadata["x"],
            json!({"offset": 3}),
            "nested members are the publisher's"
        );
    }

    #[test]
    fn hub_fields_are_written_in_hub_keys_order() {
        let frame_bytes = publish(r#"{"topic":"t"}"#, b"");
        let frame = decode(&frame_bytes, MAX).expect("valid");
        let delivered = extend_metadata(&frame, &DELIVERY).expect("fits");
        let back = decode(&delivered, MAX).expect("decodes");
        let keys: Vec<&str> = back.members().iter().skip(1).map(|m| m.key.get()).collect();
        let expected: Vec<String> = HUB_KEYS.iter().map(|k| format!("\"{k}\"")).collect();
        assert_eq!(keys, expected);
    }

    #[test]
    fn delivering_twice_gives_the_same_frame() {
        let bytes = publish(r#"{ "topic" : "t" , "a" : [1, 2] }"#, b"body");
        let frame = decode(&bytes, MAX).expect("valid");
        let once = extend_metadata(&frame, &DELIVERY).expect("fits");
        let again = extend_metadata(&decode(&once, MAX).expect("valid"), &DELIVERY).expect("fits");
        assert_eq!(once, again);
    }

    #[test]
    fn awkward_strings_are_escaped() {
        let frame_bytes = publish(r#"{"topic":"t"}"#, b"x");
        let frame = decode(&frame_bytes, MAX).expect("valid");
        let delivery = Delivery {
            sender_id: "a\"b\\c\n\u{1}é✓",
            epoch: "e\"",
            ..DELIVERY
        };
        let delivered = extend_metadata(&frame, &delivery).expect("fits");
        assert_eq!(delivered.len(), frame.delivered_len(&delivery));
        let metadata = metadata_of(&delivered);
        assert_eq!(metadata["sender_id"], "a\"b\\c\n\u{1}é✓");
        assert_eq!(metadata["epoch"], "e\"");
    }

    #[test]
    fn the_bound_covers_the_delivered_frame() {
        let frame_bytes = publish(r#"{"topic":"a/b/c","format":"jpeg","offset":1}"#, &[0; 100]);
        let frame = decode(&frame_bytes, MAX).expect("valid");
        let delivery = Delivery {
            offset: u64::MAX,
            epoch: "0123456789abcdef",
            id: "evt_0123456789abcdef0123",
            timestamp: u64::MAX,
            sender_id: "user-42",
        };
        assert!(frame.delivered_len(&delivery) <= frame.delivered_len_bound("user-42"));
    }

    #[test]
    fn history_entries_carry_the_delivered_frame_in_base64() {
        let frame_bytes = publish(r#"{"topic":"cams/1"}"#, b"\xff\xd8\xff");
        let frame = decode(&frame_bytes, MAX).expect("valid");
        let delivered = extend_metadata(&frame, &DELIVERY).expect("fits");
        let entry = history_entry(&HistoryView {
            topic: "cams/1",
            offset: DELIVERY.offset,
            epoch: DELIVERY.epoch,
            timestamp: DELIVERY.timestamp,
            sender_id: DELIVERY.sender_id,
            frame: &delivered,
        });
        let entry: Value = serde_json::from_slice(&entry).expect("JSON");
        let b64 = entry["frame_b64"].as_str().expect("string").to_owned();
        assert_eq!(
            entry,
            json!({"type":"binary","topic":"cams/1","offset":7,"epoch":"6418f65f1",
                   "timestamp":1_795_316_896_406_u64,"sender_id":"server","frame_b64": b64})
        );
        assert_eq!(STANDARD.decode(&b64).expect("standard base64"), delivered);
        assert_eq!(b64.len() % 4, 0, "padded");
    }
}
