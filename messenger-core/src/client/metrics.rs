//! Delivery metrics of one client: messages sent and received, and a latency histogram
//! (send to delivery) with bounded memory.

use std::time::{Duration, Instant};

use crate::protocol::wire::MetricsReport;

/// Log-linear histogram of microseconds: 16 sub-buckets per power of two, so any percentile
/// is within about 6 % of the true value, in a fixed 1 KiB-ish table whatever the run length.
#[derive(Debug, Clone)]
pub struct LatencyHistogram {
    buckets: Vec<u64>,
    count: u64,
    sum: u128,
    max: u64,
}

const SUB: u64 = 16;

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram {
            buckets: vec![0; Self::BUCKETS],
            count: 0,
            sum: 0,
            max: 0,
        }
    }
}

impl LatencyHistogram {
    /// Number of buckets; samples past the last one count in it.
    pub const BUCKETS: usize = 64 * SUB as usize;

    /// The bucket a sample of `micros` falls in (for code that counts samples elsewhere, in
    /// the same buckets, and replays them with [`LatencyHistogram::record`]).
    pub fn bucket_of(micros: u64) -> usize {
        Self::bucket(micros).min(Self::BUCKETS - 1)
    }

    /// The smallest value of bucket `b` (what a percentile reports for it).
    pub fn bucket_floor(b: usize) -> u64 {
        Self::bucket_value(b)
    }

    fn bucket(v: u64) -> usize {
        if v < SUB {
            return v as usize;
        }
        let exp = 63 - v.leading_zeros() as u64; // v in [2^exp, 2^(exp+1))
        let sub = (v >> (exp - 4)) & (SUB - 1);
        ((exp - 3) * SUB + sub) as usize
    }

    /// The smallest value of a bucket (what a percentile reports).
    fn bucket_value(b: usize) -> u64 {
        let b = b as u64;
        if b < SUB {
            return b;
        }
        let exp = b / SUB + 3;
        let sub = b % SUB;
        (1 << exp) | (sub << (exp - 4))
    }

    pub fn record(&mut self, micros: u64) {
        let b = Self::bucket(micros).min(self.buckets.len() - 1);
        self.buckets[b] += 1;
        self.count += 1;
        self.sum += micros as u128;
        self.max = self.max.max(micros);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// Adds every sample of `other`.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
        self.count += other.count;
        self.sum += other.sum;
        self.max = self.max.max(other.max);
    }

    pub fn mean(&self) -> u64 {
        if self.count == 0 {
            0
        } else {
            (self.sum / self.count as u128) as u64
        }
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value below which a fraction `q` (0..=1) of the samples lie.
    pub fn percentile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let target = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        if target >= self.count {
            return self.max;
        }
        let mut seen = 0;
        for (b, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= target {
                return Self::bucket_value(b).min(self.max);
            }
        }
        self.max
    }
}

/// Everything a client counts.
#[derive(Debug, Clone)]
pub struct Metrics {
    pub started: Instant,
    pub sent: u64,
    pub received: u64,
    pub dropped_datagrams: u64,
    /// Sends that found their group's send window full and waited for room.
    pub window_waits: u64,
    pub latency: LatencyHistogram,
}

impl Metrics {
    pub fn new(started: Instant) -> Self {
        Metrics {
            started,
            sent: 0,
            received: 0,
            dropped_datagrams: 0,
            window_waits: 0,
            latency: LatencyHistogram::default(),
        }
    }

    pub fn report(&self, now: Instant) -> MetricsReport {
        MetricsReport {
            sent: self.sent,
            received: self.received,
            elapsed_micros: now.saturating_duration_since(self.started).as_micros() as u64,
            latency_mean_micros: self.latency.mean(),
            latency_p50_micros: self.latency.percentile(0.5),
            latency_p99_micros: self.latency.percentile(0.99),
            latency_max_micros: self.latency.max(),
            dropped_datagrams: self.dropped_datagrams,
        }
    }

    /// What the application sees: the report the tracker gets, and the counts only this
    /// client keeps.
    pub fn snapshot(&self, now: Instant) -> MetricsSnapshot {
        MetricsSnapshot::new(&self.report(now), self.window_waits)
    }
}

