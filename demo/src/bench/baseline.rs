//! The raw-UDP baselines, run in the same process and the same run as ours, with the same
//! members, payload, workload, message count and offered rate, on 127.0.0.1, no ordering:
//!
//! - `naive`: one `send_to` per peer per message, no reliability (what the original design
//!   does). Loses whatever overruns a receiver's socket buffer.
//! - `ceiling`: as many messages as fit in one 1400-byte datagram, one `send_to` per peer per
//!   datagram, and a credit window per (sender, receiver) so that no receiver is overrun:
//!   about the most this kernel can move. One thread per receiver and per sender, blocking
//!   sockets (a sender out of credit blocks in `recv_from` with a timeout; nobody spins).
//!
//! Every message carries its send time (8 bytes, wall clock) so latency is measured as ours.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use messenger_core::LatencyHistogram;

use super::latency::Buckets;
use super::progress::Progress;
use super::sys::{pace, udp_rmem_default, wall_micros};

/// The workload both baselines run.
#[derive(Debug, Clone)]
pub struct Workload {
    pub members: usize,
    /// Members that send (every member, or member 0 for fan-out).
    pub senders: Vec<usize>,
    pub messages: u64,
    /// At least 8 bytes: the send time.
    pub payload: usize,
    /// Offered rate of each sender in messages per second (0: full speed).
    pub rate_per_sender: f64,
}

impl Workload {
    fn expected(&self) -> u64 {
        self.senders.len() as u64 * (self.members as u64 - 1) * self.messages
    }

    /// Messages member `r` should receive.
    fn expected_at(&self, r: usize) -> u64 {
        self.senders.iter().filter(|&&s| s != r).count() as u64 * self.messages
    }
}

/// What the ceiling baseline chose and saw.
#[derive(Debug, Clone)]
pub struct CeilingInfo {
    pub messages_per_datagram: usize,
    /// Datagrams a sender may have outstanding per receiver.
    pub window: u64,
    /// A receiver returns credit every this many datagrams.
    pub credit_every: u64,
    pub credit_requests: u64,
    /// Senders that gave up waiting for credit.
    pub stalled_senders: u64,
}

/// Outcome of one baseline.
#[derive(Debug)]
pub struct Baseline {
    pub expected: u64,
    pub delivered: u64,
    /// First send to last delivery.
    pub elapsed: Duration,
    pub latency: LatencyHistogram,
    /// Data datagrams sent (all receivers).
    pub datagrams: u64,
    pub ceiling: Option<CeilingInfo>,
}

