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
/// subscriber's queue; its wire form is encoded at most once.
#[derive(Debug)]
pub struct Publication {
    /// What was published.
    pub draft: PublicationDraft,
    /// Its offset in the topic's stream.
    pub offset: Offset,
    /// The stream's epoch.
    pub epoch: Epoch,
    frame: OnceLock<Bytes>,
}

impl Publication {
    /// Places a draft at a stream position.
    pub fn new(draft: PublicationDraft, offset: Offset, epoch: Epoch) -> Self {
        Publication {
            draft,
            offset,
            epoch,
            frame: OnceLock::new(),
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
