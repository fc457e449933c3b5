//! Who is on each topic, for one process: the data structure behind the memory engine's presence.

use crate::traits::{PresenceMember, PresencePage};
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use wshub_protocol::{ConnectionId, Topic};

/// Members per topic. Only topics whose rule enables presence ever get here, so one
/// lock is enough; members are kept ordered by connection id so pages are stable.
#[derive(Debug, Default)]
pub(crate) struct PresenceTable {
    topics: Mutex<HashMap<Topic, BTreeMap<ConnectionId, PresenceMember>>>,
}

impl PresenceTable {
    pub(crate) fn join(&self, topic: &Topic, member: PresenceMember) {
        self.topics
            .lock()
            .entry(topic.clone())
            .or_default()
            .insert(member.connection_id.clone(), member);
    }

    pub(crate) fn leave(&self, topic: &Topic, connection: &ConnectionId) {
        let mut topics = self.topics.lock();
        if let Some(members) = topics.get_mut(topic) {
            members.remove(connection);
            if members.is_empty() {
                topics.remove(topic);
            }
        }
    }

    pub(crate) fn page(&self, topic: &Topic, limit: usize) -> PresencePage {
        let topics = self.topics.lock();
        let Some(members) = topics.get(topic) else {
            return PresencePage {
                count: 0,
                clients: Vec::new(),
                truncated: false,
            };
        };
        PresencePage {
            count: members.len(),
            clients: members.values().take(limit).cloned().collect(),
            truncated: members.len() > limit,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str) -> PresenceMember {
        PresenceMember {
            connection_id: ConnectionId::new(id),
            user: Some(format!("user-{id}")),
            client_id: None,
        }
    }

    #[test]
    fn join_leave_and_cap() {
        let table = PresenceTable::default();
        let t = Topic::parse("room").expect("valid");
        for id in ["c", "a", "b"] {
            table.join(&t, member(id));
        }
        table.join(&t, member("a"));
        let page = table.page(&t, 2);
        assert_eq!(page.count, 3);
        assert!(page.truncated);
        let ids: Vec<&str> = page.clients.iter().map(|m| m.connection_id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        table.leave(&t, &ConnectionId::new("a"));
        table.leave(&t, &ConnectionId::new("b"));
        table.leave(&t, &ConnectionId::new("c"));
        assert_eq!(table.page(&t, 10).count, 0);
        assert!(table.topics.lock().is_empty(), "an empty topic is forgotten");
    }
}
