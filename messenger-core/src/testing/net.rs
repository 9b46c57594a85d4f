//! A seeded network emulator: datagrams are lost, duplicated and delayed (a random delay per
//! copy reorders them) per link, and links can be cut for a time.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::rng::Rng;

/// What one direction of a link does to datagrams.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkFaults {
    /// Probability that a datagram is dropped.
    pub loss: f64,
    /// Probability that a datagram is delivered twice.
    pub dup: f64,
    /// Each copy is delayed uniformly in `[delay_min, delay_max]`; a spread reorders.
    pub delay_min: Duration,
    pub delay_max: Duration,
}

impl Default for LinkFaults {
    fn default() -> Self {
        LinkFaults {
            loss: 0.0,
            dup: 0.0,
            delay_min: Duration::from_micros(50),
            delay_max: Duration::from_micros(50),
        }
    }
}

impl LinkFaults {
    pub fn lossy(loss: f64, dup: f64, reorder: bool) -> Self {
        LinkFaults {
            loss,
            dup,
            delay_min: Duration::from_micros(50),
            delay_max: if reorder {
                Duration::from_micros(2_000)
            } else {
                Duration::from_micros(50)
            },
        }
    }
}

/// Counters of what the network did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetStats {
    pub sent: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub cut: u64,
    pub delivered: u64,
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct InFlight {
    at: Instant,
    order: u64,
    from: SocketAddr,
    to: SocketAddr,
    bytes: Vec<u8>,
}

/// The emulated network.
#[derive(Debug)]
pub struct Network {
    rng: Rng,
    faults: LinkFaults,
    links: HashMap<(SocketAddr, SocketAddr), LinkFaults>,
    cuts: Vec<(SocketAddr, SocketAddr, Instant)>,
    queue: BinaryHeap<Reverse<InFlight>>,
    order: u64,
    stats: NetStats,
}

impl Network {
    pub fn new(seed: u64, faults: LinkFaults) -> Self {
        Network {
            rng: Rng::new(seed),
            faults,
            links: HashMap::new(),
            cuts: Vec::new(),
            queue: BinaryHeap::new(),
            order: 0,
            stats: NetStats::default(),
        }
    }

    /// Overrides the faults of the link `from -> to`.
    pub fn set_link(&mut self, from: SocketAddr, to: SocketAddr, faults: LinkFaults) {
        self.links.insert((from, to), faults);
    }

    /// Drops every datagram between `a` and `b` (both directions) until `until`.
    pub fn cut(&mut self, a: SocketAddr, b: SocketAddr, until: Instant) {
        self.cuts.push((a, b, until));
        self.cuts.push((b, a, until));
    }

    pub fn stats(&self) -> NetStats {
        self.stats
    }

    pub fn send(&mut self, now: Instant, from: SocketAddr, to: SocketAddr, mut bytes: Vec<u8>) {
        self.stats.sent += 1;
        self.cuts.retain(|(_, _, until)| *until > now);
        if self.cuts.iter().any(|(a, b, _)| *a == from && *b == to) {
            self.stats.cut += 1;
            return;
        }
        let faults = self.links.get(&(from, to)).copied().unwrap_or(self.faults);
        if self.rng.chance(faults.loss) {
            self.stats.lost += 1;
            return;
        }
        let copies = if self.rng.chance(faults.dup) {
            self.stats.duplicated += 1;
            2
        } else {
            1
        };
        for i in 0..copies {
            let lo = faults.delay_min.as_micros() as u64;
            let hi = faults.delay_max.as_micros() as u64;
            let delay = Duration::from_micros(self.rng.range(lo, hi.max(lo)));
            self.order += 1;
            self.queue.push(Reverse(InFlight {
                at: now + delay,
                order: self.order,
                from,
                to,
                bytes: if i + 1 == copies {
                    std::mem::take(&mut bytes)
                } else {
                    bytes.clone()
                },
            }));
        }
    }

    /// When the next datagram arrives.
    pub fn next_arrival(&self) -> Option<Instant> {
        self.queue.peek().map(|Reverse(f)| f.at)
    }

    /// The next datagram that has arrived by `now`: `(from, to, bytes)`.
    pub fn pop_due(&mut self, now: Instant) -> Option<(SocketAddr, SocketAddr, Vec<u8>)> {
        if self.queue.peek().is_some_and(|Reverse(f)| f.at <= now) {
            let Reverse(f) = self.queue.pop()?;
            self.stats.delivered += 1;
            Some((f.from, f.to, f.bytes))
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(p: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], p))
    }

    #[test]
    fn loss_and_duplication_follow_their_rates() {
        let t0 = crate::testing::epoch();
        let mut net = Network::new(3, LinkFaults::lossy(0.2, 0.1, true));
        for _ in 0..10_000 {
            net.send(t0, addr(1), addr(2), vec![1]);
        }
        let s = net.stats();
        assert!((1_700..2_300).contains(&s.lost), "{s:?}");
        assert!((600..1_000).contains(&s.duplicated), "{s:?}");
        let mut n = 0;
        let mut last = t0;
        while let Some(at) = net.next_arrival() {
            assert!(at >= last);
            last = at;
            net.pop_due(at).unwrap();
            n += 1;
        }
        assert_eq!(n, 10_000 - s.lost + s.duplicated);
    }

    #[test]
    fn a_cut_link_drops_until_it_heals() {
        let t0 = crate::testing::epoch();
        let mut net = Network::new(1, LinkFaults::default());
        net.cut(addr(1), addr(2), t0 + Duration::from_millis(10));
        net.send(t0, addr(2), addr(1), vec![1]);
        net.send(t0 + Duration::from_millis(10), addr(1), addr(2), vec![2]);
        assert_eq!(net.stats().cut, 1);
        assert!(net.pop_due(t0 + Duration::from_secs(1)).is_some());
        assert!(net.pop_due(t0 + Duration::from_secs(1)).is_none());
    }
}
