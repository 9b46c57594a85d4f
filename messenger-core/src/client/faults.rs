//! Fault injection on the real UDP path: drop, duplicate and delay outgoing datagrams, so that
//! tests and demos over real sockets see loss and reordering (kernel traffic shaping is not
//! available everywhere, and this needs no privileges).
//!
//! Configured by [`FaultConfig`], from `MESSENGER_FAULTS="loss=0.1,dup=0.05,reorder=0.2,seed=7"`
//! or a config field. `reorder` is the probability that a datagram is held back for a random
//! delay of up to `delay_ms` (default 2 ms), which lets later datagrams overtake it.
//! `drop_seq=N` drops every datagram that carries this member's message `N` (its first sending
//! and every resend): a loss that is certain rather than likely, for tests of what receivers do
//! with the messages behind a gap that is never filled.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::protocol::wire::{Datagram, Frame};
use crate::protocol::SeqNo;
use crate::rng::Rng;

/// The environment variable read by [`FaultConfig::from_env`].
pub const FAULTS_ENV: &str = "MESSENGER_FAULTS";

/// What to do to outgoing datagrams.
///
/// Built with [`FaultConfig::parse`], or with [`FaultConfig::default`] (no faults) and the
/// `with_*` methods; more fields may be added (`#[non_exhaustive]`), each with a default.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct FaultConfig {
    pub loss: f64,
    pub dup: f64,
    pub reorder: f64,
    pub delay: Duration,
    pub seed: u64,
    /// Drop every datagram carrying this member's message with this sequence number, in every
    /// group (`drop_seq=N`; `None`, the default, drops nothing this way).
    pub drop_seq: Option<u64>,
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig {
            loss: 0.0,
            dup: 0.0,
            reorder: 0.0,
            delay: Duration::from_millis(2),
            seed: 1,
            drop_seq: None,
        }
    }
}

/// A fault specification that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid fault specification {spec:?}: {reason}")]
pub struct FaultSpecError {
    pub spec: String,
    pub reason: String,
}

impl FaultConfig {
    /// Parses `loss=0.1,dup=0.05,reorder=0.2,delay_ms=2,seed=7,drop_seq=1` (any subset, any
    /// order).
    pub fn parse(spec: &str) -> Result<FaultConfig, FaultSpecError> {
        let err = |reason: String| FaultSpecError {
            spec: spec.to_string(),
            reason,
        };
        let mut config = FaultConfig::default();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| err(format!("`{part}` is not key=value")))?;
            let prob = || -> Result<f64, FaultSpecError> {
                let p: f64 = value
                    .trim()
                    .parse()
                    .map_err(|_| err(format!("`{value}` is not a number")))?;
                if (0.0..=1.0).contains(&p) {
                    Ok(p)
                } else {
                    Err(err(format!("{key}={value} is not a probability in [0, 1]")))
                }
            };
            match key.trim() {
                "loss" => config.loss = prob()?,
                "dup" => config.dup = prob()?,
                "reorder" => config.reorder = prob()?,
                "delay_ms" => {
                    let ms: u64 = value
                        .trim()
                        .parse()
                        .map_err(|_| err(format!("`{value}` is not a whole number")))?;
                    if !(1..=10_000).contains(&ms) {
                        return Err(err(format!(
                            "delay_ms={ms} is not between 1 and 10000 milliseconds"
                        )));
                    }
                    config.delay = Duration::from_millis(ms);
                }
                "seed" => {
                    config.seed = value
                        .trim()
                        .parse()
                        .map_err(|_| err(format!("`{value}` is not a whole number")))?;
                }
                "drop_seq" => {
                    let seq: u64 = value
                        .trim()
                        .parse()
                        .map_err(|_| err(format!("`{value}` is not a whole number")))?;
                    if seq == 0 {
                        return Err(err("drop_seq=0: sequence numbers start at 1".into()));
                    }
                    config.drop_seq = Some(seq);
                }
                other => return Err(err(format!("unknown key `{other}`"))),
            }
        }
        Ok(config)
    }

    /// Reads [`FAULTS_ENV`]; `Ok(None)` when it is unset or empty.
    pub fn from_env() -> Result<Option<FaultConfig>, FaultSpecError> {
        match std::env::var(FAULTS_ENV) {
            Ok(spec) if !spec.trim().is_empty() => FaultConfig::parse(&spec).map(Some),
            _ => Ok(None),
        }
    }

    pub fn is_active(&self) -> bool {
        self.loss > 0.0 || self.dup > 0.0 || self.reorder > 0.0 || self.drop_seq.is_some()
    }

    /// Sets `loss`, the probability that a datagram is dropped (default 0).
    #[must_use]
    pub fn with_loss(mut self, probability: f64) -> Self {
        self.loss = probability;
        self
    }

    /// Sets `dup`, the probability that a datagram is sent twice (default 0).
    #[must_use]
    pub fn with_dup(mut self, probability: f64) -> Self {
        self.dup = probability;
        self
    }

    /// Sets `reorder`, the probability that a datagram is held back for a while (default 0).
    #[must_use]
    pub fn with_reorder(mut self, probability: f64) -> Self {
        self.reorder = probability;
        self
    }

    /// Sets `delay`, the longest time a datagram is held back (default 2 ms).
    #[must_use]
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Sets `seed`, the seed of the generator that decides each datagram's fate (default 1).
    #[must_use]
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sets `drop_seq`, this member's message whose every datagram is dropped (default none).
    #[must_use]
    pub fn with_drop_seq(mut self, seq: Option<u64>) -> Self {
        self.drop_seq = seq;
        self
    }
}

