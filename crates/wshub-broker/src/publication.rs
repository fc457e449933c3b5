//! One published event, before and after the broker placed it in its stream.
//!
//! A publication is a JSON event or a binary frame (CONTRACT §12). Either way its wire form
//! holds its offset, so it is built only once the broker has placed it, inside the topic's
//! atomic step, and at most once: [`Publication::frame`] keeps it in a `OnceLock` that every
//! subscriber, every history read and every replay then share. A binary publication lets go
//! of its upload once that frame is built.

use bytes::Bytes;
use parking_lot::Mutex;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::sync::{Arc, OnceLock};
use wshub_protocol::binary::{self, HistoryView, Upload};
use wshub_protocol::outbound::{self, EventView};
use wshub_protocol::{Epoch, EventId, EventName, Offset, Topic};

/// Who published: a user id, or `"server"` for the HTTP API.
pub type SenderId = Arc<str>;

/// What a publication carries.
#[derive(Debug, Clone)]
pub enum Content {
    /// A JSON event, sent as `{"type": event, "topic", "payload", …}`.
    Json {
        /// Event name (`type` on the wire).
        event: EventName,
        /// The publisher's payload, verbatim JSON.
        payload: Arc<RawValue>,
    },
    /// A binary frame as the publisher sent it (its metadata's `topic` is the draft's);
    /// subscribers receive it with the hub's `offset`, `epoch`, `id`, `timestamp` and
    /// `sender_id` set in its metadata.
    ///
    /// Whoever makes the draft has checked `delivered_len_bound` against its size limit
    /// (below 4 GiB), so the delivered frame's metadata fits its 32-bit length.
    Binary(Upload),
}

/// A publication as the hub hands it to the broker: everything but its stream position.
#[derive(Debug, Clone)]
pub struct PublicationDraft {
    /// Target topic.
    pub topic: Topic,
    /// The event or frame.
    pub content: Content,
    /// The hub's unique `evt_…` id.
    pub id: EventId,
    /// When the hub accepted it, ms since the Unix epoch.
    pub timestamp: u64,
    /// The publisher.
    pub sender_id: SenderId,
}

/// A publication placed in its topic's stream. Shared by history and every
/// subscriber's queue; each of its wire forms is encoded at most once.
#[derive(Debug)]
pub struct Publication {
    topic: Topic,
    id: EventId,
    timestamp: u64,
    sender_id: SenderId,
    /// Its offset in the topic's stream.
    pub offset: Offset,
    /// The stream's epoch.
    pub epoch: Epoch,
    body: Body,
    /// The event as `/ws` subscribers receive it.
    frame: OnceLock<Bytes>,
}

/// What a placed publication keeps besides its wire form.
#[derive(Debug)]
enum Body {
    Json {
        event: EventName,
        payload: Arc<RawValue>,
        /// The payload alone, for raw stream routes.
        payload_frame: OnceLock<Bytes>,
    },
    Binary {
        /// The upload until the frame is built from it, then `None`: from then on the
        /// publication holds only what it sends (the upload may be a slice of a connection's
        /// read buffer, which it would keep alive).
        upload: Mutex<Option<Upload>>,
        /// An upper bound of the delivered frame's length, for the history byte budget.
        frame_len_bound: usize,
    },
}

/// Room for the members the hub adds to a binary frame's metadata, beside the sender id:
/// keys, punctuation, two 20-digit numbers, the epoch and the event id.
const HUB_METADATA_ROOM: usize = 192;

impl Publication {
    /// Places a draft at a stream position.
    pub fn new(draft: PublicationDraft, offset: Offset, epoch: Epoch) -> Self {
        let PublicationDraft {
            topic,
            content,
            id,
            timestamp,
            sender_id,
        } = draft;
        let body = match content {
            Content::Json { event, payload } => Body::Json {
                event,
                payload,
                payload_frame: OnceLock::new(),
            },
            Content::Binary(upload) => Body::Binary {
                frame_len_bound: upload.frame_len() + sender_id.len() + HUB_METADATA_ROOM,
                upload: Mutex::new(Some(upload)),
            },
        };
        Publication {
            topic,
            id,
            timestamp,
            sender_id,
            offset,
            epoch,
            body,
            frame: OnceLock::new(),
        }
    }

    /// The topic it belongs to.
    pub fn topic(&self) -> &Topic {
        &self.topic
    }

    /// Whether it is a binary frame (sent as a binary WebSocket message) rather than a JSON
    /// event (a text message).
    pub fn is_binary(&self) -> bool {
        matches!(self.body, Body::Binary { .. })
    }

    /// The event as `/ws` subscribers receive it, built on first use and shared afterwards:
    /// the JSON envelope (a text frame), or the publisher's binary frame with the hub's
    /// metadata added (a binary frame; the body is copied into it once, and the upload is
    /// let go).
    pub fn frame(&self) -> &Bytes {
        self.frame.get_or_init(|| match &self.body {
            Body::Json { event, payload, .. } => Bytes::from(outbound::event(&EventView {
                kind: event.as_str(),
                topic: self.topic.as_str(),
                payload,
                id: self.id.as_str(),
                offset: self.offset.0,
                epoch: self.epoch.as_str(),
                timestamp: self.timestamp,
                sender_id: &self.sender_id,
            })),
            Body::Binary { upload, .. } => {
                let upload = upload
                    .lock()
                    .take()
                    .expect("only this initialiser takes the upload, and it runs once");
                let delivery = binary::Delivery {
                    offset: self.offset.0,
                    epoch: self.epoch.as_str(),
                    id: self.id.as_str(),
                    timestamp: self.timestamp,
                    sender_id: &self.sender_id,
                };
                let frame = binary::extend_metadata(&upload.frame(), &delivery)
                    .expect("the draft's maker checked the delivered frame against a limit below 4 GiB");
                Bytes::from(frame)
            }
        })
    }

