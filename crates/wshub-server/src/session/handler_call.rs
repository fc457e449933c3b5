//! Requests of the application's own types: routed to a handler, run beside the reader loop.
//!
//! On the message path this is dispatch's last branch, after the rate limit and the
//! authentication checks every request passes: the route (`unknown_type` when none matches),
//! the route's roles (`forbidden`), a free call slot (`unavailable`), then the call starts and
//! its task queues the reply (`handlers::in_flight`).

use super::Session;
use crate::handlers::in_flight::{Call, ReplyTo};
use crate::handlers::{HandlerRequest, MAX_IN_FLIGHT, empty_object};
use serde_json::value::RawValue;
use std::sync::Arc;
use wshub_protocol::{ErrorCode, RequestId};

impl Session {
    /// Starts the call of a request whose type a handler route answers; the reply follows later.
    pub(super) fn call_handler(&mut self, id: Option<&RequestId>, kind: String, payload: Option<Box<RawValue>>) {
        let Some(route) = self.node.handlers.route_for(&kind) else {
            return self.send_error(id, ErrorCode::UnknownType, &format!("no handler for type {kind:?}"));
        };
        if !route.allows(self.identity()) {
            return self.send_error(id, ErrorCode::Forbidden, &format!("your role may not call {kind:?}"));
        }
        let request = HandlerRequest::new(
            Arc::clone(&self.node),
            kind.clone(),
            Arc::from(payload.unwrap_or_else(empty_object)),
            self.id.clone(),
            self.identity(),
            self.client_id.clone(),
        );
        let call = Call {
            id: id.cloned(),
            kind,
            future: Arc::clone(&route.handler).call_boxed(request),
            timeout: route.timeout(),
        };
        let reply_to = ReplyTo {
            outbox: self.outbox.clone(),
            max_message_size: self.node.config.websocket.max_message_size.as_usize(),
            metrics: Arc::clone(&self.node.metrics),
        };
        if self.calls.start(call, reply_to).is_err() {
            self.send_error(
                id,
                ErrorCode::Unavailable,
                &format!(
                    "too many handler calls in flight on this connection (at most {MAX_IN_FLIGHT}); wait for a reply"
                ),
            );
        }
    }
}