impl Baseline {
    pub fn rate(&self) -> f64 {
        self.delivered as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn lost(&self) -> u64 {
        self.expected.saturating_sub(self.delivered)
    }
}

/// A receiver stops once the senders are done and nothing arrived for this long.
const IDLE_END: Duration = Duration::from_millis(300);

/// Shows `counter` on the progress bar until dropped.
struct Ticker(tokio::task::JoinHandle<()>);

impl Ticker {
    fn start(progress: &Progress, counter: Arc<AtomicU64>) -> Ticker {
        let progress = progress.clone();
        Ticker(tokio::spawn(async move {
            let mut tick = tokio::time::interval(super::member::TICK);
            loop {
                tick.tick().await;
                progress.set(counter.load(Ordering::Relaxed));
            }
        }))
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The naive baseline: one `send_to` per peer per message, no reliability.
pub async fn naive(w: &Workload, progress: &Progress) -> anyhow::Result<Baseline> {
    let n = w.members;
    let mut sockets = Vec::new();
    for _ in 0..n {
        sockets.push(Arc::new(
            tokio::net::UdpSocket::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?,
        ));
    }
    let addrs: Vec<SocketAddr> = sockets
        .iter()
        .map(|s| s.local_addr())
        .collect::<Result<_, _>>()?;
    let received = Arc::new(AtomicU64::new(0));
    let last = Arc::new(Mutex::new(None::<Instant>));
    progress.phase("naive UDP", w.expected());
    let _ticker = Ticker::start(progress, received.clone());
    let mut receivers = Vec::new();
    for s in &sockets {
        let (s, received, last) = (s.clone(), received.clone(), last.clone());
        receivers.push(tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            let mut latency = LatencyHistogram::default();
            // Stop once nothing arrived for a while (the senders start at once).
            while let Ok(Ok((len, _))) = tokio::time::timeout(IDLE_END, s.recv_from(&mut buf)).await
            {
                if len >= 8 {
                    let sent = u64::from_le_bytes(buf[..8].try_into().unwrap_or([0; 8]));
                    latency.record(wall_micros().saturating_sub(sent));
                }
                received.fetch_add(1, Ordering::Relaxed);
                *last.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
            }
            latency
        }));
    }
    let started = Instant::now();
    let sent = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for &i in &w.senders {
        let peers: Vec<SocketAddr> = addrs
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, a)| *a)
            .collect();
        let (s, count, size, rate, sent) = (
            sockets[i].clone(),
            w.messages,
            w.payload.max(8),
            w.rate_per_sender,
            sent.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut msg = vec![b'x'; size];
            let start = tokio::time::Instant::now();
            for k in 0..count {
                pace(start, k, rate).await;
                msg[..8].copy_from_slice(&wall_micros().to_le_bytes());
                for p in &peers {
                    if s.send_to(&msg, p).await.is_ok() {
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let mut latency = LatencyHistogram::default();
    for r in receivers {
        latency.merge(&r.await?);
    }
    let end = last
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .unwrap_or(started);
    Ok(Baseline {
        expected: w.expected(),
        delivered: received.load(Ordering::Relaxed),
        elapsed: end.saturating_duration_since(started),
        latency,
        datagrams: sent.load(Ordering::Relaxed),
        ceiling: None,
    })
}

/// Largest datagram the ceiling sends (what fits in a 1500-byte MTU with headers to spare).
const DATAGRAM: usize = 1400;
/// Kind (1 byte), member index (2), message count (2).
const HEADER: usize = 5;
const DATA: u8 = 1;
/// Receiver to sender: `consumed` (8 bytes), the datagrams it took from that sender so far.
/// Cumulative, so a lost credit is made good by any later one.
const CREDIT: u8 = 2;
/// Sender to receiver, when out of credit for [`CREDIT_WAIT`]: send me a credit.
const CREDIT_REQUEST: u8 = 3;
/// How long a sender out of credit waits before asking for it.
const CREDIT_WAIT: Duration = Duration::from_millis(20);
/// A sender that got no credit for this long gives up (the run then shows the loss).
const GIVE_UP: Duration = Duration::from_secs(5);
/// What one queued datagram is assumed to take of its receiver's socket buffer: 1400 bytes
/// of payload plus the kernel's per-packet bookkeeping (sk_buff, headers), rounded up.
const QUEUED_COST: usize = 4096;
/// Receive timeout of a receiver, so it notices the end of the run.
const RECV_POLL: Duration = Duration::from_millis(50);

fn header(kind: u8, member: usize, count: usize) -> [u8; HEADER] {
    let m = (member as u16).to_le_bytes();
    let c = (count as u16).to_le_bytes();
    [kind, m[0], m[1], c[0], c[1]]
}

/// (kind, member, count) of a datagram.
fn parse_header(d: &[u8]) -> Option<(u8, usize, usize)> {
    let h = d.get(..HEADER)?;
    Some((
        h[0],
        usize::from(u16::from_le_bytes([h[1], h[2]])),
        usize::from(u16::from_le_bytes([h[3], h[4]])),
    ))
}

fn credit(member: usize, consumed: u64) -> [u8; HEADER + 8] {
    let mut d = [0u8; HEADER + 8];
    d[..HEADER].copy_from_slice(&header(CREDIT, member, 0));
    d[HEADER..].copy_from_slice(&consumed.to_le_bytes());
    d
}

/// The credit window: datagrams a sender may have outstanding per receiver, so that what all
/// the senders to one receiver may have queued fits in its default socket buffer.
fn window(rmem: usize, inbound_senders: usize) -> u64 {
    (rmem / QUEUED_COST / inbound_senders.max(1)).clamp(2, 64) as u64
}

/// The ceiling baseline: batched datagrams and a credit window.
pub async fn ceiling(w: &Workload, progress: &Progress) -> anyhow::Result<Baseline> {
    anyhow::ensure!(
        w.members <= usize::from(u16::MAX),
        "too many members for the ceiling baseline"
    );
    let delivered = Arc::new(AtomicU64::new(0));
    progress.phase("ceiling UDP", w.expected());
    let _ticker = Ticker::start(progress, delivered.clone());
    let w = w.clone();
    tokio::task::spawn_blocking(move || run_ceiling(&w, &delivered))
        .await
        .context("the ceiling baseline panicked")?
        .context("the ceiling baseline")
}

/// What a ceiling receiver saw.
struct Received {
    latency: Buckets,
    last: Option<Instant>,
}

/// What a ceiling sender did.
#[derive(Default)]
struct Sent {
    datagrams: u64,
    credit_requests: u64,
    stalled: bool,
}

/// The result of a thread that may have failed to start, or panicked.
fn join<T>(h: std::io::Result<std::thread::ScopedJoinHandle<'_, T>>) -> std::io::Result<T> {
    h.and_then(|h| {
        h.join()
            .map_err(|_| std::io::Error::other("a ceiling thread panicked"))
    })
}

fn run_ceiling(w: &Workload, delivered: &AtomicU64) -> std::io::Result<Baseline> {
    let n = w.members;
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    // Each member receives data (and sends credit) on one socket, and sends data (and
    // receives credit) on another, so a sender waiting for credit reads only credit.
    let inboxes: Vec<UdpSocket> = (0..n)
        .map(|_| UdpSocket::bind(loopback))
        .collect::<Result<_, _>>()?;
    let outboxes: Vec<UdpSocket> = w
        .senders
        .iter()
        .map(|_| UdpSocket::bind(loopback))
        .collect::<Result<_, _>>()?;
    let addrs: Vec<SocketAddr> = inboxes
        .iter()
        .map(UdpSocket::local_addr)
        .collect::<Result<_, _>>()?;
    let payload = w.payload.max(8);
    let per_datagram = ((DATAGRAM - HEADER) / payload).max(1);
    let inbound = (0..n)
        .map(|r| w.senders.iter().filter(|&&s| s != r).count())
        .max()
        .unwrap_or(1);
    let window = window(udp_rmem_default(), inbound);
    let credit_every = (window / 2).max(1);
    let senders_done = AtomicUsize::new(0);
    let started = Instant::now();

    let (received, sent) = std::thread::scope(|scope| {
        let receivers: Vec<_> = inboxes
            .iter()
            .enumerate()
            .map(|(r, inbox)| {
                let (expected, senders_done) = (w.expected_at(r), &senders_done);
                std::thread::Builder::new()
                    .name(format!("ceiling-rx-{r}"))
                    .spawn_scoped(scope, move || {
                        receive(
                            r,
                            inbox,
                            expected,
                            payload,
                            credit_every,
                            || senders_done.load(Ordering::Acquire) == w.senders.len(),
                            delivered,
                        )
                    })
            })
            .collect();
        let senders: Vec<_> = w
            .senders
            .iter()
            .zip(&outboxes)
            .map(|(&i, outbox)| {
                let peers: Vec<(usize, SocketAddr)> = addrs
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(j, a)| (j, *a))
                    .collect();
                let senders_done = &senders_done;
                std::thread::Builder::new()
                    .name(format!("ceiling-tx-{i}"))
                    .spawn_scoped(scope, move || {
                        let sent = Sender {
                            me: i,
                            peers: &peers,
                            messages: w.messages,
                            payload,
                            per_datagram,
                            window,
                            rate: w.rate_per_sender,
                            give_up: GIVE_UP,
                        }
                        .run(outbox);
                        senders_done.fetch_add(1, Ordering::Release);
                        sent
                    })
            })
            .collect();
        // A thread that failed to start fails the run; the others still end (the receivers
        // once the senders are done or idle).
        let sent: Vec<std::io::Result<std::io::Result<Sent>>> =
            senders.into_iter().map(join).collect();
        if sent.iter().any(Result::is_err) {
            senders_done.store(w.senders.len(), Ordering::Release);
        }
        let received: Vec<std::io::Result<std::io::Result<Received>>> =
            receivers.into_iter().map(join).collect();
        (received, sent)
    });

    let mut latency = Buckets::default();
    let mut last = started;
    for r in received {
        let r = r??;
        latency.merge(&r.latency);
        if let Some(t) = r.last {
            last = last.max(t);
        }
    }
    let mut info = CeilingInfo {
        messages_per_datagram: per_datagram,
        window,
        credit_every,
        credit_requests: 0,
        stalled_senders: 0,
    };
    let mut datagrams = 0;
    for s in sent {
        let s = s??;
        datagrams += s.datagrams;
        info.credit_requests += s.credit_requests;
        info.stalled_senders += u64::from(s.stalled);
    }
    Ok(Baseline {
        expected: w.expected(),
        delivered: delivered.load(Ordering::Relaxed),
        elapsed: last - started,
        latency: latency.to_histogram(),
        datagrams,
        ceiling: Some(info),
    })
}

/// One ceiling receiver: counts messages, records their latency, returns credit.
fn receive(
    me: usize,
    inbox: &UdpSocket,
    expected: u64,
    payload: usize,
    credit_every: u64,
    senders_done: impl Fn() -> bool,
    delivered: &AtomicU64,
) -> std::io::Result<Received> {
    inbox.set_read_timeout(Some(RECV_POLL))?;
    let mut consumed: Vec<u64> = Vec::new();
    let mut credited: Vec<u64> = Vec::new();
    let mut out = Received {
        latency: Buckets::default(),
        last: None,
    };
    let mut got = 0u64;
    let mut idle_since = Instant::now();
    let mut buf = [0u8; 2048];
    while got < expected {
        let (len, from) = match inbox.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if senders_done() && idle_since.elapsed() >= IDLE_END {
                    break;
                }
                continue;
            }
            Err(e) => return Err(e),
        };
        idle_since = Instant::now();
        let Some((kind, sender, count)) = parse_header(&buf[..len]) else {
            continue;
        };
        if consumed.len() <= sender {
            consumed.resize(sender + 1, 0);
            credited.resize(sender + 1, 0);
        }
        match kind {
            DATA => {
                let now = wall_micros();
                let body = &buf[HEADER..len];
                let mut n = 0;
                for m in body.chunks_exact(payload).take(count) {
                    let stamp = u64::from_le_bytes(m[..8].try_into().unwrap_or([0; 8]));
                    out.latency.record(now.saturating_sub(stamp));
                    n += 1;
                }
                got += n;
                delivered.fetch_add(n, Ordering::Relaxed);
                out.last = Some(idle_since);
                consumed[sender] += 1;
                if consumed[sender] - credited[sender] >= credit_every {
                    inbox.send_to(&credit(me, consumed[sender]), from)?;
                    credited[sender] = consumed[sender];
                }
            }
            CREDIT_REQUEST => {
                inbox.send_to(&credit(me, consumed[sender]), from)?;
                credited[sender] = consumed[sender];
            }
            _ => {}
        }
    }
    Ok(out)
}

/// One ceiling sender: batches its messages into datagrams and sends each to every peer,
/// waiting for credit when `window` datagrams to a peer are outstanding.
struct Sender<'a> {
    me: usize,
    /// (member index, inbox address) of every receiver.
    peers: &'a [(usize, SocketAddr)],
    messages: u64,
    payload: usize,
    per_datagram: usize,
    window: u64,
    /// Messages per second (0: full speed).
    rate: f64,
    /// Give up after this long without credit.
    give_up: Duration,
}

