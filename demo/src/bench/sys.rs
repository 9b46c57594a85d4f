//! What the benchmark reads from the operating system: wall clock, CPU time and peak memory
//! of this process (Linux /proc; zero elsewhere).

use std::time::Duration;

/// Microseconds since the Unix epoch: the clock both ends of a datagram share on one host.
pub fn wall_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Paces a sender at `rate` messages per second (0: full speed): waits until message `k`
/// (from 0) is due, counted from `start`.
pub async fn pace(start: tokio::time::Instant, k: u64, rate: f64) {
    if rate > 0.0 {
        let due = start + Duration::from_secs_f64(k as f64 / rate);
        if due > tokio::time::Instant::now() {
            tokio::time::sleep_until(due).await;
        }
    }
}

/// User + system CPU time of this process (every thread), from /proc/self/stat.
pub fn cpu_time() -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return Duration::ZERO;
    };
    // Fields after the command name (which is in parentheses and may contain spaces).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the whole line, 11 and 12 after the name; Linux
    // counts them in USER_HZ = 100 ticks per second.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// Peak resident memory of this process in KiB (VmHWM in /proc/self/status).
pub fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// The default receive buffer of a UDP socket in bytes (what a socket gets without
/// `SO_RCVBUF`), from /proc/sys/net/core/rmem_default; 208 KiB (Linux's usual value) elsewhere.
pub fn udp_rmem_default() -> usize {
    std::fs::read_to_string("/proc/sys/net/core/rmem_default")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(212_992)
}
