//! Who may subscribe and publish where: the ordered `topics` rules (CONTRACT §5, §15).
//!
//! On the message path this comes right after the session decoded a request: the first
//! rule whose glob matches the topic decides; no match means `unknown_channel`.

use crate::auth::Identity;
use crate::config::{Config, TopicRule};
use globset::{GlobBuilder, GlobMatcher};
use serde::Serialize;
use std::time::Duration;
use thiserror::Error;
use wshub_broker::HistoryPolicy;
use wshub_protocol::{ErrorCode, Topic};

/// What a connection wants to do on a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Receive its events.
    Subscribe,
    /// Send events to it.
    Publish,
}

/// Why an action was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum Denied {
    /// No rule matches the topic.
    #[error("no topic rule matches this topic")]
    UnknownChannel,
    /// A rule matches but none of the connection's roles is listed for the action.
    #[error("your role may not do this on this topic")]
    Forbidden,
}

impl Denied {
    /// The wire error code.
    pub fn code(self) -> ErrorCode {
        match self {
            Denied::UnknownChannel => ErrorCode::UnknownChannel,
            Denied::Forbidden => ErrorCode::Forbidden,
        }
    }
}

/// One rule with its glob compiled.
#[derive(Debug)]
pub struct CompiledRule {
    /// The rule as configured.
    pub rule: TopicRule,
    matcher: GlobMatcher,
    /// The rule's history policy, resolved against the global defaults.
    pub history: HistoryPolicy,
}

/// What one connection may do under one rule, as listed in `connection.established`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RulePermission {
    /// The rule's glob.
    #[serde(rename = "match")]
    pub pattern: String,
    /// May subscribe to matching topics.
    pub subscribe: bool,
    /// May publish to matching topics.
    pub publish: bool,
}

/// The compiled, ordered topic rules.
#[derive(Debug)]
pub struct TopicRules {
    rules: Vec<CompiledRule>,
    default_history: HistoryPolicy,
}

/// A rule's glob did not compile (config validation reports it first).
#[derive(Debug, Error)]
#[error("topics[{index}].match: {source}")]
pub struct RuleError {
    index: usize,
    #[source]
    source: globset::Error,
}

/// Compiles a topic glob the way rules and token `channels` use it: `*` crosses `/` and `.`.
pub fn compile_glob(pattern: &str) -> Result<GlobMatcher, globset::Error> {
    Ok(GlobBuilder::new(pattern)
        .literal_separator(false)
        .build()?
        .compile_matcher())
}

