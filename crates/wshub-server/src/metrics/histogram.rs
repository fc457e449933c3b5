//! A histogram that observes without a lock: one relaxed atomic add per bucket hit.
//!
//! `prometheus-client`'s own histogram takes a mutex on every observation; on the delivery
//! path that would be a lock per message written. Here the bucket bounds are fixed when
//! the histogram is made, each bucket is an `AtomicU64`, and the sum is kept in
//! nanounits (an integer), so observing is a bucket search plus two atomic adds. The
//! writer of a connection gathers a whole batch in a [`LocalHistogram`] first and merges
//! it with one add per touched bucket.

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Sums are kept in billionths of the unit, so seconds are summed in nanoseconds.
const SUM_SCALE: f64 = 1e9;

/// Bucket bounds for WebSocket latencies, in seconds: 50 µs to 10 s.
pub const LATENCY_SECONDS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Bucket bounds for connection lifetimes, in seconds: 1 s to 1 day.
pub const DURATION_SECONDS: &[f64] = &[1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3_600.0, 14_400.0, 86_400.0];

/// Bucket bounds for message sizes, in bytes: 64 B to 1 MiB.
pub const SIZE_BYTES: &[f64] = &[
    64.0,
    256.0,
    1_024.0,
    4_096.0,
    16_384.0,
    65_536.0,
    262_144.0,
    1_048_576.0,
];

/// A fixed-bucket histogram, cheap to clone (the counts are shared).
#[derive(Debug, Clone)]
pub struct AtomicHistogram {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    bounds: &'static [f64],
    /// One count per bound, plus the `+Inf` bucket; not cumulative.
    counts: Box<[AtomicU64]>,
    sum_nanos: AtomicU64,
}

impl AtomicHistogram {
    /// A histogram with these upper bounds (ascending; `+Inf` is implied).
    pub fn new(bounds: &'static [f64]) -> AtomicHistogram {
        debug_assert!(bounds.windows(2).all(|w| w[0] < w[1]), "bounds must ascend");
        AtomicHistogram {
            inner: Arc::new(Inner {
                bounds,
                counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
                sum_nanos: AtomicU64::new(0),
            }),
        }
    }

    /// Records one value.
    pub fn observe(&self, value: f64) {
        let bucket = bucket_of(self.inner.bounds, value);
        self.inner.counts[bucket].fetch_add(1, Ordering::Relaxed);
        self.inner.sum_nanos.fetch_add(scaled(value), Ordering::Relaxed);
    }

    /// An empty local accumulator with the same buckets.
    pub fn local(&self) -> LocalHistogram {
        LocalHistogram::new(self.inner.bounds)
    }

    /// Adds what `local` gathered, then empties it.
    pub fn merge(&self, local: &mut LocalHistogram) {
        for (bucket, count) in local.counts.iter().enumerate() {
            if *count > 0 {
                self.inner.counts[bucket].fetch_add(*count, Ordering::Relaxed);
            }
        }
        // Allocated again at the next observation: an idle writer keeps no counts.
        local.counts = Vec::new();
        self.inner
            .sum_nanos
            .fetch_add(std::mem::take(&mut local.sum_nanos), Ordering::Relaxed);
    }

    /// Count, sum and cumulative buckets `(upper bound, count ≤ bound)`, the last `+Inf`.
    pub fn read(&self) -> HistogramReading {
        let mut cumulative = 0;
        let mut buckets = Vec::with_capacity(self.inner.counts.len());
        for (i, count) in self.inner.counts.iter().enumerate() {
            cumulative += count.load(Ordering::Relaxed);
            let bound = self.inner.bounds.get(i).copied().unwrap_or(f64::INFINITY);
            buckets.push((bound, cumulative));
        }
        HistogramReading {
            count: cumulative,
            sum: self.inner.sum_nanos.load(Ordering::Relaxed) as f64 / SUM_SCALE,
            buckets,
        }
    }
}

/// A point-in-time reading of an [`AtomicHistogram`].
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramReading {
    /// Values observed.
    pub count: u64,
    /// Their sum.
    pub sum: f64,
    /// Cumulative counts per upper bound, ending with `+Inf`.
    pub buckets: Vec<(f64, u64)>,
}

impl HistogramReading {
    /// What was observed since `earlier` (a reading of the same histogram).
    pub fn since(&self, earlier: &HistogramReading) -> HistogramReading {
        HistogramReading {
            count: self.count.saturating_sub(earlier.count),
            sum: (self.sum - earlier.sum).max(0.0),
            buckets: self
                .buckets
                .iter()
                .zip(&earlier.buckets)
                .map(|(&(bound, now), &(_, then))| (bound, now.saturating_sub(then)))
                .collect(),
        }
    }

