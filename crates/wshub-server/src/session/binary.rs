//! A client's binary publish (CONTRACT §12): the binary counterpart of `dispatch`'s `publish`.
//!
//! On the message path: the reader hands each binary message here. It is decoded and checked
//! once (`Upload::decode`, which keeps slices of the received bytes instead of copying them),
//! charged to the `default` bucket, checked against the topic rules on its metadata's
//! `topic`, and handed to the broker as `Content::Binary`. The frame subscribers receive is
//! not built here: it carries the offset, so `Publication::frame` builds it once the broker
//! has placed the publication, inside the topic's atomic step, and every subscriber shares it.

use super::Session;
use super::rate_limit::{BucketKind, Verdict};
use crate::permissions::Action;
use bytes::Bytes;
use tokio::time::Instant;
use wshub_broker::{Content, PublicationDraft};
use wshub_protocol::binary::Upload;
use wshub_protocol::{ErrorCode, now_millis};

impl Session {
    /// Decodes, rate-limits and publishes one binary message, counting it as a request that
    /// succeeded or failed.
    pub(super) async fn handle_binary(&mut self, bytes: Bytes) {
        let started = std::time::Instant::now();
        let errors_before = self.errors_sent();
        self.execute_binary(bytes).await;
        let ok = self.errors_sent() == errors_before;
        self.node.metrics.requests.record(ok, started.elapsed());
    }

    /// [`handle_binary`](Self::handle_binary) without the accounting. Answers with `published`
    /// only when the metadata has an `id`; refusals are always answered.
    async fn execute_binary(&mut self, bytes: Bytes) {
        let len = bytes.len();
        let max = self.node.config.websocket.max_message_size.as_usize();
        let metrics = &self.node.metrics;
        let upload = match Upload::decode(bytes, max) {
            Ok(upload) => upload,
            Err(error) => {
                // A malformed frame, like malformed text, costs a token and counts as a refusal.
                metrics.received(metrics.request_types.other(), len);
                if self.charge_malformed() {
                    return;
                }
                return self.send_error(
                    None,
                    ErrorCode::InvalidMessage,
                    &format!("invalid binary frame: {error}"),
                );
            }
        };
        let type_label = metrics.request_types.publish();
        metrics.received(type_label, len);
        let id = upload.request_id().cloned();
        let id = id.as_ref();
        match self.limiter.check(BucketKind::Default, Instant::now()) {
            Verdict::Allowed => {}
            Verdict::Limited { retry_after } => {
                return self.send_rate_limited(id, BucketKind::Default, type_label, retry_after);
            }
            Verdict::Abusive => return self.close_abusive(),
        }
        if self.refused_now(id, None) || !self.permitted(id, upload.topic(), Action::Publish) {
            return;
        }
        let sender = self.sender_id();
        // The delivered frame gains the hub's metadata; it must still fit what clients accept.
        if upload.frame().delivered_len_bound(&sender) > max {
            return self.send_error(
                id,
                ErrorCode::MessageTooLarge,
                "the binary event would exceed max_message_size",
            );
        }
        let draft = PublicationDraft {
            topic: upload.topic().clone(),
            content: Content::Binary(upload),
            id: self.node.event_id(),
            timestamp: now_millis(),
            sender_id: sender,
        };
        self.publish_draft(id, draft, id.is_some()).await;
    }
}