/// What the fault injector did to a client's outgoing datagrams so far (a test under faults
/// checks that faults happened, not only that nothing was lost).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// Datagrams never sent.
    pub dropped: u64,
    /// Datagrams sent twice.
    pub duplicated: u64,
    /// Copies held back and sent later (which reorders them).
    pub delayed: u64,
}

/// [`FaultCounts`] shared between the data task that injects and the client that reports.
#[derive(Debug, Default)]
pub(crate) struct FaultCounters {
    dropped: std::sync::atomic::AtomicU64,
    duplicated: std::sync::atomic::AtomicU64,
    delayed: std::sync::atomic::AtomicU64,
}

impl FaultCounters {
    pub(crate) fn counts(&self) -> FaultCounts {
        use std::sync::atomic::Ordering::Relaxed;
        FaultCounts {
            dropped: self.dropped.load(Relaxed),
            duplicated: self.duplicated.load(Relaxed),
            delayed: self.delayed.load(Relaxed),
        }
    }
}

/// A datagram held back: due time, arrival order (ties), destination, bytes.
type Delayed = Reverse<(Instant, u64, SocketAddr, Vec<u8>)>;

/// Applies a [`FaultConfig`] to outgoing datagrams.
#[derive(Debug)]
pub(crate) struct FaultInjector {
    config: FaultConfig,
    rng: Rng,
    delayed: BinaryHeap<Delayed>,
    order: u64,
    counters: std::sync::Arc<FaultCounters>,
}

impl FaultInjector {
    #[cfg(test)]
    fn new(config: FaultConfig) -> Self {
        Self::with_counters(config, Default::default())
    }

    /// An injector that counts what it does in `counters` (shared with whoever reports them).
    pub fn with_counters(config: FaultConfig, counters: std::sync::Arc<FaultCounters>) -> Self {
        FaultInjector {
            rng: Rng::new(config.seed),
            config,
            delayed: BinaryHeap::new(),
            order: 0,
            counters,
        }
    }

    #[cfg(test)]
    fn counts(&self) -> FaultCounts {
        self.counters.counts()
    }