    /// The `q` quantile (0–1), interpolated linearly inside its bucket as Prometheus'
    /// `histogram_quantile` does; `None` when nothing was observed. A quantile in the
    /// `+Inf` bucket is reported as the highest finite bound.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * self.count as f64;
        let mut lower_bound = 0.0;
        let mut below = 0;
        for &(bound, cumulative) in &self.buckets {
            if cumulative as f64 >= rank && cumulative > below {
                if bound.is_infinite() {
                    return Some(lower_bound);
                }
                let in_bucket = (cumulative - below) as f64;
                let fraction = (rank - below as f64) / in_bucket;
                return Some(lower_bound + (bound - lower_bound) * fraction.clamp(0.0, 1.0));
            }
            if bound.is_finite() {
                lower_bound = bound;
            }
            below = cumulative;
        }
        Some(lower_bound)
    }
}

/// Observations gathered by one task before a single [`AtomicHistogram::merge`].
#[derive(Debug, Clone)]
pub struct LocalHistogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum_nanos: u64,
}

impl LocalHistogram {
    /// An empty accumulator for a histogram with these bucket bounds.
    pub fn new(bounds: &'static [f64]) -> LocalHistogram {
        LocalHistogram {
            bounds,
            // Allocated at the first observation: every connection's writer has a few of
            // these, and an idle one observes nothing.
            counts: Vec::new(),
            sum_nanos: 0,
        }
    }

    /// Records one value locally.
    pub fn observe(&mut self, value: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; self.bounds.len() + 1];
        }
        self.counts[bucket_of(self.bounds, value)] += 1;
        self.sum_nanos = self.sum_nanos.saturating_add(scaled(value));
    }

    /// Moves everything `other` holds into this one (same buckets), emptying `other`.
    pub fn absorb(&mut self, other: &mut LocalHistogram) {
        if self.counts.is_empty() {
            // Nothing here yet: take `other`'s counts as they are.
            std::mem::swap(&mut self.counts, &mut other.counts);
            self.sum_nanos = std::mem::take(&mut other.sum_nanos);
            return;
        }
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts.iter_mut()) {
            *mine += std::mem::take(theirs);
        }
        self.sum_nanos = self.sum_nanos.saturating_add(std::mem::take(&mut other.sum_nanos));
    }

    /// Forgets what was observed.
    pub fn clear(&mut self) {
        self.counts.fill(0);
        self.sum_nanos = 0;
    }
}

fn bucket_of(bounds: &[f64], value: f64) -> usize {
    bounds.partition_point(|&bound| bound < value)
}

fn scaled(value: f64) -> u64 {
    // Negative and NaN values (a clock step) count as zero instead of corrupting the sum.
    (value.max(0.0) * SUM_SCALE) as u64
}

impl TypedMetric for AtomicHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for AtomicHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let reading = self.read();
        encoder.encode_histogram::<NoLabelSet>(reading.sum, reading.count, &reading.buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_that_holds_them() {
        let h = AtomicHistogram::new(&[1.0, 2.0, 5.0]);
        for v in [0.5, 1.0, 1.5, 5.0, 7.0] {
            h.observe(v);
        }
        let r = h.read();
        assert_eq!(r.count, 5);
        assert_eq!(r.buckets, vec![(1.0, 2), (2.0, 3), (5.0, 4), (f64::INFINITY, 5)]);
        assert!((r.sum - 15.0).abs() < 1e-6);
    }

    #[test]
    fn a_merged_local_histogram_equals_direct_observations() {
        let direct = AtomicHistogram::new(LATENCY_SECONDS);
        let merged = AtomicHistogram::new(LATENCY_SECONDS);
        let mut local = merged.local();
        for v in [0.000_02, 0.003, 0.003, 0.7, 30.0] {
            direct.observe(v);
            local.observe(v);
        }
        merged.merge(&mut local);
        assert_eq!(direct.read(), merged.read());
        // The local accumulator is empty again.
        merged.merge(&mut local);
        assert_eq!(direct.read(), merged.read());
    }

    #[test]
    fn quantiles_interpolate_within_buckets() {
        let h = AtomicHistogram::new(&[1.0, 2.0, 4.0]);
        assert_eq!(h.read().quantile(0.5), None);
        for _ in 0..50 {
            h.observe(0.5);
        }
        for _ in 0..50 {
            h.observe(3.0);
        }
        let r = h.read();
        assert_eq!(r.quantile(0.5), Some(1.0));
        // The 99th value lies in (2, 4]: 49 of its 50 values are below it.
        let p99 = r.quantile(0.99).expect("observed");
        assert!((p99 - (2.0 + 2.0 * 49.0 / 50.0)).abs() < 1e-9, "{p99}");
    }

    #[test]
    fn a_reading_since_an_earlier_one_is_the_difference() {
        let h = AtomicHistogram::new(&[1.0]);
        h.observe(0.5);
        let earlier = h.read();
        h.observe(2.0);
        let delta = h.read().since(&earlier);
        assert_eq!(delta.count, 1);
        assert_eq!(delta.buckets, vec![(1.0, 0), (f64::INFINITY, 1)]);
        assert_eq!(delta.quantile(0.5), Some(1.0));
    }

    #[test]
    fn negative_and_nan_values_do_not_corrupt_the_sum() {
        let h = AtomicHistogram::new(&[1.0]);
        h.observe(-3.0);
        h.observe(f64::NAN);
        let r = h.read();
        assert_eq!(r.count, 2);
        assert_eq!(r.sum, 0.0);
    }
}
