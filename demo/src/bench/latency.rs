//! Latency samples in a form that crosses a process boundary.
//!
//! [`LatencyHistogram`] (messenger-core) computes the percentiles the report prints, but keeps
//! its counts private. [`Buckets`] counts samples in exactly its buckets
//! ([`LatencyHistogram::bucket_of`]), can be written as JSON by a `bench-member` process and read
//! back by the parent, and replays itself into a [`LatencyHistogram`]: the percentiles are the
//! ones the histogram would give had it seen the samples itself, and the maximum is exact.

use messenger_core::LatencyHistogram;
use serde_json::{json, Value};

/// Buckets, as in [`LatencyHistogram`]: samples past the last one count in it.
const LEN: usize = LatencyHistogram::BUCKETS;

/// Counts of latency samples in microseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Buckets {
    /// Empty until the first sample.
    counts: Vec<u64>,
    count: u64,
    max: u64,
}

fn bucket(v: u64) -> usize {
    LatencyHistogram::bucket_of(v)
}

/// The smallest value of bucket `b`.
fn bucket_value(b: usize) -> u64 {
    LatencyHistogram::bucket_floor(b)
}

impl Buckets {
    pub fn record(&mut self, micros: u64) {
        self.record_n(micros, 1);
    }

    /// Records `n` samples of the same value.
    pub fn record_n(&mut self, micros: u64, n: u64) {
        if n == 0 {
            return;
        }
        if self.counts.is_empty() {
            self.counts = vec![0; LEN];
        }
        self.counts[bucket(micros)] += n;
        self.count += n;
        self.max = self.max.max(micros);
    }

    pub fn merge(&mut self, other: &Buckets) {
        if other.count == 0 {
            return;
        }
        if self.counts.is_empty() {
            self.counts = vec![0; LEN];
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.count += other.count;
        self.max = self.max.max(other.max);
    }

    /// The same samples in a [`LatencyHistogram`], for its percentiles.
    pub fn to_histogram(&self) -> LatencyHistogram {
        let mut h = LatencyHistogram::default();
        let max_bucket = bucket(self.max);
        for (b, &n) in self.counts.iter().enumerate().filter(|(_, &n)| n > 0) {
            let (n, exact_max) = if b == max_bucket {
                (n - 1, true)
            } else {
                (n, false)
            };
            let v = bucket_value(b);
            for _ in 0..n {
                h.record(v);
            }
            if exact_max {
                h.record(self.max);
            }
        }
        h
    }

    /// `{"max": µs, "buckets": [[index, count], ...]}`, non-empty buckets only.
    pub fn to_json(&self) -> Value {
        let buckets: Vec<Value> = self
            .counts
            .iter()
            .enumerate()
            .filter(|(_, &n)| n > 0)
            .map(|(b, &n)| json!([b, n]))
            .collect();
        json!({ "max": self.max, "buckets": buckets })
    }

    /// Reads what [`Buckets::to_json`] wrote; `None` if it is malformed.
    pub fn from_json(v: &Value) -> Option<Buckets> {
        let mut out = Buckets::default();
        for pair in v.get("buckets")?.as_array()? {
            let b = usize::try_from(pair.get(0)?.as_u64()?).ok()?;
            let n = pair.get(1)?.as_u64()?;
            if b > bucket(u64::MAX) {
                return None;
            }
            out.record_n(bucket_value(b), n);
        }
        if out.count > 0 {
            out.max = v.get("max")?.as_u64()?;
        }
        Some(out)
    }
}

/// p50, p90, p99 and max in milliseconds, and the number of samples.
pub fn summary(h: &LatencyHistogram) -> Value {
    let ms = |micros: u64| micros as f64 / 1000.0;
    json!({
        "p50_ms": ms(h.percentile(0.5)),
        "p90_ms": ms(h.percentile(0.9)),
        "p99_ms": ms(h.percentile(0.99)),
        "max_ms": ms(h.max()),
        "samples": h.count(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_give_the_histograms_percentiles_and_survive_json() {
        let mut direct = LatencyHistogram::default();
        let mut buckets = Buckets::default();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for i in 0..20_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Mostly small values, a long tail, and a few past the last bucket.
            let v = match i % 100 {
                0 => x % (1 << 40),
                1..=9 => x % 100_000,
                _ => x % 400,
            };
            direct.record(v);
            buckets.record(v);
        }
        let back = Buckets::from_json(&buckets.to_json()).expect("parses");
        assert_eq!(back, buckets);
        let replayed = back.to_histogram();
        assert_eq!(replayed.count(), direct.count());
        assert_eq!(replayed.max(), direct.max());
        for q in [0.0, 0.1, 0.5, 0.9, 0.99, 0.999, 1.0] {
            assert_eq!(replayed.percentile(q), direct.percentile(q), "q = {q}");
        }
        for b in 0..=bucket(u64::MAX) {
            assert_eq!(bucket(bucket_value(b)), b);
        }
    }

    #[test]
    fn merged_buckets_count_everything() {
        let mut a = Buckets::default();
        let mut b = Buckets::default();
        a.record_n(10, 3);
        b.record(5000);
        a.merge(&b);
        a.merge(&Buckets::default());
        assert_eq!(a.to_histogram().count(), 4);
        assert_eq!(a.to_histogram().max(), 5000);
        assert_eq!(Buckets::default().to_histogram().count(), 0);
    }
}
