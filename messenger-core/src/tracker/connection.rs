//! One client's session, in one task: the hello, then requests and heartbeats until the client
//! quits, disconnects, breaks the protocol, misses its heartbeats, or the tracker stops.
//!
//! The task reads; a writer task of its own writes what the outbox queues
//! ([`outbox::write_frames`]). When the session ends the task closes the outbox, lets the
//! writer flush (for a bounded time), and then lingers briefly, reading and discarding what
//! the client still sends: closing a socket with unread input makes the kernel reset the
//! connection, and a reset can destroy the last frames (an error, `Bye`) before the client
//! has read them.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use subtle::ConstantTimeEq;
use tokio::io::{AsyncReadExt, ReadHalf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{self, Instant, Interval, MissedTickBehavior};
use tracing::{info, warn};

use crate::protocol::tracker::{ClientId, Departure};
use crate::protocol::types::MemberId;
use crate::protocol::wire::{
    encode_address_probe, ClientFrame, ErrorCode, FrameDecoder, Hello, MetricsReport, Request,
    ServerFrame, WireError, COOKIE_LEN,
};
use rand::rngs::SysRng;
use rand::TryRng;

use super::hub::Outcome;
use super::limits::{PartialShare, Permit};
use super::log::TRACKER_TARGET;
use super::outbox::{self, Outbox};
use super::server::Shared;
use super::transport;
use crate::tls::ControlStream;

/// How long the writer may take to flush the last frames of a closing connection.
const FLUSH_GRACE: Duration = Duration::from_secs(1);
/// How long a closing connection waits for the client to close its side.
const LINGER: Duration = Duration::from_millis(250);
/// Most bytes read and discarded while lingering.
const LINGER_BYTES: usize = 1 << 20;
/// Size of one read from the socket.
const READ_CHUNK: usize = 16 * 1024;
/// Time between two address probes to a client that has not proved its address yet.
const PROBE_RESEND: Duration = Duration::from_millis(200);

/// Where to send the probe for `addr` from a socket bound to `local`: an IPv6 socket (a
/// tracker listening on `::`) reaches an IPv4 address through its IPv4-mapped form, and an
/// IPv4 socket reaches an IPv4-mapped IPv6 address through the IPv4 address.
fn probe_target(local: Option<SocketAddr>, addr: SocketAddr) -> SocketAddr {
    match (local, addr) {
        (Some(SocketAddr::V6(_)), SocketAddr::V4(v4)) => {
            SocketAddr::new(IpAddr::V6(v4.ip().to_ipv6_mapped()), v4.port())
        }
        (Some(SocketAddr::V4(_)), SocketAddr::V6(v6)) => match v6.ip().to_ipv4_mapped() {
            Some(ip) => SocketAddr::new(IpAddr::V4(ip), v6.port()),
            None => addr,
        },
        _ => addr,
    }
}

/// Compares two cookies in time that does not depend on where they differ (`subtle`).
fn cookies_match(given: &[u8; COOKIE_LEN], expected: &[u8; COOKIE_LEN]) -> bool {
    bool::from(given[..].ct_eq(&expected[..]))
}

/// Serves one accepted connection until its session ends and the socket is closed.
pub(crate) async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    permit: Permit,
) {
    let _ = stream.set_nodelay(true);
    let Some(stream) = transport::accept(stream, peer, &shared, &mut stop).await else {
        return;
    };
    let (reader, writer) = tokio::io::split(stream);
    let (outbox, queue) = outbox::outbox();
    let writer = tokio::spawn(outbox::write_frames(writer, queue));
    let mut connection = Connection {
        reader,
        decoder: FrameDecoder::new(),
        partial: shared.partial.share(),
        chunk: vec![0; READ_CHUNK].into_boxed_slice(),
        outbox,
        peer,
        shared,
        stop,
    };
    connection.session().await;
    connection.close(writer).await;
    drop(permit);
}

struct Connection {
    reader: ReadHalf<ControlStream>,
    decoder: FrameDecoder,
    /// The bytes of incomplete frames this connection holds, counted in the tracker's budget.
    partial: PartialShare,
    chunk: Box<[u8]>,
    outbox: Outbox,
    peer: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
}

/// What the connection waited for.
enum Input {
    Frame(ClientFrame),
    /// The bytes do not form a valid frame (malformed, oversized).
    Corrupt(WireError),
    /// The timer ticked: a heartbeat is due (or the hello is late).
    Tick,
    /// End of stream or a read error.
    Closed,
    /// The tracker is shutting down.
    Stop,
    /// The client leaves too much unread: its outbox is full.
    Backlogged,
    /// The partial frame would pass the tracker's budget of bytes in incomplete frames.
    OverBudget,
}

