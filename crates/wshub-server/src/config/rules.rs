//! The list entries of the configuration: topic rules (who may subscribe and publish where),
//! raw stream routes and handler routes. Unlike sections, an entry has no defaults for the keys
//! that identify it (`match`, `path`, `topic`, `url`): leaving one out is an error.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::units;

/// One entry of `topics:` — who may subscribe and publish on topics matching a glob.
///
/// `match` is required; the other keys default to "nobody", no own history, no presence.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TopicRule {
    /// Glob over the topic name; `*` matches any characters, `/` and `.` included.
    pub r#match: String,
    /// Roles that may subscribe (and read history / presence).
    #[serde(default)]
    pub subscribe: Vec<String>,
    /// Roles that may publish.
    #[serde(default)]
    pub publish: Vec<String>,
    /// History for these topics; unset values fall back to `history.size` / `history.ttl`.
    #[serde(default)]
    pub history: Option<TopicHistory>,
    /// Track presence for these topics (default false: `presence` gets `unavailable`).
    #[serde(default)]
    pub presence: bool,
}

impl TopicRule {
    fn new(pattern: &str, subscribe: &[&str], publish: &[&str]) -> Self {
        let owned = |roles: &[&str]| roles.iter().map(|r| (*r).to_owned()).collect();
        Self {
            r#match: pattern.to_owned(),
            subscribe: owned(subscribe),
            publish: owned(publish),
            history: None,
            presence: false,
        }
    }

    /// The default rules of contract §5/§15, in order.
    pub fn defaults() -> Vec<TopicRule> {
        const ADMIN: &[&str] = &["admin"];
        const STAFF: &[&str] = &["admin", "developer"];
        const READERS: &[&str] = &["admin", "developer", "viewer"];
        const EVERYONE: &[&str] = &["admin", "developer", "viewer", "bot", "anonymous"];
        vec![
            Self::new("signals", &["admin", "developer", "bot"], ADMIN),
            Self::new("actions", STAFF, ADMIN),
            Self::new("logs", STAFF, ADMIN),
            Self::new("connections", ADMIN, ADMIN),
            Self::new("system", READERS, &[]),
            Self::new("alerts", READERS, &[]),
            Self::new("metrics", EVERYONE, ADMIN),
            Self::new("status", EVERYONE, ADMIN),
            Self::new("*", EVERYONE, STAFF),
        ]
    }
}

/// `topics[i].history:` — per-rule history; an omitted value uses the global one.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TopicHistory {
    /// Events kept per topic (0 keeps none).
    pub size: Option<usize>,
    /// How long a topic's stream lives after its last publish.
    #[serde(with = "units::opt_duration")]
    pub ttl: Option<Duration>,
}

/// One entry of `streams:` — a raw stream path bound to one topic (§9).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StreamRoute {
    /// URL path, e.g. `/ws/latency`.
    pub path: String,
    /// Topic whose event payloads are sent.
    pub topic: String,
    /// At most this many frames a second, each the latest payload; unset sends every event.
    #[serde(default)]
    pub rate_hz: Option<f64>,
}

/// One entry of `handlers:` — request types routed to a backend (§7).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HandlerRoute {
    /// Glob over the request type, e.g. `token.*`.
    pub r#match: String,
    /// Endpoint the hub POSTs to (`http://` or `https://`).
    pub url: String,
    /// Time to wait for the backend before `handler_timeout` (default 5 s).
    #[serde(default = "default_handler_timeout", with = "units::duration")]
    pub timeout: Duration,
    /// Roles allowed to call it; unset = every connection.
    #[serde(default)]
    pub roles: Option<Vec<String>>,
}

fn default_handler_timeout() -> Duration {
    Duration::from_secs(5)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn names(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn default_topic_rules_are_the_permission_matrix() {
        let rules = TopicRule::defaults();
        let table: Vec<(&str, Vec<&str>, Vec<&str>)> = rules
            .iter()
            .map(|r| (r.r#match.as_str(), names(&r.subscribe), names(&r.publish)))
            .collect();
        let everyone = vec!["admin", "developer", "viewer", "bot", "anonymous"];
        assert_eq!(
            table,
            vec![
                ("signals", vec!["admin", "developer", "bot"], vec!["admin"]),
                ("actions", vec!["admin", "developer"], vec!["admin"]),
                ("logs", vec!["admin", "developer"], vec!["admin"]),
                ("connections", vec!["admin"], vec!["admin"]),
                ("system", vec!["admin", "developer", "viewer"], vec![]),
                ("alerts", vec!["admin", "developer", "viewer"], vec![]),
                ("metrics", everyone.clone(), vec!["admin"]),
                ("status", everyone.clone(), vec!["admin"]),
                ("*", everyone, vec!["admin", "developer"]),
            ]
        );
        assert!(rules.iter().all(|r| r.history.is_none() && !r.presence));
    }

    #[test]
    fn history_for_falls_back_to_the_global_values() {
        let mut c = Config::default();
        c.topics[0].history = Some(TopicHistory {
            size: Some(5),
            ttl: None,
        });
        c.topics[1].history = Some(TopicHistory {
            size: None,
            ttl: Some(secs(7)),
        });
        assert_eq!(c.history_for(0), (5, secs(300)));
        assert_eq!(c.history_for(1), (100, secs(7)));
        assert_eq!(c.history_for(2), (100, secs(300)));
        assert_eq!(c.history_for(999), (100, secs(300)));
    }
}
