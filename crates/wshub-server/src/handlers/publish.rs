//! Events published by a handler: the broadcast half of a request (`token.create` answers its
//! caller and every subscriber of `tokens` receives `token.created`).
//!
//! The same step as `POST /api/publish`: the topic needs a matching topic rule (no role check,
//! the handler is trusted), the event name follows the event-name rules, the event must fit
//! `max_message_size`, and `sender_id` is `"server"`. Publishing is allowed while the hub
//! drains, since it finishes work that is already in flight.

use super::{HandlerError, HandlerRequest, is_json_object};
use serde::Serialize;
use std::sync::Arc;
use thiserror::Error;
use wshub_broker::{BrokerError, StreamPosition};
use wshub_protocol::{EventName, Topic, TopicError, outbound};

/// Why a handler's event was not published.
#[derive(Debug, Error)]
pub enum PublishError {
    /// The topic name is not valid.
    #[error("invalid topic: {0}")]
    Topic(#[source] TopicError),
    /// No topic rule matches the topic.
    #[error("no topic rule matches {0}")]
    UnknownChannel(String),
    /// The event name is not valid.
    #[error("invalid event name: {0}")]
    Event(#[source] TopicError),
    /// The payload does not serialise to a JSON object.
    #[error("the payload is not a JSON object")]
    NotAnObject,
    /// The event would exceed `websocket.max_message_size`.
    #[error("the event would exceed max_message_size")]
    TooLarge,
    /// The broker could not take it.
    #[error(transparent)]
    Broker(#[from] BrokerError),
}

impl From<PublishError> for HandlerError {
    /// A broker that is down makes the call `unavailable`; anything else is the handler's bug.
    fn from(error: PublishError) -> Self {
        match error {
            PublishError::Broker(error) => HandlerError::Unavailable(error.to_string()),
            other => HandlerError::Failed(other.to_string()),
        }
    }
}

impl HandlerRequest {
    /// Publishes `event` with `payload` (a JSON object) on `topic`, as `POST /api/publish`
    /// does: every subscriber of the topic receives it, with `sender_id` `"server"`. Returns
    /// the event's position in the topic's stream.
    pub async fn publish<P: Serialize + ?Sized>(
        &self,
        topic: &str,
        event: &str,
        payload: &P,
    ) -> Result<StreamPosition, PublishError> {
        let topic = Topic::parse(topic).map_err(PublishError::Topic)?;
        if self.node.rules.rule_for(topic.as_str()).is_none() {
            return Err(PublishError::UnknownChannel(topic.to_string()));
        }
        let event = EventName::parse(event).map_err(PublishError::Event)?;
        let payload = serde_json::value::to_raw_value(payload).map_err(|_| PublishError::NotAnObject)?;
        if !is_json_object(payload.get()) {
            return Err(PublishError::NotAnObject);
        }
        let max = self.node.config.websocket.max_message_size.as_usize();
        if outbound::event_size_bound(topic.as_str(), event.as_str(), payload.get(), "server") > max {
            return Err(PublishError::TooLarge);
        }
        Ok(self.node.publish_as_server(topic, event, Arc::from(payload)).await?)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::auth::{Authenticator, Identity};
    use crate::config::Config;
    use crate::fanout::{FanOut, Registry};
    use crate::handlers::HandlerRoutes;
    use crate::node::Node;
    use crate::permissions::TopicRules;
    use serde_json::json;
    use serde_json::value::RawValue;
    use wshub_broker::{Broker, HistoryQuery, MemoryBroker};
    use wshub_protocol::ConnectionId;

    /// A node with the default config and the memory broker, serving nothing.
    pub(crate) fn node() -> Arc<Node> {
        let config = Config::default();
        let rules = TopicRules::new(&config).expect("default rules");
        let auth = Authenticator::new(&config.auth.jwt).expect("no keys");
        let metrics = crate::metrics::Metrics::new(&config, []);
        let registry = Arc::new(Registry::default());
        let delivery = Arc::new(FanOut::new(Arc::clone(&registry), metrics.broadcast_histogram()));
        let broker: Arc<dyn Broker> = Arc::new(MemoryBroker::new(
            delivery,
            config.history.max_bytes.as_usize(),
            rules.longest_ttl(),
        ));
        Arc::new(Node::new(
            Arc::new(config),
            rules,
            HandlerRoutes::default(),
            auth,
            broker,
            registry,
            metrics,
        ))
    }

    fn request(node: &Arc<Node>) -> HandlerRequest {
        let payload: Arc<RawValue> = Arc::from(RawValue::from_string("{}".to_owned()).expect("json"));
        HandlerRequest::new(
            Arc::clone(node),
            "token.create",
            payload,
            ConnectionId::new("c1"),
            &Identity::anonymous(),
            None,
        )
    }

    #[tokio::test]
    async fn a_handler_publishes_as_the_server() {
        let node = node();
        let request = request(&node);
        let position = request
            .publish("tokens", "token.created", &json!({"id": 1}))
            .await
            .expect("published");
        assert_eq!(position.offset.0, 1);
        let topic = Topic::parse("tokens").expect("topic");
        let page = node
            .broker
            .history(&topic, HistoryQuery { since: None, limit: 10 })
            .await
            .expect("history");
        let event: serde_json::Value = serde_json::from_slice(page.publications[0].frame()).expect("json");
        assert_eq!(
            (&event["type"], &event["sender_id"], &event["payload"]),
            (&json!("token.created"), &json!("server"), &json!({"id": 1}))
        );
    }

    #[tokio::test]
    async fn bad_events_are_refused() {
        let node = node();
        let request = request(&node);
        let object = json!({});
        assert!(matches!(
            request.publish("a b", "e", &object).await,
            Err(PublishError::Topic(_))
        ));
        assert!(matches!(
            request.publish("tokens", "error", &object).await,
            Err(PublishError::Event(_))
        ));
        assert!(matches!(
            request.publish("tokens", "e", &[1]).await,
            Err(PublishError::NotAnObject)
        ));
        let huge = json!({"x": "y".repeat(2 << 20)});
        assert!(matches!(
            request.publish("tokens", "e", &huge).await,
            Err(PublishError::TooLarge)
        ));
        let error: HandlerError = PublishError::NotAnObject.into();
        assert_eq!(error.code(), wshub_protocol::ErrorCode::HandlerFailed);
    }
}