/// The registered client of a session and its heartbeat state.
struct Session {
    client: ClientId,
    username: String,
    /// Nonce of the last probe sent (probes are numbered from 1).
    probed: u64,
    /// Highest nonce answered.
    answered: u64,
    /// The metrics of the last answer.
    metrics: MetricsReport,
    /// Why the reported metrics are not believed (counts went down between two reports).
    doubt: Option<String>,
}

impl Session {
    /// Takes a metrics report; counts that go down make every later report doubtful.
    fn note_metrics(&mut self, metrics: MetricsReport) {
        let before = self.metrics;
        if self.doubt.is_none()
            && (metrics.sent < before.sent
                || metrics.received < before.received
                || metrics.elapsed_micros < before.elapsed_micros)
        {
            self.doubt = Some(format!(
                "counts went down between two reports (sent {} to {}, received {} to {})",
                before.sent, metrics.sent, before.received, metrics.received
            ));
        }
        self.metrics = metrics;
    }
}

/// How a registered session ended.
enum End {
    /// The client sent `Quit` (request `id`), not answered yet.
    Quit { id: u64, metrics: MetricsReport },
    /// Disconnected or dropped (its last metrics are in the session).
    Gone(Departure),
    /// The tracker is stopping.
    Shutdown,
}

impl Connection {
    /// Waits for the next frame, the timer, the end of the stream, or the tracker's stop.
    /// Frames already buffered come first.
    async fn next_input(&mut self, timer: &mut Interval) -> Input {
        loop {
            match self.decoder.next_frame::<ClientFrame>() {
                Ok(Some(frame)) => return Input::Frame(frame),
                Ok(None) => {}
                Err(e) => return Input::Corrupt(e),
            }
            if !self.partial.hold(self.decoder.buffered()) {
                return Input::OverBudget;
            }
            tokio::select! {
                biased;
                _ = self.stop.changed() => return Input::Stop,
                () = self.outbox.overflowed() => return Input::Backlogged,
                _ = timer.tick() => return Input::Tick,
                read = self.reader.read(&mut self.chunk) => match read {
                    Ok(0) | Err(_) => return Input::Closed,
                    Ok(n) => self.decoder.extend(&self.chunk[..n]),
                },
            }
        }
    }

    async fn session(&mut self) {
        if *self.stop.borrow() {
            return;
        }
        let Some(mut session) = self.hello().await else {
            return;
        };
        let (client, username) = (session.client, session.username.clone());
        // The metrics are logged before the client is removed, so that anyone who sees the
        // view without it can also find its metrics in the log.
        match self.serve_requests(&mut session).await {
            End::Quit { id, metrics } => {
                info!(target: TRACKER_TARGET, user = %username, client = client.0, "{username} quit");
                self.shared.metrics_log.record(
                    &username,
                    Departure::Quit,
                    &metrics,
                    session.doubt.as_deref(),
                );
                // Answers Bye, removes the client and pushes the new views.
                self.shared
                    .hub
                    .request(client, id, Request::Quit { metrics });
            }
            End::Gone(why) => {
                if why == Departure::Dropped {
                    let misses = self.shared.config.misses();
                    warn!(
                        target: TRACKER_TARGET,
                        user = %username,
                        client = client.0,
                        "{username} failed: {misses} heartbeats unanswered, removing it from its groups"
                    );
                } else {
                    info!(target: TRACKER_TARGET, user = %username, client = client.0, "{username} disconnected");
                }
                self.shared.metrics_log.record(
                    &username,
                    why,
                    &session.metrics,
                    session.doubt.as_deref(),
                );
                self.shared.hub.remove(client, why);
            }
            // The tracker is going away, not the client: no view changes are pushed (the
            // clients keep their groups and re-join when a tracker is back).
            End::Shutdown => self.shared.hub.forget(client),
        }
    }

