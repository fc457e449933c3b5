//! A client's `publish` request: the permission and size checks, then the broker.
//!
//! On the message path this is the `publish` branch of `dispatch`; `binary` publishes a
//! binary frame through the same last step, [`Session::publish_draft`].

use super::Session;
use crate::permissions::Action;
use serde::Serialize;
use serde_json::value::RawValue;
use std::sync::Arc;
use wshub_broker::{Content, PublicationDraft};
use wshub_protocol::{ErrorCode, EventName, RequestId, now_millis, outbound};

#[derive(Serialize)]
struct PublishedPayload<'a> {
    offset: u64,
    epoch: &'a str,
}

impl Session {
    /// Publishes one event: permission, then the size of the event subscribers will
    /// receive, then the broker; answers `published`.
    pub(super) async fn publish(
        &mut self,
        id: Option<&RequestId>,
        topic: &str,
        event: EventName,
        payload: Box<RawValue>,
    ) {
        let Some(topic) = self.authorised_topic(id, topic, Action::Publish) else {
            return;
        };
        let sender = self.sender_id();
        let max = self.node.config.websocket.max_message_size.as_usize();
        if outbound::event_size_bound(topic.as_str(), event.as_str(), payload.get(), &sender) > max {
            return self.send_error(
                id,
                ErrorCode::MessageTooLarge,
                "the event would exceed max_message_size",
            );
        }
        let draft = PublicationDraft {
            topic,
            content: Content::Json {
                event,
                payload: Arc::from(payload),
            },
            id: self.node.event_id(),
            timestamp: now_millis(),
            sender_id: sender,
        };
        self.publish_draft(id, draft, true).await;
    }

    /// Who this connection publishes as: its user, or its connection id when anonymous.
    pub(super) fn sender_id(&self) -> Arc<str> {
        match &self.identity().user {
            Some(user) => Arc::from(user.as_str()),
            None => Arc::from(self.id.as_str()),
        }
    }

    /// Hands a checked draft to the broker and answers `published` (when `reply`) or the
    /// broker's failure.
    pub(super) async fn publish_draft(&self, id: Option<&RequestId>, draft: PublicationDraft, reply: bool) {
        let policy = self.node.rules.history_for(draft.topic.as_str());
        match self.node.broker.publish(draft, policy).await {
            Ok(position) if reply => self.send_reply(
                id,
                "published",
                &PublishedPayload {
                    offset: position.offset.0,
                    epoch: position.epoch.as_str(),
                },
            ),
            Ok(_) => {}
            Err(error) => self.broker_failed(id, &error),
        }
    }
}