impl Sender<'_> {
    fn run(&self, outbox: &UdpSocket) -> std::io::Result<Sent> {
        outbox.set_read_timeout(Some(CREDIT_WAIT))?;
        let slots = self.peers.iter().map(|(j, _)| j + 1).max().unwrap_or(0);
        let mut sent_to = vec![0u64; slots];
        let mut granted = vec![0u64; slots];
        let mut out = Sent::default();
        let payload = self.payload;
        let mut datagram = vec![b'x'; HEADER + self.per_datagram * payload];
        let start = Instant::now();
        let mut k = 0u64;
        'run: while k < self.messages {
            let mut batch = (self.per_datagram as u64).min(self.messages - k);
            if self.rate > 0.0 {
                // Messages due by now; sleep until the next one when none is.
                let due =
                    ((start.elapsed().as_secs_f64() * self.rate) as u64 + 1).min(self.messages);
                if due <= k {
                    let next = start + Duration::from_secs_f64(k as f64 / self.rate);
                    std::thread::sleep(next.saturating_duration_since(Instant::now()));
                    continue;
                }
                batch = batch.min(due - k);
            }
            let batch = batch as usize;
            datagram[..HEADER].copy_from_slice(&header(DATA, self.me, batch));
            let stamp = wall_micros().to_le_bytes();
            for m in datagram[HEADER..].chunks_exact_mut(payload).take(batch) {
                m[..8].copy_from_slice(&stamp);
            }
            let len = HEADER + batch * payload;
            for &(r, addr) in self.peers {
                if !self.wait_for_credit(outbox, r, addr, &sent_to, &mut granted, &mut out)? {
                    out.stalled = true;
                    break 'run;
                }
                outbox.send_to(&datagram[..len], addr)?;
                sent_to[r] += 1;
                out.datagrams += 1;
            }
            k += batch as u64;
        }
        Ok(out)
    }

    /// Blocks until fewer than `window` datagrams to receiver `r` (at `addr`) are outstanding,
    /// taking every credit that arrives meanwhile (from any receiver); asks `r` for credit
    /// after each [`CREDIT_WAIT`] without any; false after `give_up` without any.
    fn wait_for_credit(
        &self,
        outbox: &UdpSocket,
        r: usize,
        addr: SocketAddr,
        sent_to: &[u64],
        granted: &mut [u64],
        out: &mut Sent,
    ) -> std::io::Result<bool> {
        let mut progress = Instant::now();
        let mut buf = [0u8; 64];
        while sent_to[r] - granted[r] >= self.window {
            match outbox.recv_from(&mut buf) {
                Ok((len, _)) => {
                    if let Some((CREDIT, from, _)) = parse_header(&buf[..len]) {
                        let consumed = buf
                            .get(HEADER..HEADER + 8)
                            .and_then(|b| b.try_into().ok())
                            .map_or(0, u64::from_le_bytes);
                        if let Some(g) = granted.get_mut(from) {
                            if consumed > *g {
                                *g = consumed;
                                progress = Instant::now();
                            }
                        }
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    if progress.elapsed() >= self.give_up {
                        return Ok(false);
                    }
                    outbox.send_to(&header(CREDIT_REQUEST, self.me, 0), addr)?;
                    out.credit_requests += 1;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_fits_the_receive_buffer() {
        assert_eq!(window(212_992, 3), 17);
        assert_eq!(window(212_992, 15), 3);
        assert_eq!(window(212_992, 1000), 2);
        assert_eq!(window(64 << 20, 1), 64);
        assert_eq!(parse_header(&header(DATA, 7, 21)), Some((DATA, 7, 21)));
        assert_eq!(parse_header(&[DATA, 0]), None);
    }

    fn bind() -> UdpSocket {
        UdpSocket::bind(SocketAddr::from(([127, 0, 0, 1], 0))).expect("binds")
    }

    fn sender(peers: &[(usize, SocketAddr)], give_up: Duration) -> Sender<'_> {
        Sender {
            me: 0,
            peers,
            messages: 200,
            payload: 64,
            per_datagram: 10,
            window: 2,
            rate: 0.0,
            give_up,
        }
    }

    #[test]
    fn a_receiver_that_never_volunteers_credit_is_asked_for_it() {
        // Credit only on request, as when every credit datagram is lost.
        let (inbox, outbox) = (bind(), bind());
        let peers = [(1, inbox.local_addr().expect("addr"))];
        let delivered = AtomicU64::new(0);
        let (received, sent) = std::thread::scope(|s| {
            let rx = s.spawn(|| receive(1, &inbox, 200, 64, u64::MAX, || true, &delivered));
            let sent = sender(&peers, Duration::from_secs(5)).run(&outbox);
            (rx.join().expect("receiver"), sent.expect("sends"))
        });
        received.expect("receives");
        assert_eq!(delivered.load(Ordering::Relaxed), 200);
        assert_eq!(sent.datagrams, 20);
        assert!(!sent.stalled);
        assert!(sent.credit_requests >= 9, "{}", sent.credit_requests);
    }

    #[test]
    fn a_sender_without_credit_gives_up() {
        let (nobody, outbox) = (bind(), bind());
        let peers = [(1, nobody.local_addr().expect("addr"))];
        let sent = sender(&peers, Duration::from_millis(100))
            .run(&outbox)
            .expect("runs");
        assert!(sent.stalled);
        assert_eq!(sent.datagrams, 2, "the window, then nothing");
    }
}
