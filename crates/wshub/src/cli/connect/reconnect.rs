//! Coming back after a drop: when to try again (backoff with jitter), which closes are worth a
//! retry, the reconnection token kept fresh for it, and the one line that tells the user what
//! the reconnection recovered.

use rand::Rng;
use std::collections::BTreeSet;
use std::time::Duration;
use tokio::time::Instant;
use wshub_client::Close;

/// The first wait before reconnecting; it doubles on each failed attempt…
const FIRST_DELAY: Duration = Duration::from_secs(1);
/// …up to this.
const MAX_DELAY: Duration = Duration::from_secs(30);
/// A reconnection token this close to expiring is not worth presenting.
const TOKEN_MARGIN: Duration = Duration::from_secs(2);

/// Exponential backoff: 1 s doubling to 30 s.
#[derive(Debug, Default)]
pub struct Backoff {
    failures: u32,
}

impl Backoff {
    /// The wait before the next attempt. Each wait is drawn from the upper half of its step so that
    /// many clients dropped at once (a hub restart) do not all come back in the same instant.
    pub fn next_delay(&mut self, rng: &mut impl Rng) -> Duration {
        let step = FIRST_DELAY.saturating_mul(1u32 << self.failures.min(16)).min(MAX_DELAY);
        self.failures = self.failures.saturating_add(1);
        step.mul_f64(rng.random_range(0.5..=1.0))
    }

    /// After a connection was established: the next drop starts from 1 s again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

/// Whether a connection that ended this way should be opened again. Closes that say the hub
/// will refuse us again (bad or expired token, policy, a protocol error, a deliberate
/// disconnect) end the command instead.
pub fn worth_retrying(close: &Close) -> bool {
    match close.code {
        // No close frame: the network or the process went away.
        None => true,
        // Going away (shutdown), internal error, restart, try again later, bad gateway, heartbeat
        // timeout, slow consumer.
        Some(code) => matches!(code, 1001 | 1006 | 1011 | 1012 | 1013 | 1014 | 4000 | 4008),
    }
}

/// A reconnection token from the hub (`get_reconnection_token`), usable once.
#[derive(Debug, Clone)]
pub struct ReconnectionToken {
    value: String,
    expires_at: Instant,
}

impl ReconnectionToken {
    pub fn new(value: String, valid_for: Duration) -> ReconnectionToken {
        ReconnectionToken {
            value,
            expires_at: Instant::now() + valid_for,
        }
    }

    pub fn value(&self) -> &str {
        &self.value
    }

    /// Whether it is still worth presenting.
    pub fn usable(&self) -> bool {
        Instant::now() + TOKEN_MARGIN < self.expires_at
    }
}

/// What the reconnecting side had to offer for resuming.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenStory {
    /// A reconnection token was presented.
    Presented,
    /// The hub answered `get_reconnection_token` with `unavailable`.
    Unsupported,
    /// None was at hand (not received yet, or expired).
    Missing,
}

/// What a reconnection achieved, gathered while the `recover` replies come in.
#[derive(Debug)]
pub struct Recovery {
    resumed: bool,
    resume_error: Option<String>,
    token: TokenStory,
    topics: usize,
    waiting: BTreeSet<String>,
    recovered_events: u64,
    not_recovered: Vec<String>,
    lost: Vec<String>,
}

impl Recovery {
    /// `topics`: every topic being re-subscribed with `recover`; the report is complete when each
    /// has answered.
    pub fn new(
        resumed: bool,
        resume_error: Option<String>,
        token: TokenStory,
        topics: impl IntoIterator<Item = String>,
    ) -> Recovery {
        let waiting: BTreeSet<String> = topics.into_iter().collect();
        Recovery {
            resumed,
            resume_error,
            token,
            topics: waiting.len(),
            waiting,
            recovered_events: 0,
            not_recovered: Vec::new(),
            lost: Vec::new(),
        }
    }

    /// The hub replayed `events` events of `topic` (or none were missing).
    pub fn recovered(&mut self, topic: &str, events: u64) {
        if self.waiting.remove(topic) {
            self.recovered_events += events;
        }
    }

    /// The hub could not replay `topic` (history gone, new epoch, or no recovery on this hub).
    pub fn not_recovered(&mut self, topic: &str) {
        if self.waiting.remove(topic) {
            self.not_recovered.push(topic.to_owned());
        }
    }

    /// `topic` could not be subscribed again (`code` says why).
    pub fn lost(&mut self, topic: &str, code: &str) {
        if self.waiting.remove(topic) {
            self.lost.push(format!("{topic} ({code})"));
        }
    }

    pub fn is_complete(&self) -> bool {
        self.waiting.is_empty()
    }

