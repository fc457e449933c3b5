//! Counters of what the hub refused and why: read by `/ws/status`, and the numbers a
//! metrics exporter publishes. Plain atomics: counting costs one relaxed add.

use crate::session::rate_limit::BucketKind;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU64, Ordering};

/// Process-wide counters.
#[derive(Debug, Default)]
pub struct Stats {
    rate_limited: [AtomicU64; 4],
    abuse_closes: AtomicU64,
}

fn index(bucket: BucketKind) -> usize {
    match bucket {
        BucketKind::Ping => 0,
        BucketKind::Subscribe => 1,
        BucketKind::Unsubscribe => 2,
        BucketKind::Default => 3,
    }
}

impl Stats {
    /// A request refused with `rate_limited`.
    pub fn rate_limited(&self, bucket: BucketKind) {
        self.rate_limited[index(bucket)].fetch_add(1, Ordering::Relaxed);
    }

    /// A connection closed with 1008 for too many refusals.
    pub fn abuse_close(&self) {
        self.abuse_closes.fetch_add(1, Ordering::Relaxed);
    }

    /// Refusals of one bucket so far.
    pub fn rate_limited_count(&self, bucket: BucketKind) -> u64 {
        self.rate_limited[index(bucket)].load(Ordering::Relaxed)
    }

    /// The counters as the `counters` object of `/ws/status`.
    pub fn to_json(&self) -> Value {
        let hits = |b| self.rate_limited_count(b);
        json!({
            "rate_limited": {
                "ping": hits(BucketKind::Ping),
                "subscribe": hits(BucketKind::Subscribe),
                "unsubscribe": hits(BucketKind::Unsubscribe),
                "default": hits(BucketKind::Default),
            },
            "abuse_closes": self.abuse_closes.load(Ordering::Relaxed),
        })
    }
}