    /// Decides the fate of one datagram: the copies to send now (zero, one or two); delayed
    /// copies come out of [`FaultInjector::pop_due`] later.
    pub fn apply(
        &mut self,
        now: Instant,
        to: SocketAddr,
        bytes: Vec<u8>,
        out: &mut Vec<(SocketAddr, Vec<u8>)>,
    ) {
        use std::sync::atomic::Ordering::Relaxed;
        if self
            .config
            .drop_seq
            .is_some_and(|seq| carries_message(&bytes, seq))
        {
            self.counters.dropped.fetch_add(1, Relaxed);
            return;
        }
        if self.rng.chance(self.config.loss) {
            self.counters.dropped.fetch_add(1, Relaxed);
            return;
        }
        let copies = if self.rng.chance(self.config.dup) {
            self.counters.duplicated.fetch_add(1, Relaxed);
            2
        } else {
            1
        };
        let mut bytes = Some(bytes);
        for i in 0..copies {
            let bytes = if i + 1 == copies {
                bytes.take().unwrap_or_default()
            } else {
                bytes.clone().unwrap_or_default()
            };
            if self.rng.chance(self.config.reorder) {
                self.counters.delayed.fetch_add(1, Relaxed);
                let max = self.config.delay.as_micros() as u64;
                let at = now + Duration::from_micros(self.rng.range(max / 20, max));
                self.order += 1;
                self.delayed.push(Reverse((at, self.order, to, bytes)));
            } else {
                out.push((to, bytes));
            }
        }
    }

    /// When the next delayed datagram is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.delayed.peek().map(|Reverse((at, ..))| *at)
    }

    /// A delayed datagram whose time has come.
    pub fn pop_due(&mut self, now: Instant) -> Option<(SocketAddr, Vec<u8>)> {
        if self.next_due()? <= now {
            self.delayed
                .pop()
                .map(|Reverse((_, _, to, bytes))| (to, bytes))
        } else {
            None
        }
    }
}