    /// Reads the hello and registers the client; `None` if the connection ends instead.
    async fn hello(&mut self) -> Option<Session> {
        let limit = self.shared.config.hello_timeout();
        let mut deadline = time::interval_at(Instant::now() + limit, limit);
        let mut hello: Hello = match self.next_input(&mut deadline).await {
            Input::Frame(ClientFrame::Hello(hello)) => hello,
            Input::Frame(_) => {
                self.violation(None, "the first frame must be a hello".to_owned());
                return None;
            }
            Input::Corrupt(e) => {
                self.violation(None, format!("bad frame: {e}"));
                return None;
            }
            Input::Tick => {
                self.violation(None, format!("no hello within {} ms", limit.as_millis()));
                return None;
            }
            Input::OverBudget => {
                self.over_budget(None);
                return None;
            }
            Input::Closed | Input::Stop | Input::Backlogged => return None,
        };
        if hello.udp_addr.ip().is_unspecified() {
            hello.udp_addr.set_ip(self.peer.ip());
        }
        let interval_ms = self.shared.config.heartbeat_interval_ms();
        // Registered first (the name is checked and reserved), admitted only once the client
        // proved its UDP address: until then it gets nothing and is in no view.
        match self.shared.hub.register(&hello) {
            Ok(client) => {
                match self.prove_address(hello.udp_addr).await {
                    Ok(()) => {}
                    Err(refusal) => {
                        self.shared.hub.remove(client, Departure::Disconnected);
                        if let Some(message) = refusal {
                            warn!(
                                target: TRACKER_TARGET,
                                user = %hello.username,
                                peer = %self.peer,
                                udp = %hello.udp_addr,
                                "hello of {} refused: {message}", hello.username
                            );
                            self.shared.hub.note_bad_connection();
                            self.outbox
                                .send_error(ErrorCode::AddressUnverified, message);
                        }
                        return None;
                    }
                }
                self.shared
                    .hub
                    .admit(client, self.outbox.clone(), interval_ms);
                info!(
                    target: TRACKER_TARGET,
                    user = %hello.username,
                    client = client.0,
                    peer = %self.peer,
                    udp = %hello.udp_addr,
                    "{} connected from {}", hello.username, self.peer
                );
                Some(Session {
                    client,
                    username: hello.username,
                    probed: 0,
                    answered: 0,
                    metrics: MetricsReport::default(),
                    doubt: None,
                })
            }
            Err(refusal) => {
                info!(
                    target: TRACKER_TARGET,
                    peer = %self.peer,
                    code = ?refusal.code,
                    "hello refused: {}", refusal.message
                );
                self.outbox.send_error(refusal.code, refusal.message);
                None
            }
        }
    }