impl TopicRules {
    /// Compiles the configured rules.
    pub fn new(config: &Config) -> Result<TopicRules, RuleError> {
        let default_history = HistoryPolicy {
            size: config.history.size,
            ttl: config.history.ttl,
        };
        let rules = config
            .topics
            .iter()
            .enumerate()
            .map(|(index, rule)| {
                let matcher = compile_glob(&rule.r#match).map_err(|source| RuleError { index, source })?;
                let history = rule
                    .history
                    .as_ref()
                    .map(|h| HistoryPolicy {
                        size: h.size.unwrap_or(default_history.size),
                        ttl: h.ttl.unwrap_or(default_history.ttl),
                    })
                    .unwrap_or(default_history);
                Ok(CompiledRule {
                    rule: rule.clone(),
                    matcher,
                    history,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(TopicRules { rules, default_history })
    }

    /// The first rule matching the topic.
    pub fn rule_for(&self, topic: &str) -> Option<&CompiledRule> {
        self.rules.iter().find(|r| r.matcher.is_match(topic))
    }

    /// The history policy of a topic (the default for topics only a token's `channels` allow).
    pub fn history_for(&self, topic: &str) -> HistoryPolicy {
        self.rule_for(topic).map(|r| r.history).unwrap_or(self.default_history)
    }

    /// Whether the topic's rule tracks presence.
    pub fn presence_for(&self, topic: &str) -> bool {
        self.rule_for(topic).is_some_and(|r| r.rule.presence)
    }

    /// Longest stream lifetime of any rule: how long a stream that was only read lives.
    pub fn longest_ttl(&self) -> Duration {
        self.rules
            .iter()
            .map(|r| r.history.ttl)
            .chain([self.default_history.ttl])
            .max()
            .unwrap_or(self.default_history.ttl)
    }

    /// Decides whether `identity` may do `action` on `topic`.
    pub fn check(&self, identity: &Identity, topic: &Topic, action: Action) -> Result<(), Denied> {
        if action == Action::Subscribe && identity.channels.iter().any(|c| c.is_match(topic.as_str())) {
            return Ok(());
        }
        let rule = self.rule_for(topic.as_str()).ok_or(Denied::UnknownChannel)?;
        let allowed = match action {
            Action::Subscribe => &rule.rule.subscribe,
            Action::Publish => &rule.rule.publish,
        };
        if identity.roles.iter().any(|role| allowed.iter().any(|a| a == role)) {
            Ok(())
        } else {
            Err(Denied::Forbidden)
        }
    }

    /// Every rule in order with what `identity` may do under it.
    pub fn permissions(&self, identity: &Identity) -> Vec<RulePermission> {
        let has = |list: &[String]| identity.roles.iter().any(|role| list.iter().any(|a| a == role));
        self.rules
            .iter()
            .map(|r| RulePermission {
                pattern: r.rule.r#match.clone(),
                subscribe: has(&r.rule.subscribe),
                publish: has(&r.rule.publish),
            })
            .collect()
    }

    /// The rules' literal topic names (no glob characters), for bounded metric labels.
    pub fn literal_topics(&self) -> impl Iterator<Item = &str> {
        self.rules
            .iter()
            .map(|r| r.rule.r#match.as_str())
            .filter(|m| !m.contains(['*', '?', '[', '{']))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(role: &str) -> Identity {
        Identity::with_roles(Some("u"), vec![role.to_owned()])
    }

    fn allowed(rules: &TopicRules, role: &str, topic: &str, action: Action) -> bool {
        rules
            .check(&identity(role), &Topic::parse(topic).expect("valid"), action)
            .is_ok()
    }

    /// The default rules give exactly the permission matrix of CONTRACT §5.
    #[test]
    fn default_matrix() {
        let rules = TopicRules::new(&Config::default()).expect("defaults compile");
        let matrix: &[(&str, [&str; 5])] = &[
            ("metrics", ["sp", "s", "s", "s", "s"]),
            ("signals", ["sp", "s", "", "s", ""]),
            ("actions", ["sp", "s", "", "", ""]),
            ("logs", ["sp", "s", "", "", ""]),
            ("status", ["sp", "s", "s", "s", "s"]),
            ("connections", ["sp", "", "", "", ""]),
            ("system", ["s", "s", "s", "", ""]),
            ("alerts", ["s", "s", "s", "", ""]),
            ("anything/else.here", ["sp", "sp", "s", "s", "s"]),
        ];
        let roles = ["admin", "developer", "viewer", "bot", "anonymous"];
        for (topic, row) in matrix {
            for (role, expect) in roles.iter().zip(row) {
                assert_eq!(
                    allowed(&rules, role, topic, Action::Subscribe),
                    expect.contains('s'),
                    "{role} subscribe {topic}"
                );
                assert_eq!(
                    allowed(&rules, role, topic, Action::Publish),
                    expect.contains('p'),
                    "{role} publish {topic}"
                );
            }
        }
    }

    #[test]
    fn no_matching_rule_is_unknown_channel() {
        let mut config = Config::default();
        config.topics.retain(|r| r.r#match != "*");
        let rules = TopicRules::new(&config).expect("compiles");
        let err = rules.check(
            &identity("admin"),
            &Topic::parse("other").expect("valid"),
            Action::Subscribe,
        );
        assert_eq!(err, Err(Denied::UnknownChannel));
    }
}
