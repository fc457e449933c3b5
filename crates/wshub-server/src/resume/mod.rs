//! Reconnection tokens: resuming a dropped connection's session on a new one (CONTRACT §6).
//!
//! A token is self-contained and signed (HS256 with `reconnection.secret`): it names the
//! connection it resumes and carries its identity, `client_id`, subscriptions and the last
//! offset written per topic when it was issued. Everything that must hold across nodes
//! goes through the broker's records:
//! - `resume:used:<connection>` — claimed by the first redemption, so a token (or any
//!   other token of the same connection) works once, on whichever node sees it;
//! - `resume:state:<connection>` — what the connection had really written to its socket
//!   when it closed, which supersedes the offsets frozen in the token;
//! - `resume:revoked:<user>` — when `POST /api/disconnect {user}` revoked the user's
//!   tokens; tokens issued before then are refused.

use crate::auth::Identity;
use crate::permissions::compile_glob;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use thiserror::Error;
use wshub_protocol::{ConnectionId, now_millis};

/// The `aud` of reconnection tokens: they are never accepted as access tokens, nor
/// access tokens as them, even if an operator reuses a secret.
const AUDIENCE: &str = "wshub-resume";

/// Why a reconnection token cannot be used. The client only ever sees
/// `invalid_reconnection_token`; the reason goes to the log.
#[derive(Debug, Error)]
pub enum ResumeError {
    /// Bad signature, malformed, or not a reconnection token.
    #[error("not a valid reconnection token: {0}")]
    Invalid(String),
    /// Past its `token_ttl`.
    #[error("reconnection token expired")]
    Expired,
    /// Already redeemed (this token or another of the same connection).
    #[error("reconnection token already used")]
    Used,
    /// The user's tokens were revoked after this one was issued.
    #[error("reconnection token revoked")]
    Revoked,
    /// Issued by another process while the broker keeps records in memory: whether it
    /// was used or revoked there cannot be known here.
    #[error("reconnection token issued by another process of an in-memory hub")]
    OtherProcess,
    /// The handshake also carried an access token for another user.
    #[error("the access token names another user than the reconnection token")]
    OtherUser,
    /// The broker could not be asked.
    #[error("broker unavailable: {0}")]
    Broker(String),
}

/// One subscription's position: where its replay starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionPosition {
    /// The topic.
    #[serde(rename = "t")]
    pub topic: String,
    /// The stream epoch the offset belongs to.
    #[serde(rename = "e")]
    pub epoch: String,
    /// The last offset written to the socket.
    #[serde(rename = "o")]
    pub offset: u64,
}

/// What a token carries.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResumeClaims {
    aud: String,
    /// Expiry, seconds since the Unix epoch.
    exp: u64,
    /// Issued at, milliseconds since the Unix epoch (compared with revocations).
    pub iat_ms: u64,
    /// The connection this token resumes.
    pub cid: String,
    /// The node that issued it.
    pub node: String,
    /// The user (`None`: anonymous).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// The roles.
    pub roles: Vec<String>,
    /// The original access token's `exp`, kept by the resumed session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt_exp: Option<u64>,
    /// The access token's `channels` globs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<String>,
    /// The connection's `client_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Subscriptions and their positions when the token was issued.
    pub subs: Vec<SubscriptionPosition>,
}

impl ResumeClaims {
    /// The identity the resumed connection gets back.
    pub fn identity(&self) -> Result<Identity, ResumeError> {
        let channels = self
            .channels
            .iter()
            .map(|c| compile_glob(c).map_err(|e| ResumeError::Invalid(e.to_string())))
            .collect::<Result<_, _>>()?;
        Ok(Identity {
            user: self.sub.clone(),
            roles: self.roles.clone(),
            expires_at: self.jwt_exp,
            channels,
        })
    }
}

/// What a session gives to have a token issued.
pub struct SessionSnapshot<'a> {
    /// The connection.
    pub connection: &'a ConnectionId,
    /// Who it is.
    pub identity: &'a Identity,
    /// Its `client_id`.
    pub client_id: Option<&'a str>,
    /// Its subscriptions, with the last offset written.
    pub subscriptions: Vec<SubscriptionPosition>,
}

/// Signs and checks reconnection tokens.
pub struct ResumeKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// This node's name, written into each token.
    node: String,
    /// Lifetime of a token (`reconnection.token_ttl`).
    pub ttl: Duration,
}

