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
    /// Why the tracker does not believe the report (a rate or latency above its bounds,
    /// counts that went down); such a record is logged as rejected, not as the client's
    /// metrics. Absent from the JSON line when the report is plausible.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejected: Option<String>,
}

/// The bounds a self-reported [`MetricsReport`] must stay within to be logged as given.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Plausibility {
    /// Messages per second.
    pub(crate) max_rate: f64,
    pub(crate) max_latency_micros: u64,
}

impl Plausibility {
    /// Why `report` cannot be true, if it cannot.
    pub(crate) fn check(&self, report: &MetricsReport) -> Option<String> {
        let record = MetricsRecord::new("", Departure::Quit, report);
        if record.throughput_msgs_per_sec > self.max_rate {
            return Some(format!(
                "throughput {:.3e} msg/s is above the bound of {:.3e} (max_plausible_rate)",
                record.throughput_msgs_per_sec, self.max_rate
            ));
        }
        if report.elapsed_micros == 0 && record.total > 0 {
            return Some(format!(
                "{} messages in no time at all (max_plausible_rate)",
                record.total
            ));
        }
        let latencies = [
            ("mean", report.latency_mean_micros),
            ("p50", report.latency_p50_micros),
            ("p99", report.latency_p99_micros),
            ("max", report.latency_max_micros),
        ];
        for (name, micros) in latencies {
            if micros > self.max_latency_micros {
                return Some(format!(
                    "latency {name} of {} s is above the bound of {} s (max_plausible_latency)",
                    micros / 1_000_000,
                    self.max_latency_micros / 1_000_000
                ));
            }
        }
        None
    }
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
            rejected: None,
        }
    }

    /// `metrics alice: sent 10, received 20, total 30, throughput 12.5 msg/s, latency mean
    /// 0.42 ms p50 0.30 ms p99 1.20 ms (quit)`, on one line.
    ///
    /// A rejected record says so first: `metrics alice REJECTED (why): reported sent ...`.
    pub fn human_line(&self) -> String {
        if let Some(why) = &self.rejected {
            return format!(
                "metrics {} REJECTED ({why}): reported sent {}, received {}, elapsed {:.3} s, \
                 latency p99 {:.2} ms ({})",
                self.user,
                self.sent,
                self.received,
                self.elapsed_s,
                self.latency_p99_ms,
                self.reason
            );
        }
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
    bounds: Plausibility,
}

impl MetricsLog {
    /// Opens (creating, appending) the JSON file, if any.
    pub(crate) fn open(path: Option<&Path>, bounds: Plausibility) -> io::Result<Self> {
        let file = match path {
            Some(path) => {
                let file = OpenOptions::new().create(true).append(true).open(path)?;
                Some((path.to_owned(), Mutex::new(file)))
            }
            None => None,
        };
        Ok(MetricsLog { file, bounds })
    }

    /// Logs the metrics of `user`, whose session ended for `reason`. A report outside the
    /// plausibility bounds, or one the session already found implausible (`doubt`: its
    /// counts went down), is logged as rejected: a warning, and `"rejected"` in the JSON.
    pub(crate) fn record(
        &self,
        user: &str,
        reason: Departure,
        report: &MetricsReport,
        doubt: Option<&str>,
    ) {
        let mut record = MetricsRecord::new(user, reason, report);
        record.rejected = doubt
            .map(str::to_owned)
            .or_else(|| self.bounds.check(report));
        let json = record.json_line();
        match &record.rejected {
            None => {
                tracing::info!(target: METRICS_TARGET, "{}", record.human_line());
                tracing::info!(target: METRICS_TARGET, "{json}");
            }
            Some(why) => {
                tracing::warn!(target: METRICS_TARGET, user = %user, rejected = %why, "{}", record.human_line());
                tracing::warn!(target: METRICS_TARGET, user = %user, rejected = %why, "{json}");
            }
        }
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

    #[test]
    fn implausible_reports_are_rejected() {
        let bounds = Plausibility {
            max_rate: 1e7,
            max_latency_micros: 3_600_000_000,
        };
        let honest = MetricsReport {
            sent: 1_000,
            received: 3_000,
            elapsed_micros: 2_000_000,
            latency_p99_micros: 5_000,
            ..MetricsReport::default()
        };
        assert_eq!(bounds.check(&honest), None);
        assert_eq!(bounds.check(&MetricsReport::default()), None);
        let fast = MetricsReport {
            sent: 1_100_000_000_000_000,
            elapsed_micros: 1_000_000,
            ..honest
        };
        let why = bounds.check(&fast).expect("rate");
        assert!(why.contains("max_plausible_rate"), "{why}");
        let instant = MetricsReport {
            elapsed_micros: 0,
            ..honest
        };
        assert!(bounds.check(&instant).is_some());
        let slow = MetricsReport {
            latency_max_micros: 3_600_000_001,
            ..honest
        };
        let why = bounds.check(&slow).expect("latency");
        assert!(why.contains("max_plausible_latency"), "{why}");

        let mut r = MetricsRecord::new("eve", Departure::Quit, &fast);
        r.rejected = bounds.check(&fast);
        assert!(
            r.human_line().starts_with("metrics eve REJECTED ("),
            "{}",
            r.human_line()
        );
        let v: serde_json::Value = serde_json::from_str(&r.json_line()).expect("json");
        assert!(v["rejected"]
            .as_str()
            .is_some_and(|s| s.contains("throughput")));
    }
}