    /// What a raw stream route sends: for a JSON event its payload alone (the publisher's
    /// bytes exactly, shared with the draft rather than copied, made on first use); for a
    /// binary frame the same frame as [`frame`](Self::frame).
    pub fn payload_frame(&self) -> &Bytes {
        match &self.body {
            Body::Json {
                payload, payload_frame, ..
            } => payload_frame.get_or_init(|| Bytes::from_owner(RawPayload(Arc::clone(payload)))),
            Body::Binary { .. } => self.frame(),
        }
    }

    /// The event as a JSON `history` reply lists it: the envelope itself, or for a binary
    /// frame `{"type":"binary","topic","offset","epoch","timestamp","sender_id","frame_b64"}`.
    /// The binary form is written per read, not kept: it is a third larger than the frame.
    pub fn history_entry(&self) -> Cow<'_, [u8]> {
        match &self.body {
            Body::Json { .. } => Cow::Borrowed(self.frame()),
            Body::Binary { .. } => Cow::Owned(binary::history_entry(&HistoryView {
                topic: self.topic.as_str(),
                offset: self.offset.0,
                epoch: self.epoch.as_str(),
                timestamp: self.timestamp,
                sender_id: &self.sender_id,
                frame: self.frame(),
            })),
        }
    }

    /// Approximate memory held, for the history byte budget: a JSON event's payload and
    /// envelope; a binary publication's frame (which replaces its upload).
    pub fn approx_size(&self) -> usize {
        let body = match &self.body {
            Body::Json { event, payload, .. } => payload.get().len() * 2 + event.as_str().len(),
            Body::Binary { frame_len_bound, .. } => *frame_len_bound,
        };
        std::mem::size_of::<Self>() + body + self.topic.as_str().len() + self.id.as_str().len() + 64
    }
}

/// A payload viewed as bytes, so a [`Bytes`] can share it without a copy.
struct RawPayload(Arc<RawValue>);

impl AsRef<[u8]> for RawPayload {
    fn as_ref(&self) -> &[u8] {
        self.0.get().as_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_frame_is_the_payload_verbatim_and_made_once() {
        let payload = r#"{ "b": 1,  "a": [true, null] }"#;
        let draft = PublicationDraft {
            topic: Topic::parse("t").expect("topic"),
            content: Content::Json {
                event: EventName::parse("e").expect("event"),
                payload: Arc::from(RawValue::from_string(payload.to_owned()).expect("json")),
            },
            id: EventId::new("evt_1".to_owned()),
            timestamp: 1,
            sender_id: Arc::from("server"),
        };
        let publication = Publication::new(draft, Offset(1), Epoch::new("e1".to_owned()));
        let frame = publication.payload_frame();
        assert_eq!(frame.as_ref(), payload.as_bytes(), "whitespace and key order kept");
        assert_eq!(
            frame.as_ptr(),
            publication.payload_frame().as_ptr(),
            "made once, then shared"
        );
        let Body::Json { payload, .. } = &publication.body else {
            unreachable!("a JSON draft")
        };
        assert_eq!(frame.as_ptr(), payload.get().as_ptr(), "not copied");
    }

    #[test]
    fn a_binary_frame_is_built_once_with_its_stream_position() {
        let metadata = br#"{"topic":"cams/1","id":"b1","format":"png","sender_id":"forged"}"#;
        let upload = Upload::from_parts(
            binary::BinaryKind::Image,
            Bytes::from_static(metadata),
            Bytes::from_static(b"\x89PNG"),
        )
        .expect("valid");
        let draft = PublicationDraft {
            topic: upload.topic().clone(),
            content: Content::Binary(upload),
            id: EventId::new("evt_7".to_owned()),
            timestamp: 42,
            sender_id: Arc::from("u1"),
        };
        let publication = Publication::new(draft, Offset(3), Epoch::new("e1".to_owned()));
        assert!(publication.is_binary());
        let size = publication.approx_size();
        let frame = publication.frame();
        let Body::Binary { upload, .. } = &publication.body else {
            unreachable!("a binary draft")
        };
        assert!(upload.lock().is_none(), "the upload is let go once the frame is built");
        assert_eq!(
            publication.approx_size(),
            size,
            "the budget sees the same size before and after"
        );
        assert!(size >= frame.len(), "and it covers the frame");
        assert_eq!(frame.as_ptr(), publication.frame().as_ptr(), "built once, then shared");
        assert_eq!(
            frame.as_ptr(),
            publication.payload_frame().as_ptr(),
            "raw streams share it"
        );
        let delivered = binary::decode(frame, usize::MAX).expect("a valid frame");
        assert_eq!(delivered.body(), b"\x89PNG");
        assert_eq!(
            delivered.metadata().get(),
            r#"{"topic":"cams/1","format":"png","offset":3,"epoch":"e1","id":"evt_7","timestamp":42,"sender_id":"u1"}"#
        );
        let entry: serde_json::Value = serde_json::from_slice(&publication.history_entry()).expect("JSON");
        assert_eq!(entry["type"], "binary");
        assert_eq!(entry["offset"], 3);
        assert_eq!(entry["sender_id"], "u1");
        assert!(
            publication.approx_size() > 2 * frame.len() - 200,
            "both forms are counted"
        );
    }
}
