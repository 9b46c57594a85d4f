//! What the tracker logs when a client's session ends: its delivery metrics, as one human line
//! and one JSON line, both under [`METRICS_TARGET`]; the JSON line also goes to a file when
//! configured.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;

use crate::protocol::tracker::Departure;
use crate::protocol::wire::MetricsReport;

/// `tracing` target of joins, leaves, refusals, protocol violations and failures.
pub const TRACKER_TARGET: &str = "messenger::tracker";
/// `tracing` target of the metrics of clients whose session ended.
pub const METRICS_TARGET: &str = "messenger::metrics";

/// The metrics of one client at the end of its session, in the units the logs use.
///
/// ```
/// use messenger_core::protocol::tracker::Departure;
/// use messenger_core::protocol::wire::MetricsReport;
/// use messenger_core::tracker::MetricsRecord;
///
/// let report = MetricsReport {
///     sent: 10,
///     received: 20,
///     elapsed_micros: 2_400_000,
///     latency_mean_micros: 420,
///     latency_p50_micros: 300,
///     latency_p99_micros: 1_200,
///     ..MetricsReport::default()
/// };
/// let record = MetricsRecord::new("alice", Departure::Quit, &report);
/// assert_eq!(
///     record.human_line(),
///     "metrics alice: sent 10, received 20, total 30, throughput 12.5 msg/s, \
///      latency mean 0.42 ms p50 0.30 ms p99 1.20 ms (quit)"
/// );
/// assert!(record.json_line().starts_with(r#"{"user":"alice","reason":"quit","sent":10,"#));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricsRecord {
    pub user: String,
    /// `"quit"`, `"dropped"` or `"disconnected"`.
    pub reason: &'static str,
    pub sent: u64,
    pub received: u64,
    pub total: u64,
    /// (sent + received) / elapsed seconds; 0 when no time has elapsed.
    pub throughput_msgs_per_sec: f64,
    pub latency_mean_ms: f64,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub elapsed_s: f64,
}

impl MetricsRecord {
    /// The record of `user`'s session, which ended for `reason`, from its last report.
    pub fn new(user: &str, reason: Departure, report: &MetricsReport) -> Self {
        let total = report.sent.saturating_add(report.received);
        let elapsed_s = report.elapsed_micros as f64 / 1e6;
        let throughput = if report.elapsed_micros == 0 {
            0.0
        } else {
            total as f64 / elapsed_s
        };
        let ms = |micros: u64| micros as f64 / 1e3;
        MetricsRecord {
            user: user.to_owned(),
            reason: reason.as_str(),
            sent: report.sent,
            received: report.received,
            total,
            throughput_msgs_per_sec: (throughput * 1e3).round() / 1e3,
            latency_mean_ms: ms(report.latency_mean_micros),
            latency_p50_ms: ms(report.latency_p50_micros),
            latency_p99_ms: ms(report.latency_p99_micros),
            elapsed_s,
        }
    }

    /// `metrics alice: sent 10, received 20, total 30, throughput 12.5 msg/s, latency mean
    /// 0.42 ms p50 0.30 ms p99 1.20 ms (quit)`, on one line.
    pub fn human_line(&self) -> String {
        format!(
            "metrics {}: sent {}, received {}, total {}, throughput {:.1} msg/s, \
             latency mean {:.2} ms p50 {:.2} ms p99 {:.2} ms ({})",
            self.user,
            self.sent,
            self.received,
            self.total,
            self.throughput_msgs_per_sec,
            self.latency_mean_ms,
            self.latency_p50_ms,
            self.latency_p99_ms,
            self.reason
        )
    }

    /// The record as one line of JSON (no newline).
    pub fn json_line(&self) -> String {
        // Every field is a string, an integer or a finite float: serialization cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Writes metrics records: two `tracing` events each, and the JSON line to a file if one is
/// configured.
#[derive(Debug)]
pub(crate) struct MetricsLog {
    file: Option<(PathBuf, Mutex<File>)>,
}

impl MetricsLog {
    /// Opens (creating, appending) the JSON file, if any.
    pub(crate) fn open(path: Option<&Path>) -> io::Result<Self> {
        let file = match path {
            Some(path) => {
                let file = OpenOptions::new().create(true).append(true).open(path)?;
                Some((path.to_owned(), Mutex::new(file)))
            }
            None => None,
        };
        Ok(MetricsLog { file })
    }

    /// Logs the metrics of `user`, whose session ended for `reason`.
    pub(crate) fn record(&self, user: &str, reason: Departure, report: &MetricsReport) {
        let record = MetricsRecord::new(user, reason, report);
        let json = record.json_line();
        tracing::info!(target: METRICS_TARGET, "{}", record.human_line());
        tracing::info!(target: METRICS_TARGET, "{json}");
        if let Some((path, file)) = &self.file {
            // One short append per session end; blocking the task for it is cheaper than a
            // thread hop. A single write of the whole line keeps lines whole under O_APPEND.
            let mut line = json.into_bytes();
            line.push(b'\n');
            let mut file = file.lock().unwrap_or_else(|e| e.into_inner());
            if let Err(e) = file.write_all(&line) {
                tracing::warn!(
                    target: TRACKER_TARGET,
                    path = %path.display(),
                    error = %e,
                    "cannot append to the metrics file"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_elapsed_means_zero_throughput() {
        let r = MetricsRecord::new(
            "bob",
            Departure::Dropped,
            &MetricsReport {
                sent: 5,
                ..MetricsReport::default()
            },
        );
        assert_eq!(r.throughput_msgs_per_sec, 0.0);
        assert_eq!(r.total, 5);
        assert!(r.human_line().ends_with("(dropped)"));
        let v: serde_json::Value = serde_json::from_str(&r.json_line()).expect("json");
        assert_eq!(v["user"], "bob");
        assert_eq!(v["reason"], "dropped");
        assert_eq!(v["sent"], 5);
        assert_eq!(v["received"], 0);
        assert_eq!(v["total"], 5);
        assert_eq!(v["throughput_msgs_per_sec"], 0.0);
        assert_eq!(v["elapsed_s"], 0.0);
        for key in ["latency_mean_ms", "latency_p50_ms", "latency_p99_ms"] {
            assert_eq!(v[key], 0.0, "{key}");
        }
    }

    #[test]
    fn json_has_every_field() {
        let r = MetricsRecord::new(
            "carol",
            Departure::Disconnected,
            &MetricsReport {
                sent: 3,
                received: 4,
                elapsed_micros: 2_000_000,
                latency_mean_micros: 1_500,
                latency_p50_micros: 1_000,
                latency_p99_micros: 9_990,
                latency_max_micros: 12_000,
                dropped_datagrams: 1,
            },
        );
        let v: serde_json::Value = serde_json::from_str(&r.json_line()).expect("json");
        assert_eq!(v["reason"], "disconnected");
        assert_eq!(v["throughput_msgs_per_sec"], 3.5);
        assert_eq!(v["latency_mean_ms"], 1.5);
        assert_eq!(v["latency_p50_ms"], 1.0);
        assert_eq!(v["latency_p99_ms"], 9.99);
        assert_eq!(v["elapsed_s"], 2.0);
        assert_eq!(v.as_object().map(|o| o.len()), Some(10));
    }
}