    /// Sends a random cookie to `addr` (again every [`PROBE_RESEND`], in case a datagram is
    /// lost) until the client sends it back in an `AddressProof`, or the hello timeout passes.
    /// `Err(Some(why))` to refuse the client with; `Err(None)` when the connection ended (or
    /// broke the protocol, already answered).
    async fn prove_address(&mut self, addr: SocketAddr) -> Result<(), Option<String>> {
        let mut cookie = [0u8; COOKIE_LEN];
        if let Err(e) = SysRng.try_fill_bytes(&mut cookie) {
            warn!(target: TRACKER_TARGET, error = %e, "no randomness for an address cookie");
            return Err(Some(format!(
                "the tracker cannot verify {addr} now (no randomness); try again"
            )));
        }
        let probe = encode_address_probe(&cookie);
        let to = probe_target(self.shared.probe_socket.local_addr().ok(), addr);
        let limit = self.shared.config.hello_timeout();
        let deadline = Instant::now() + limit;
        // The first tick is immediate: the first probe goes out at once.
        let mut resend = time::interval(PROBE_RESEND);
        resend.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            match self.next_input(&mut resend).await {
                Input::Tick => {
                    if Instant::now() >= deadline {
                        return Err(Some(format!(
                            "{addr} did not return the tracker's address probe within {} ms: \
                             the UDP address of the hello must be one this client receives on",
                            limit.as_millis()
                        )));
                    }
                    if let Err(e) = self.shared.probe_socket.send_to(&probe, to) {
                        tracing::debug!(target: TRACKER_TARGET, udp = %addr, error = %e, "address probe not sent");
                    }
                }
                Input::Frame(ClientFrame::AddressProof { cookie: given }) => {
                    return if cookies_match(&given, &cookie) {
                        Ok(())
                    } else {
                        Err(Some(format!(
                            "wrong address proof for {addr}: the cookie is not the one sent there"
                        )))
                    };
                }
                Input::Frame(_) => {
                    self.violation(
                        None,
                        "the frame after a hello must be the address proof".to_owned(),
                    );
                    return Err(None);
                }
                Input::Corrupt(e) => {
                    self.violation(None, format!("bad frame: {e}"));
                    return Err(None);
                }
                Input::OverBudget => {
                    self.over_budget(None);
                    return Err(None);
                }
                Input::Closed | Input::Stop | Input::Backlogged => return Err(None),
            }
        }
    }

    /// Answers requests and probes the client until the session ends.
    async fn serve_requests(&mut self, session: &mut Session) -> End {
        let period = self.shared.config.heartbeat_period();
        let misses = u64::from(self.shared.config.misses());
        let mut heartbeat = time::interval_at(Instant::now() + period, period);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            match self.next_input(&mut heartbeat).await {
                Input::Frame(ClientFrame::Request {
                    id,
                    request: Request::Quit { metrics },
                }) => {
                    session.note_metrics(metrics);
                    return End::Quit { id, metrics };
                }
                Input::Frame(ClientFrame::Request { id, request }) => {
                    let about = match &request {
                        Request::Leave { group } => About::Leave(group.clone()),
                        Request::Suspect { group, member } => {
                            About::Suspect(group.clone(), *member)
                        }
                        _ => About::Other,
                    };
                    let outcome = self.shared.hub.request(session.client, id, request);
                    log_outcome(&session.username, &outcome, &about);
                    if let Outcome::WrongPassword {
                        failures, reply, ..
                    } = outcome
                    {
                        if let Some(end) = self.wrong_password(session, failures, reply).await {
                            return end;
                        }
                    }
                }
                Input::Frame(ClientFrame::HeartbeatAck { nonce, metrics }) => {
                    // Only an answer to a probe actually sent counts; late answers to older
                    // probes still prove the client alive up to that probe.
                    if nonce > session.answered && nonce <= session.probed {
                        session.answered = nonce;
                        session.note_metrics(metrics);
                    }
                }
                // A late copy: the probe was sent again before the first proof arrived.
                Input::Frame(ClientFrame::AddressProof { .. }) => {}
                Input::Frame(ClientFrame::Hello(_)) => {
                    self.violation(Some(session), "a second hello".to_owned());
                    return End::Gone(Departure::Disconnected);
                }
                Input::Corrupt(e) => {
                    self.violation(Some(session), format!("bad frame: {e}"));
                    return End::Gone(Departure::Disconnected);
                }
                Input::Tick => {
                    if session.probed - session.answered >= misses {
                        return End::Gone(Departure::Dropped);
                    }
                    session.probed += 1;
                    self.outbox.send(&ServerFrame::Heartbeat {
                        nonce: session.probed,
                    });
                }
                Input::Closed => return End::Gone(Departure::Disconnected),
                Input::Backlogged => {
                    // No error frame: it would not fit, and the client is not reading anyway.
                    warn!(
                        target: TRACKER_TARGET,
                        user = %session.username,
                        peer = %self.peer,
                        "closing the connection of {}: {} bytes left unread",
                        session.username,
                        self.outbox.backlog()
                    );
                    self.shared.hub.note_bad_connection();
                    return End::Gone(Departure::Disconnected);
                }
                Input::OverBudget => {
                    self.over_budget(Some(session));
                    return End::Gone(Departure::Disconnected);
                }
                Input::Stop => return End::Shutdown,
            }
        }
    }

    /// Answers a wrong password after a delay that doubles with each failure of the session;
    /// past the limit of failures, closes the connection. Returns how the session ends, if it
    /// does.
    async fn wrong_password(
        &mut self,
        session: &Session,
        failures: u32,
        reply: Option<bytes::Bytes>,
    ) -> Option<End> {
        let max = self.shared.config.password_failures();
        if failures < max {
            let delay = self.shared.config.password_delay_for(failures);
            tokio::select! {
                biased;
                _ = self.stop.changed() => return Some(End::Shutdown),
                () = time::sleep(delay) => {}
            }
        }
        if let Some(bytes) = reply {
            self.outbox.push(bytes);
        }
        if failures < max {
            return None;
        }
        let message = format!(
            "{failures} wrong passwords on this connection, the limit (max_password_failures); closing it"
        );
        warn!(
            target: TRACKER_TARGET,
            user = %session.username,
            peer = %self.peer,
            "closing the connection of {}: {message}", session.username
        );
        self.shared.hub.note_refused_connection();
        self.outbox.send_error(ErrorCode::LimitReached, message);
        Some(End::Gone(Departure::Disconnected))
    }

    /// Closes a connection whose partial frame would pass the tracker's budget.
    fn over_budget(&mut self, session: Option<&Session>) {
        // What it held goes back to the others at once, not when the socket is closed.
        self.decoder = FrameDecoder::new();
        self.partial.hold(0);
        let who = session.map_or("a client", |s| s.username.as_str());
        let message = format!(
            "the tracker holds its limit of {} bytes of incomplete frames (max_partial_frame_bytes); closing this connection",
            self.shared.partial.limit()
        );
        warn!(target: TRACKER_TARGET, peer = %self.peer, "closing the connection of {who}: {message}");
        self.shared.hub.note_refused_connection();
        self.outbox.send_error(ErrorCode::LimitReached, message);
    }

    /// Tells the client what it did wrong and counts the connection as bad; the caller ends
    /// the session.
    fn violation(&self, session: Option<&Session>, message: String) {
        let who = session.map_or("a client", |s| s.username.as_str());
        warn!(
            target: TRACKER_TARGET,
            peer = %self.peer,
            "closing the connection of {who}: {message}"
        );
        self.shared.hub.note_bad_connection();
        self.outbox.send_error(ErrorCode::BadRequest, message);
    }

    /// Closes the connection: flushes the outbox, sends end of stream, lingers, closes.
    async fn close(self, mut writer: JoinHandle<()>) {
        let Connection {
            mut reader,
            outbox,
            partial,
            ..
        } = self;
        drop(partial);
        // The hub dropped its sender when the client was removed; this is the last one.
        drop(outbox);
        if time::timeout(FLUSH_GRACE, &mut writer).await.is_err() {
            writer.abort();
        }
        let mut discarded = 0;
        let mut sink = [0u8; 4096];
        let _ = time::timeout(LINGER, async {
            while discarded < LINGER_BYTES {
                match reader.read(&mut sink).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => discarded += n,
                }
            }
        })
        .await;
    }
}