/// A client's metrics as the application sees them.
///
/// More figures may be added (`#[non_exhaustive]`); outside this crate, build one from
/// [`MetricsSnapshot::default`] (all zero) field by field.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[non_exhaustive]
pub struct MetricsSnapshot {
    pub sent: u64,
    pub received: u64,
    /// `sent + received`.
    pub total: u64,
    pub elapsed: Duration,
    /// Messages (sent and received) per second since the client connected.
    pub throughput: f64,
    pub latency_mean: Duration,
    pub latency_p50: Duration,
    pub latency_p99: Duration,
    pub latency_max: Duration,
    pub dropped_datagrams: u64,
    /// Sends that found their group's send window full and waited for room (the application
    /// sends faster than the slowest member acknowledges).
    pub window_waits: u64,
}

impl MetricsSnapshot {
    /// The figures of a report to the tracker, with the counts a report does not carry.
    pub fn new(r: &MetricsReport, window_waits: u64) -> Self {
        let elapsed = Duration::from_micros(r.elapsed_micros);
        let total = r.sent + r.received;
        let secs = elapsed.as_secs_f64();
        MetricsSnapshot {
            sent: r.sent,
            received: r.received,
            total,
            elapsed,
            throughput: if secs > 0.0 { total as f64 / secs } else { 0.0 },
            latency_mean: Duration::from_micros(r.latency_mean_micros),
            latency_p50: Duration::from_micros(r.latency_p50_micros),
            latency_p99: Duration::from_micros(r.latency_p99_micros),
            latency_max: Duration::from_micros(r.latency_max_micros),
            dropped_datagrams: r.dropped_datagrams,
            window_waits,
        }
    }
}

impl std::fmt::Display for MetricsSnapshot {
    /// The metrics block the chat prints on exit.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        writeln!(f, "-----Performance analytics -----")?;
        writeln!(f, "System throughput = {:.2} messages/sec", self.throughput)?;
        writeln!(
            f,
            "System latency = {:.3} ms (p50 {:.3} ms, p99 {:.3} ms)",
            ms(self.latency_mean),
            ms(self.latency_p50),
            ms(self.latency_p99)
        )?;
        write!(
            f,
            "Messages sent = {} / Messages received = {} / Total messages = {}",
            self.sent, self.received, self.total
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_within_the_bucket_precision() {
        let mut h = LatencyHistogram::default();
        for v in 1..=10_000u64 {
            h.record(v);
        }
        let p50 = h.percentile(0.5) as f64;
        let p99 = h.percentile(0.99) as f64;
        assert!((p50 - 5_000.0).abs() / 5_000.0 < 0.07, "{p50}");
        assert!((p99 - 9_900.0).abs() / 9_900.0 < 0.07, "{p99}");
        assert_eq!(h.mean(), 5_000);
        assert_eq!(h.max(), 10_000);
        assert_eq!(h.count(), 10_000);
    }

    #[test]
    fn merging_adds_every_sample() {
        let (mut a, mut b) = (LatencyHistogram::default(), LatencyHistogram::default());
        for v in 1..=100 {
            a.record(v);
            b.record(v + 100);
        }
        a.merge(&b);
        assert_eq!(a.count(), 200);
        assert_eq!(a.max(), 200);
        assert_eq!(a.mean(), 100);
    }

    #[test]
    fn empty_and_extreme_values() {
        let mut h = LatencyHistogram::default();
        assert_eq!(h.percentile(0.99), 0);
        h.record(0);
        h.record(u64::MAX);
        assert_eq!(h.percentile(0.5), 0);
        assert_eq!(h.percentile(1.0), h.max());
    }

    #[test]
    fn metrics_block_has_the_documented_lines() {
        let report = MetricsReport {
            sent: 3,
            received: 5,
            elapsed_micros: 2_000_000,
            latency_mean_micros: 1_500,
            ..MetricsReport::default()
        };
        let s = MetricsSnapshot::new(&report, 0);
        let text = s.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "-----Performance analytics -----");
        assert_eq!(lines[1], "System throughput = 4.00 messages/sec");
        assert!(lines[2].starts_with("System latency = 1.500 ms"));
        assert_eq!(
            lines[3],
            "Messages sent = 3 / Messages received = 5 / Total messages = 8"
        );
    }
}