impl std::fmt::Debug for ResumeKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResumeKeys")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl ResumeKeys {
    /// Keys from `reconnection.secret`, or a random one for this process; tokens name `node`.
    pub fn new(secret: Option<&str>, ttl: Duration, node: &str) -> ResumeKeys {
        let secret = match secret {
            Some(secret) => secret.as_bytes().to_vec(),
            None => {
                let mut random = uuid::Uuid::new_v4().as_bytes().to_vec();
                random.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
                random
            }
        };
        ResumeKeys {
            encoding: EncodingKey::from_secret(&secret),
            decoding: DecodingKey::from_secret(&secret),
            node: node.to_owned(),
            ttl,
        }
    }

    /// Issues a token for a session as it stands.
    pub fn issue(&self, session: SessionSnapshot<'_>) -> Result<String, ResumeError> {
        self.issue_at(session, now_millis())
    }

    /// Issues a token as if it were `now` (milliseconds since the Unix epoch).
    pub fn issue_at(&self, session: SessionSnapshot<'_>, now: u64) -> Result<String, ResumeError> {
        let identity = session.identity;
        let claims = ResumeClaims {
            aud: AUDIENCE.to_owned(),
            exp: now / 1000 + self.ttl.as_secs().max(1),
            iat_ms: now,
            cid: session.connection.to_string(),
            node: self.node.clone(),
            sub: identity.user.clone(),
            roles: identity.roles.clone(),
            jwt_exp: identity.expires_at,
            channels: identity.channels.iter().map(|c| c.glob().glob().to_owned()).collect(),
            client_id: session.client_id.map(str::to_owned),
            subs: session.subscriptions,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| ResumeError::Invalid(e.to_string()))
    }

    /// Whether this node issued the token.
    pub fn issued_here(&self, claims: &ResumeClaims) -> bool {
        claims.node == self.node
    }

    /// Checks a token's signature, audience and expiry (not whether it was used).
    pub fn verify(&self, token: &str) -> Result<ResumeClaims, ResumeError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "aud"]);
        jsonwebtoken::decode::<ResumeClaims>(token, &self.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => ResumeError::Expired,
                _ => ResumeError::Invalid(e.to_string()),
            })
    }
}

/// The broker record that makes a connection's tokens single-use.
pub fn used_key(connection: &str) -> String {
    format!("resume:used:{connection}")
}

/// The broker record holding what a closed connection had written, per subscription.
pub fn state_key(connection: &str) -> String {
    format!("resume:state:{connection}")
}

/// The broker record of a user's last revocation (milliseconds since the Unix epoch).
pub fn revoked_key(user: &str) -> String {
    format!("resume:revoked:{user}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(secret: &str) -> ResumeKeys {
        ResumeKeys::new(Some(secret), Duration::from_secs(300), "node-1")
    }

    fn snapshot<'a>(id: &'a ConnectionId, identity: &'a Identity) -> SessionSnapshot<'a> {
        SessionSnapshot {
            connection: id,
            identity,
            client_id: Some("c1"),
            subscriptions: vec![SubscriptionPosition {
                topic: "news".into(),
                epoch: "e1".into(),
                offset: 7,
            }],
        }
    }

    #[test]
    fn a_token_round_trips_identity_and_positions() {
        let keys = keys("0123456789abcdef0123456789abcdef");
        let id = ConnectionId::new("conn-1");
        let mut identity = Identity::with_roles(Some("u1"), vec!["viewer".into(), "bot".into()]);
        identity.expires_at = Some(4_000_000_000);
        identity.channels = vec![compile_glob("private/u1/*").expect("glob")];
        let token = keys.issue(snapshot(&id, &identity)).expect("issue");
        let claims = keys.verify(&token).expect("verify");
        assert_eq!(claims.cid, "conn-1");
        assert_eq!(claims.client_id.as_deref(), Some("c1"));
        assert_eq!(claims.subs[0].offset, 7);
        let restored = claims.identity().expect("identity");
        assert_eq!(restored.user.as_deref(), Some("u1"));
        assert_eq!(restored.roles, ["viewer", "bot"]);
        assert_eq!(restored.expires_at, Some(4_000_000_000));
        assert!(restored.channels[0].is_match("private/u1/inbox"));
    }

    #[test]
    fn a_token_dies_after_its_ttl() {
        let keys = keys("0123456789abcdef0123456789abcdef");
        let identity = Identity::anonymous();
        let id = ConnectionId::new("conn-1");
        let issued = now_millis() - 301_000;
        let token = keys.issue_at(snapshot(&id, &identity), issued).expect("issue");
        assert!(matches!(keys.verify(&token), Err(ResumeError::Expired)));
        let token = keys.issue_at(snapshot(&id, &identity), issued + 5_000).expect("issue");
        assert!(keys.verify(&token).is_ok(), "still within 300 s");
    }

    #[test]
    fn another_key_or_an_access_token_is_refused() {
        let identity = Identity::anonymous();
        let id = ConnectionId::new("conn-1");
        let token = keys("0123456789abcdef0123456789abcdef")
            .issue(snapshot(&id, &identity))
            .expect("issue");
        let other = keys("fedcba9876543210fedcba9876543210");
        assert!(matches!(other.verify(&token), Err(ResumeError::Invalid(_))));
        // An access token signed with the same secret has no resume audience.
        let access = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &serde_json::json!({"sub": "u1", "exp": 4_000_000_000u64}),
            &EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef"),
        )
        .expect("encode");
        assert!(matches!(
            keys("0123456789abcdef0123456789abcdef").verify(&access),
            Err(ResumeError::Invalid(_))
        ));
    }
}