/// What a request was about, for its log line (the hub's outcome does not repeat it).
enum About {
    Leave(String),
    Suspect(String, MemberId),
    Other,
}

fn log_outcome(username: &str, outcome: &Outcome, about: &About) {
    match outcome {
        Outcome::Joined {
            group,
            member,
            view,
        } => info!(
            target: TRACKER_TARGET,
            user = %username,
            group = %group,
            member = member.0,
            view = view.0,
            "{username} joined {group} as member {member} (view {view})"
        ),
        Outcome::Left => {
            let group = match about {
                About::Leave(group) => group.as_str(),
                _ => "a group",
            };
            info!(target: TRACKER_TARGET, user = %username, group = %group, "{username} left {group}")
        }
        Outcome::Refused { code, message } => info!(
            target: TRACKER_TARGET,
            user = %username,
            code = ?code,
            "request of {username} refused: {message}"
        ),
        Outcome::WrongPassword {
            message, failures, ..
        } => info!(
            target: TRACKER_TARGET,
            user = %username,
            failures,
            "request of {username} refused: {message} (wrong password {failures} of this connection)"
        ),
        Outcome::Suspected { removed } => {
            let About::Suspect(group, member) = about else {
                return;
            };
            if *removed {
                warn!(
                    target: TRACKER_TARGET,
                    user = %username,
                    group = %group,
                    member = member.0,
                    reason = Departure::Suspected.as_str(),
                    "member {member} removed from {group}: reported silent on the data plane by enough members (last report by {username})"
                );
            } else {
                info!(
                    target: TRACKER_TARGET,
                    user = %username,
                    group = %group,
                    member = member.0,
                    "{username} reports member {member} of {group} silent"
                );
            }
        }
        Outcome::Bye | Outcome::Answered => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_reach_ipv4_clients_from_an_ipv6_socket_and_back() {
        let v4: SocketAddr = "127.0.0.1:5000".parse().expect("v4");
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:5000".parse().expect("mapped");
        let v6: SocketAddr = "[::1]:5000".parse().expect("v6");
        let any6: SocketAddr = "[::]:0".parse().expect("any6");
        let any4: SocketAddr = "0.0.0.0:0".parse().expect("any4");
        assert_eq!(probe_target(Some(any6), v4), mapped);
        assert_eq!(probe_target(Some(any4), mapped), v4);
        assert_eq!(probe_target(Some(any4), v4), v4);
        assert_eq!(probe_target(Some(any6), v6), v6);
        assert_eq!(
            probe_target(Some(any4), v6),
            v6,
            "not mapped: left as it is"
        );
        assert_eq!(probe_target(None, v4), v4);
    }

    #[test]
    fn cookies_match_only_when_equal() {
        let a = [7u8; COOKIE_LEN];
        let mut b = a;
        assert!(cookies_match(&a, &b));
        b[COOKIE_LEN - 1] ^= 1;
        assert!(!cookies_match(&a, &b));
        b = a;
        b[0] = 0;
        assert!(!cookies_match(&a, &b));
    }
}
