//! Small values with a lifetime, for one process: the data structure behind the memory
//! engine's records (reconnection tokens' single use, resumable state, revocations).

use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug)]
struct Record {
    value: Bytes,
    expires: Instant,
}

/// Records by key, each dropped once its lifetime is over.
#[derive(Debug, Default)]
pub(crate) struct RecordTable {
    records: Mutex<HashMap<String, Record>>,
}

impl RecordTable {
    /// Creates `key` unless a live record holds it; `true` when this call created it.
    pub(crate) fn claim(&self, key: &str, ttl: Duration, now: Instant) -> bool {
        let mut records = self.records.lock();
        if records.get(key).is_some_and(|r| r.expires > now) {
            return false;
        }
        records.insert(
            key.to_owned(),
            Record {
                value: Bytes::new(),
                expires: now + ttl,
            },
        );
        true
    }

    pub(crate) fn put(&self, key: &str, value: Bytes, ttl: Duration, now: Instant) {
        self.records.lock().insert(
            key.to_owned(),
            Record {
                value,
                expires: now + ttl,
            },
        );
    }

    pub(crate) fn get(&self, key: &str, now: Instant) -> Option<Bytes> {
        self.records
            .lock()
            .get(key)
            .filter(|r| r.expires > now)
            .map(|r| r.value.clone())
    }

    /// Drops expired records, so memory follows the live ones only.
    pub(crate) fn sweep(&self, now: Instant) {
        self.records.lock().retain(|_, r| r.expires > now);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.records.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_claimed_once_until_it_expires() {
        let table = RecordTable::default();
        let now = Instant::now();
        let ttl = Duration::from_secs(10);
        assert!(table.claim("k", ttl, now));
        assert!(!table.claim("k", ttl, now + Duration::from_secs(9)));
        assert!(table.claim("k", ttl, now + ttl), "expired keys can be claimed again");
    }

    #[test]
    fn values_expire_and_are_swept() {
        let table = RecordTable::default();
        let now = Instant::now();
        table.put("v", Bytes::from_static(b"x"), Duration::from_secs(5), now);
        assert_eq!(table.get("v", now), Some(Bytes::from_static(b"x")));
        assert_eq!(table.get("v", now + Duration::from_secs(5)), None);
        table.sweep(now + Duration::from_secs(5));
        assert_eq!(table.len(), 0);
    }
}
