//! One published event, before and after the broker placed it in its stream.

use bytes::Bytes;
use serde_json::value::RawValue;
use std::sync::{Arc, OnceLock};
use wshub_protocol::outbound::{self, EventView};
use wshub_protocol::{Epoch, EventId, EventName, Offset, Topic};

/// Who published: a user id, or `"server"` for the HTTP API.
pub type SenderId = Arc<str>;

/// A publication as the hub hands it to the broker: everything but its stream position.
#[derive(Debug, Clone)]
pub struct PublicationDraft {
    /// Target topic.
    pub topic: Topic,
    /// Event name (`type` on the wire).
    pub event: EventName,
    /// The publisher's payload, verbatim JSON.
    pub payload: Arc<RawValue>,
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
    /// What was published.
    pub draft: PublicationDraft,
    /// Its offset in the topic's stream.
    pub offset: Offset,
    /// The stream's epoch.
    pub epoch: Epoch,
    frame: OnceLock<Bytes>,
    /// The payload alone, for raw stream routes.
    payload_frame: OnceLock<Bytes>,
}

impl Publication {
    /// Places a draft at a stream position.
    pub fn new(draft: PublicationDraft, offset: Offset, epoch: Epoch) -> Self {
        Publication {
            draft,
            offset,
            epoch,
            frame: OnceLock::new(),
            payload_frame: OnceLock::new(),
        }
    }

    /// The topic it belongs to.
    pub fn topic(&self) -> &Topic {
        &self.draft.topic
    }

    /// The event's text frame, encoded on first use and shared afterwards.
    pub fn frame(&self) -> &Bytes {
        self.frame.get_or_init(|| {
            let d = &self.draft;
            Bytes::from(outbound::event(&EventView {
                kind: d.event.as_str(),
                topic: d.topic.as_str(),
                payload: &d.payload,
                id: d.id.as_str(),
                offset: self.offset.0,
                epoch: self.epoch.as_str(),
                timestamp: d.timestamp,
                sender_id: &d.sender_id,
            }))
        })
    }

    /// The payload alone as a text frame (raw stream routes): the publisher's bytes exactly,
    /// shared with the draft rather than copied, made on first use.
    pub fn payload_frame(&self) -> &Bytes {
        self.payload_frame
            .get_or_init(|| Bytes::from_owner(RawPayload(Arc::clone(&self.draft.payload))))
    }

    /// Approximate memory held, for the history byte budget.
    pub fn approx_size(&self) -> usize {
        let d = &self.draft;
        std::mem::size_of::<Self>()
            + d.payload.get().len() * 2
            + d.topic.as_str().len()
            + d.event.as_str().len()
            + d.id.as_str().len()
            + 64
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
            event: EventName::parse("e").expect("event"),
            payload: Arc::from(RawValue::from_string(payload.to_owned()).expect("json")),
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
        assert_eq!(frame.as_ptr(), publication.draft.payload.get().as_ptr(), "not copied");
    }
}
