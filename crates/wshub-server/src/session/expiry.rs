//! Token expiry during a connection (CONTRACT §5): when the JWT's `exp` passes the
//! client is told `token_expired` and gets `refresh_grace` to send a fresh `auth`,
//! else the connection closes with 4002.

use crate::auth::Identity;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

/// Where a connection's token stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenState {
    /// Anonymous, or not yet authenticated: nothing expires.
    Unlimited,
    /// Valid until the deadline.
    Valid,
    /// Expired; a fresh `auth` is due by the deadline.
    Grace,
}

/// What to do when the deadline passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// Tell the client `token_expired`; the grace period has started.
    Expired,
    /// The grace period is over: close with 4002.
    Close,
}

/// A connection's token clock.
#[derive(Debug, Clone, Copy)]
pub struct TokenClock {
    state: TokenState,
    deadline: Instant,
}

impl TokenClock {
    /// The clock for an identity; `leeway` is added to `exp` as at verification.
    pub fn new(identity: Option<&Identity>, leeway: Duration, now: Instant) -> TokenClock {
        match identity.and_then(|i| i.expires_at) {
            Some(exp) => {
                let expires = UNIX_EPOCH + Duration::from_secs(exp) + leeway;
                let left = expires.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO);
                TokenClock {
                    state: TokenState::Valid,
                    deadline: now + left,
                }
            }
            None => TokenClock {
                state: TokenState::Unlimited,
                deadline: now,
            },
        }
    }

    /// The state.
    pub fn state(&self) -> TokenState {
        self.state
    }

    /// When the next step is due, if any.
    pub fn deadline(&self) -> Option<Instant> {
        (self.state != TokenState::Unlimited).then_some(self.deadline)
    }

    /// Advances past the deadline.
    pub fn on_deadline(&mut self, grace: Duration, now: Instant) -> Expiry {
        match self.state {
            TokenState::Valid => {
                self.state = TokenState::Grace;
                self.deadline = now + grace;
                Expiry::Expired
            }
            TokenState::Grace | TokenState::Unlimited => Expiry::Close,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(exp_in_secs: i64) -> Identity {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs() as i64;
        let mut identity = Identity::with_roles(Some("u"), vec!["viewer".into()]);
        identity.expires_at = Some((now + exp_in_secs) as u64);
        identity
    }

    #[tokio::test(start_paused = true)]
    async fn valid_then_grace_then_close() {
        let now = Instant::now();
        let mut clock = TokenClock::new(Some(&identity(60)), Duration::from_secs(5), now);
        assert_eq!(clock.state(), TokenState::Valid);
        let deadline = clock.deadline().expect("expires");
        let left = deadline - now;
        assert!(
            left > Duration::from_secs(63) && left <= Duration::from_secs(65),
            "{left:?}"
        );
        assert_eq!(clock.on_deadline(Duration::from_secs(30), deadline), Expiry::Expired);
        assert_eq!(clock.deadline(), Some(deadline + Duration::from_secs(30)));
        assert_eq!(clock.on_deadline(Duration::from_secs(30), deadline), Expiry::Close);
    }

    #[tokio::test(start_paused = true)]
    async fn anonymous_never_expires() {
        let clock = TokenClock::new(Some(&Identity::anonymous()), Duration::ZERO, Instant::now());
        assert_eq!(clock.deadline(), None);
        assert_eq!(TokenClock::new(None, Duration::ZERO, Instant::now()).deadline(), None);
    }
}