    /// One line for stderr:
    /// `reconnected (resumed, nothing missed)`, `reconnected (recovered 3 events)`, or
    /// `reconnected (fresh session: invalid_reconnection_token) — events may have been missed`.
    pub fn describe(&self) -> String {
        let mut gaps = Vec::new();
        if !self.not_recovered.is_empty() {
            gaps.push(format!("not recovered: {}", self.not_recovered.join(", ")));
        }
        if !self.lost.is_empty() {
            gaps.push(format!("could not resubscribe: {}", self.lost.join(", ")));
        }
        match (self.resumed, gaps.is_empty()) {
            (_, true) if self.topics == 0 => "reconnected (no subscriptions to recover)".to_owned(),
            (true, true) => "reconnected (resumed, nothing missed)".to_owned(),
            (false, true) => {
                let plural = if self.recovered_events == 1 { "" } else { "s" };
                format!("reconnected (recovered {} event{plural})", self.recovered_events)
            }
            (true, false) => format!(
                "reconnected (resumed; {}) — events may have been missed",
                gaps.join("; ")
            ),
            (false, false) => {
                let why = match (&self.resume_error, self.token) {
                    (Some(error), _) => error.clone(),
                    (None, TokenStory::Presented) => "the reconnection token was not honoured".to_owned(),
                    (None, TokenStory::Unsupported) => "the hub issues no reconnection tokens".to_owned(),
                    (None, TokenStory::Missing) => "no reconnection token at hand".to_owned(),
                };
                gaps.insert(0, why);
                format!(
                    "reconnected (fresh session: {}) — events may have been missed",
                    gaps.join("; ")
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn backoff_doubles_from_one_second_to_thirty_with_jitter() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut backoff = Backoff::default();
        let steps = [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0];
        for step in steps {
            let delay = backoff.next_delay(&mut rng).as_secs_f64();
            assert!(
                delay >= step / 2.0 && delay <= step,
                "{delay} within the upper half of {step}"
            );
        }
        backoff.reset();
        assert!(backoff.next_delay(&mut rng) <= Duration::from_secs(1));
    }

    #[test]
    fn jitter_spreads_clients_out() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let delays: BTreeSet<Duration> = (0..20).map(|_| Backoff::default().next_delay(&mut rng)).collect();
        assert!(delays.len() > 10, "{delays:?}");
    }

    #[test]
    fn only_transient_closes_are_retried() {
        let close = |code| Close {
            code,
            reason: String::new(),
        };
        for retried in [None, Some(1001), Some(1011), Some(4000), Some(4008)] {
            assert!(worth_retrying(&close(retried)), "{retried:?}");
        }
        for final_close in [Some(1000), Some(1008), Some(1009), Some(4001), Some(4002)] {
            assert!(!worth_retrying(&close(final_close)), "{final_close:?}");
        }
    }

    #[test]
    fn a_resumed_session_that_lost_nothing_says_so() {
        let mut recovery = Recovery::new(true, None, TokenStory::Presented, ["a".to_owned(), "b".to_owned()]);
        recovery.recovered("a", 0);
        assert!(!recovery.is_complete());
        recovery.recovered("b", 2);
        assert!(recovery.is_complete());
        assert_eq!(recovery.describe(), "reconnected (resumed, nothing missed)");
    }

    #[test]
    fn recovery_without_resume_counts_the_replayed_events() {
        let mut recovery = Recovery::new(false, None, TokenStory::Unsupported, ["a".to_owned(), "b".to_owned()]);
        recovery.recovered("a", 2);
        recovery.recovered("b", 1);
        assert_eq!(recovery.describe(), "reconnected (recovered 3 events)");
        let mut one = Recovery::new(false, None, TokenStory::Missing, ["a".to_owned()]);
        one.recovered("a", 1);
        assert_eq!(one.describe(), "reconnected (recovered 1 event)");
    }

    #[test]
    fn gaps_are_named_with_the_reason() {
        let mut recovery = Recovery::new(
            false,
            Some("invalid_reconnection_token".into()),
            TokenStory::Presented,
            ["a".to_owned(), "b".to_owned(), "c".to_owned()],
        );
        recovery.recovered("a", 1);
        recovery.not_recovered("b");
        recovery.lost("c", "forbidden");
        assert_eq!(
            recovery.describe(),
            "reconnected (fresh session: invalid_reconnection_token; not recovered: b; could not resubscribe: \
             c (forbidden)) — events may have been missed"
        );
        let mut plain = Recovery::new(false, None, TokenStory::Unsupported, ["a".to_owned()]);
        plain.not_recovered("a");
        assert_eq!(
            plain.describe(),
            "reconnected (fresh session: the hub issues no reconnection tokens; not recovered: a) — events may \
             have been missed"
        );
    }

    #[test]
    fn tokens_close_to_expiry_are_not_presented() {
        assert!(ReconnectionToken::new("t".into(), Duration::from_secs(300)).usable());
        assert!(!ReconnectionToken::new("t".into(), Duration::from_secs(1)).usable());
    }
}