/// True when `bytes` is a datagram with a `Data` frame (one of the sender's own messages) of
/// sequence number `seq`.
fn carries_message(bytes: &[u8], seq: u64) -> bool {
    Datagram::decode(bytes).is_ok_and(|d| {
        d.frames
            .iter()
            .any(|f| matches!(f, Frame::Data(data) if data.seq == SeqNo(seq)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_form() {
        let c = FaultConfig::parse("loss=0.1,dup=0.05,reorder=0.2,seed=7").unwrap();
        assert_eq!((c.loss, c.dup, c.reorder, c.seed), (0.1, 0.05, 0.2, 7));
        assert!(c.is_active());
        assert!(!FaultConfig::parse("").unwrap().is_active());
    }

    #[test]
    fn drop_seq_drops_exactly_the_datagrams_carrying_that_message() {
        use crate::protocol::wire::{Data, Header, Status};
        use crate::protocol::{GroupId, MemberId, ViewId};
        use bytes::Bytes;
        let config = FaultConfig::parse("drop_seq=2").unwrap();
        assert_eq!(config.drop_seq, Some(2));
        assert!(config.is_active());
        let datagram = |frames: Vec<Frame>| {
            Datagram {
                header: Header {
                    group: GroupId(1),
                    sender: MemberId(1),
                    recipient: MemberId(2),
                    view: ViewId(1),
                },
                frames,
            }
            .encode()
            .unwrap()
        };
        let data = |seq| {
            Frame::Data(Data {
                seq: SeqNo(seq),
                view: ViewId(1),
                stamp: 0,
                payload: Bytes::from_static(b"m"),
            })
        };
        let status = Frame::Status(Status {
            high: SeqNo(2),
            start: SeqNo(1),
            acks: Vec::new(),
        });
        let mut f = FaultInjector::new(config);
        let (now, to) = (
            crate::testing::epoch(),
            SocketAddr::from(([127, 0, 0, 1], 9)),
        );
        let mut out = Vec::new();
        for frames in [
            vec![data(1)],
            vec![status.clone()],
            vec![data(3), status.clone()],
            vec![status.clone(), data(4)],
        ] {
            f.apply(now, to, datagram(frames), &mut out);
        }
        f.apply(now, to, b"garbage".to_vec(), &mut out);
        assert_eq!(out.len(), 5, "nothing else is dropped");
        for frames in [
            vec![data(2)],
            vec![data(1), data(2), data(3)],
            vec![status, data(2)],
        ] {
            f.apply(now, to, datagram(frames), &mut out);
        }
        assert_eq!(out.len(), 5, "every datagram carrying message 2 is dropped");
        assert_eq!(f.counts().dropped, 3);
    }

    #[test]
    fn builders_agree_with_the_parser() {
        let built = FaultConfig::default()
            .with_loss(0.1)
            .with_dup(0.05)
            .with_reorder(0.2)
            .with_delay(Duration::from_millis(7))
            .with_seed(9)
            .with_drop_seq(Some(3));
        let parsed =
            FaultConfig::parse("loss=0.1,dup=0.05,reorder=0.2,delay_ms=7,seed=9,drop_seq=3");
        assert_eq!(parsed, Ok(built));
        assert_eq!(FaultConfig::parse(""), Ok(FaultConfig::default()));
    }

    #[test]
    fn rejects_nonsense_with_a_clear_reason() {
        for bad in [
            "loss",
            "loss=2",
            "loss=x",
            "jitter=1",
            "seed=-1",
            "delay_ms=0",
            "delay_ms=10001",
            "drop_seq=0",
            "drop_seq=x",
        ] {
            let e = FaultConfig::parse(bad).unwrap_err();
            assert!(!e.reason.is_empty(), "{bad}");
        }
    }

    #[test]
    fn drops_duplicates_and_delays_at_the_configured_rates() {
        let now = crate::testing::epoch();
        let config = FaultConfig::parse("loss=0.1,dup=0.1,reorder=0.2,seed=3").unwrap();
        let mut f = FaultInjector::new(config);
        let to = SocketAddr::from(([127, 0, 0, 1], 9));
        let mut out = Vec::new();
        for _ in 0..10_000 {
            f.apply(now, to, vec![1], &mut out);
        }
        let c = f.counts();
        assert!((800..1_200).contains(&c.dropped), "{c:?}");
        assert!((700..1_100).contains(&c.duplicated), "{c:?}");
        let mut delayed = 0;
        while f.pop_due(now + Duration::from_secs(1)).is_some() {
            delayed += 1;
        }
        assert_eq!(delayed, c.delayed);
        assert_eq!(
            out.len() as u64 + delayed,
            10_000 - c.dropped + c.duplicated
        );
    }

    /// `delay_ms` bounds how long a datagram is held, and holding reorders: datagrams handed
    /// over in order come out of the injector (sent now, or popped when due) out of order.
    #[test]
    fn delay_ms_bounds_the_delay_and_reorder_reorders() {
        let start = crate::testing::epoch();
        let config = FaultConfig::parse("reorder=0.5,delay_ms=7,seed=5").unwrap();
        assert_eq!(config.delay, Duration::from_millis(7));
        let mut f = FaultInjector::new(config);
        let to = SocketAddr::from(([127, 0, 0, 1], 9));
        let mut arrived: Vec<u32> = Vec::new();
        let mut out = Vec::new();
        // One datagram every 100 µs for 100 ms of virtual time.
        for i in 0..1_000u32 {
            let now = start + Duration::from_micros(100 * u64::from(i));
            while let Some((_, bytes)) = f.pop_due(now) {
                arrived.push(u32::from_le_bytes(bytes.try_into().unwrap()));
            }
            f.apply(now, to, i.to_le_bytes().to_vec(), &mut out);
            arrived.extend(
                out.drain(..)
                    .map(|(_, b)| u32::from_le_bytes(b.try_into().unwrap())),
            );
            if let Some(due) = f.next_due() {
                assert!(due <= now + Duration::from_millis(7), "held past delay_ms");
            }
        }
        while let Some((_, bytes)) = f.pop_due(start + Duration::from_secs(1)) {
            arrived.push(u32::from_le_bytes(bytes.try_into().unwrap()));
        }
        assert_eq!(arrived.len(), 1_000, "nothing lost or duplicated");
        let overtaken = arrived.windows(2).filter(|w| w[0] > w[1]).count();
        assert!(
            overtaken > 100,
            "only {overtaken} datagrams came out of order"
        );
        // Held datagrams fall behind by at most delay_ms / 100 µs = 70 places.
        for (place, &i) in arrived.iter().enumerate() {
            assert!(place as i64 - i64::from(i) <= 70, "{i} came out at {place}");
        }
        let delayed = f.counts().delayed;
        assert!(
            (400..600).contains(&delayed),
            "{delayed} of 1,000 held at reorder=0.5"
        );
    }
}
