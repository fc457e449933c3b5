//! Resuming a dropped connection's session from a reconnection token (CONTRACT §6).
//!
//! The token says who the connection was and what it subscribed to; the broker's records
//! say whether it was used or revoked, and how far the old connection really got.

use super::Session;
use super::subscribe::AttachRequest;
use crate::auth::Identity;
use crate::resume::{ResumeError, SubscriptionPosition, revoked_key, state_key, used_key};
use std::time::Duration;
use wshub_protocol::{CloseCode, Epoch, Offset, Topic};

/// How long a resumption waits for the old connection to close and leave its state,
/// when the client noticed the drop before the hub did.
const OLD_CONNECTION_GRACE: Duration = Duration::from_secs(2);

/// A redeemed token: who to be again and where each subscription stopped.
pub(super) struct Redeemed {
    pub identity: Identity,
    pub client_id: Option<String>,
    pub positions: Vec<SubscriptionPosition>,
}

impl Session {
    /// Checks a reconnection token and claims it. `access` is the identity of an access
    /// token the same handshake carried, which must name the same user.
    pub(super) async fn redeem(&self, token: &str, access: Option<&Identity>) -> Result<Redeemed, ResumeError> {
        let broker = &self.node.broker;
        let broker_error = |e: wshub_broker::BrokerError| ResumeError::Broker(e.to_string());
        let claims = self.node.resume_keys.verify(token)?;
        // Single use and revocations live in the broker's records; an in-memory broker's
        // records die with the process, so only the issuing process can honour its tokens.
        if broker.kind() == "memory" && !self.node.resume_keys.issued_here(&claims) {
            return Err(ResumeError::OtherProcess);
        }
        if access.is_some_and(|a| a.user != claims.sub) {
            return Err(ResumeError::OtherUser);
        }
        if let Some(user) = &claims.sub
            && let Some(revoked) = broker.record(&revoked_key(user)).await.map_err(broker_error)?
            && std::str::from_utf8(&revoked)
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .is_some_and(|at| claims.iat_ms <= at)
        {
            return Err(ResumeError::Revoked);
        }
        let ttl = self.node.resume_keys.ttl;
        if !broker.claim(&used_key(&claims.cid), ttl).await.map_err(broker_error)? {
            return Err(ResumeError::Used);
        }
        // The client may have noticed the drop before this node did: end the old
        // connection first, so what it wrote is final before it is read.
        if let Some(ended) = self.node.connections.close_for_resumption(&claims.cid)
            && tokio::time::timeout(OLD_CONNECTION_GRACE, ended.ended()).await.is_err()
        {
            tracing::debug!("old connection did not end in time; replaying from the token's positions");
        }
        let positions = match broker.record(&state_key(&claims.cid)).await.map_err(broker_error)? {
            Some(state) => serde_json::from_slice(&state).unwrap_or_else(|error| {
                tracing::warn!(%error, "unreadable resumption state; replaying from the token's positions");
                claims.subs.clone()
            }),
            None => claims.subs.clone(),
        };
        Ok(Redeemed {
            identity: claims.identity()?,
            client_id: claims.client_id,
            positions,
        })
    }

    /// The attach requests that restore a redeemed session's subscriptions: every topic
    /// the restored identity may still subscribe to, recovering from where it stopped.
    pub(super) fn restore_requests(&self, positions: Vec<SubscriptionPosition>) -> Vec<AttachRequest> {
        let Some(identity) = &self.identity else {
            return Vec::new();
        };
        positions
            .into_iter()
            .filter_map(|p| {
                let topic = Topic::parse(&p.topic).ok()?;
                if let Err(denied) = self
                    .node
                    .rules
                    .check(identity, &topic, crate::permissions::Action::Subscribe)
                {
                    tracing::debug!(topic = %topic, %denied, "subscription not restored");
                    return None;
                }
                Some(AttachRequest {
                    topic,
                    recover: Some((Epoch::new(p.epoch), Offset(p.offset))),
                })
            })
            .collect()
    }

    /// Leaves what a connection had written, for a later resumption (only when it
    /// issued a token: nobody else can resume it).
    pub(super) async fn save_resumption_state(&self, positions: Vec<SubscriptionPosition>) {
        let Ok(state) = serde_json::to_vec(&positions) else {
            return;
        };
        let ttl = self.node.resume_keys.ttl;
        if let Err(error) = self
            .node
            .broker
            .put_record(&state_key(self.id.as_str()), state.into(), ttl)
            .await
        {
            tracing::warn!(%error, "could not save the state for a resumption");
        }
    }
}

/// The close a connection gets when its session is resumed elsewhere.
pub(crate) const RESUMED_ELSEWHERE: (CloseCode, &str) = (CloseCode::Normal, "session resumed by a new connection");
