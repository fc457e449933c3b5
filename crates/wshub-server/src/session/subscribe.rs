//! Joining and leaving topics, with the hand-over from replay to live events.
//!
//! Attaching a topic takes three steps:
//! 1. register the subscriber with the fan-out, *held*: live deliveries are kept aside;
//! 2. read the stream position (and, when recovering, the missed events) from the broker;
//! 3. queue the reply and the replay, then release the hold, dropping kept deliveries
//!    the replay or the reply's position already covered.
//!
//! Every event published after step 1 is kept aside; every event published before it is
//! at or below the position read in step 2 (the broker never lets history lag delivery).
//! So the client sees each event once, in order, after the reply: the proof is in
//! docs/architecture.md, the property test in tests/recovery.rs.

use super::Session;
use super::outbox::{EventFrame, Outgoing, StreamMark, SubscriptionSlot};
use std::sync::Arc;
use wshub_broker::{BrokerError, PresenceMember, Publication, Recovery, StreamPosition};
use wshub_protocol::{Epoch, Offset, Topic};

/// A topic this connection holds.
#[derive(Debug, Clone)]
pub(super) struct Subscription {
    /// Its number within the connection (what the writer reports positions by).
    pub slot: SubscriptionSlot,
    /// The stream epoch when it was attached.
    pub epoch: Epoch,
}

/// A topic to attach, and the position to recover from, if any.
pub(super) struct AttachRequest {
    pub topic: Topic,
    pub recover: Option<(Epoch, Offset)>,
}

/// A topic attached but not yet released to live delivery.
pub(super) struct Attached {
    pub topic: Topic,
    pub slot: SubscriptionSlot,
    /// The stream position the reply reports: the last event replayed, or the latest.
    pub position: StreamPosition,
    /// `Some(true)` when the requested recovery is complete, `Some(false)` when it was impossible.
    pub recovered: Option<bool>,
    replay: Vec<Arc<Publication>>,
    /// Whether the fan-out holds deliveries for it (a plain re-subscribe is not held).
    held: bool,
}

impl Session {
    fn next_slot(&mut self) -> SubscriptionSlot {
        self.next_slot = self.next_slot.wrapping_add(1);
        self.next_slot
    }

    /// Steps 1 and 2 for each topic. On a broker failure nothing changes: the topics
    /// newly registered are left again and the others released.
    pub(super) async fn attach(&mut self, requests: Vec<AttachRequest>) -> Result<Vec<Attached>, BrokerError> {
        let mut attached: Vec<Attached> = Vec::with_capacity(requests.len());
        let mut result = Ok(());
        for AttachRequest { topic, recover } in requests {
            let existing = self.subscriptions.get(&topic).map(|s| s.slot);
            if let (Some(slot), None) = (existing, &recover) {
                // Already subscribed and nothing to recover: report the position only.
                match self.node.broker.position(&topic).await {
                    Ok(position) => attached.push(Attached {
                        topic,
                        slot,
                        position,
                        recovered: None,
                        replay: Vec::new(),
                        held: false,
                    }),
                    Err(error) => {
                        result = Err(error);
                        break;
                    }
                }
                continue;
            }
            let slot = existing.unwrap_or_else(|| self.next_slot());
            if self.node.registry.subscribe_held(&topic, self.key, &self.outbox, slot)
                && let Err(error) = self.node.broker.listen(&topic).await
            {
                self.node.registry.unsubscribe(&topic, self.key);
                result = Err(error);
                break;
            }
            let read = match &recover {
                Some((epoch, offset)) => self.node.broker.recover(&topic, epoch, *offset).await.map(|r| match r {
                    Recovery::Complete { position, publications } => (position, Some(true), publications),
                    Recovery::Incomplete { position } => (position, Some(false), Vec::new()),
                }),
                None => self.node.broker.position(&topic).await.map(|p| (p, None, Vec::new())),
            };
            let is_new = existing.is_none();
            match read {
                Ok((position, recovered, replay)) => attached.push(Attached {
                    topic,
                    slot,
                    position,
                    recovered,
                    replay,
                    held: true,
                }),
                Err(error) => {
                    self.abandon(&topic, is_new).await;
                    result = Err(error);
                    break;
                }
            }
        }
        if let Err(error) = result {
            for a in attached.iter().filter(|a| a.held) {
                let is_new = !self.subscriptions.contains_key(&a.topic);
                self.abandon(&a.topic, is_new).await;
            }
            return Err(error);
        }
        for a in &attached {
            if self.subscriptions.contains_key(&a.topic) && !a.held {
                continue;
            }
            // What counts as written so far: up to the recovery point when replaying
            // (the replay is still to be written), else up to the reported position.
            let written = match (a.recovered, a.replay.first()) {
                (Some(true), Some(first)) => first.offset.0 - 1,
                _ => a.position.offset.0,
            };
            self.delivered.start(a.slot, written);
            let is_new = self
                .subscriptions
                .insert(
                    a.topic.clone(),
                    Subscription {
                        slot: a.slot,
                        epoch: a.position.epoch.clone(),
                    },
                )
                .is_none();
            if is_new {
                self.presence_join(&a.topic).await;
            }
        }
        Ok(attached)
    }

    /// Undoes step 1 for one topic.
    async fn abandon(&mut self, topic: &Topic, is_new: bool) {
        if is_new {
            self.unregister(topic).await;
        } else if let Some(slot) = self.subscriptions.get(topic).map(|s| s.slot) {
            // Release everything kept aside: nothing was replayed.
            while let Some(kept) = self.node.registry.take_held(topic, self.key) {
                for publication in &kept {
                    if !self.queue_event(publication, slot).await {
                        return;
                    }
                }
            }
        }
    }

    /// Step 3, after the reply is queued: the replays, then the deliveries kept aside,
    /// then live delivery. Replays wait for room in the outbox (up to `write_timeout` per
    /// event), so a recovery longer than the queue is paced by the client, not refused.
    pub(super) async fn release(&self, attached: Vec<Attached>) {
        for a in attached {
            for publication in &a.replay {
                if !self.queue_event(publication, a.slot).await {
                    return;
                }
            }
            if !a.held {
                continue;
            }
            while let Some(kept) = self.node.registry.take_held(&a.topic, self.key) {
                for publication in &kept {
                    // A different epoch means the stream was reset after the position was read: all new.
                    let new = publication.epoch != a.position.epoch || publication.offset > a.position.offset;
                    if new && !self.queue_event(publication, a.slot).await {
                        return;
                    }
                }
            }
        }
    }

    /// Queues a replayed or kept event (a binary publication as a binary frame).
    async fn queue_event(&self, publication: &Publication, slot: SubscriptionSlot) -> bool {
        let Some(frame) = EventFrame::event(publication) else {
            return true;
        };
        let event = Outgoing::Event {
            frame,
            mark: StreamMark {
                slot,
                offset: publication.offset.0,
                published_at: 0,
            },
        };
        let patience = self.node.config.websocket.write_timeout;
        self.outbox.push_waiting(event, patience).await
    }

    /// Leaves a topic this connection holds.
    pub(super) async fn leave(&mut self, topic: &Topic) {
        let Some(subscription) = self.subscriptions.remove(topic) else {
            return;
        };
        self.delivered.stop(subscription.slot);
        self.unregister(topic).await;
        self.presence_leave(topic).await;
    }

    pub(super) async fn unregister(&self, topic: &Topic) {
        if self.node.registry.unsubscribe(topic, self.key)
            && let Err(error) = self.node.broker.unlisten(topic).await
        {
            tracing::warn!(%error, topic = %topic, "broker unlisten failed");
        }
    }

    async fn presence_join(&self, topic: &Topic) {
        if !self.node.rules.presence_for(topic.as_str()) {
            return;
        }
        let member = PresenceMember {
            connection_id: self.id.clone(),
            user: self.identity.as_ref().and_then(|i| i.user.clone()),
            client_id: self.client_id.clone(),
        };
        if let Err(error) = self.node.broker.presence_join(topic, member).await {
            tracing::warn!(%error, topic = %topic, "presence join failed");
        }
    }

    pub(super) async fn presence_leave(&self, topic: &Topic) {
        if !self.node.rules.presence_for(topic.as_str()) {
            return;
        }
        if let Err(error) = self.node.broker.presence_leave(topic, &self.id).await {
            tracing::warn!(%error, topic = %topic, "presence leave failed");
        }
    }
}
