//! The wire format: datagrams on the data plane (UDP) and frames on the control plane (TCP).
//!
//! # Datagrams
//!
//! ```text
//! +-------+-------+---------+----------------------+---------+---------+-----
//! | 'G'   | 'M'   | version | header (postcard)    | frame 1 | frame 2 | ...
//! +-------+-------+---------+----------------------+---------+---------+-----
//! ```
//!
//! The first three bytes are raw so that a datagram of another protocol or version is rejected
//! before any decoding. The header names the group, the sending member and the sender's view.
//! Then come one or more [`Frame`]s, each postcard-encoded back to back (no count, no length:
//! postcard is self-delimiting), which is what lets [`DatagramBuilder`] bundle frames until a
//! size budget is reached.
//!
//! # Control frames
//!
//! On the tracker's TCP connection each frame is a 4-byte big-endian length followed by the
//! postcard encoding of a [`ClientFrame`] (client to tracker) or a [`ServerFrame`] (tracker to
//! client). [`FrameDecoder`] splits a byte stream into frames without I/O.
//!
//! Decoding never panics and never allocates more than the input can describe: every decoder
//! returns a [`WireError`].

use std::net::SocketAddr;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::types::{GroupId, MemberId, OrderKey, Priority, SeqNo, ViewId};

/// First two bytes of every datagram.
pub const MAGIC: [u8; 2] = *b"GM";
/// Version of the datagram format; a datagram with another version is rejected.
pub const VERSION: u8 = 2;
/// Version of the control protocol, carried in [`Hello`].
pub const CONTROL_VERSION: u32 = 2;
/// Largest datagram that is ever produced or accepted (the UDP payload limit over IPv4).
pub const MAX_DATAGRAM: usize = 65_507;
/// Default size budget for bundling frames into one datagram (fits an Ethernet MTU).
pub const DEFAULT_BUNDLE_SIZE: usize = 1400;
/// Largest control frame body accepted on the TCP connection.
pub const MAX_CONTROL_FRAME: usize = 1 << 20;

/// Why a datagram or frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("truncated input: {0} bytes is shorter than a header")]
    Truncated(usize),
    #[error("bad magic: not a messenger datagram")]
    BadMagic,
    #[error("unsupported datagram version {0} (this build speaks {VERSION})")]
    UnsupportedVersion(u8),
    #[error("input of {len} bytes exceeds the limit of {limit}")]
    Oversized { len: usize, limit: usize },
    #[error("malformed input: {0}")]
    Malformed(String),
    #[error("datagram carries no frame")]
    Empty,
}

impl From<postcard::Error> for WireError {
    fn from(e: postcard::Error) -> Self {
        WireError::Malformed(e.to_string())
    }
}

/// Who sent a datagram to whom, for which group, in which of the sender's views.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub group: GroupId,
    pub sender: MemberId,
    /// The membership the datagram is for. A member id names one membership, so a datagram
    /// built for a member that has since left is refused by a new membership of the same
    /// client on the same address.
    pub recipient: MemberId,
    /// The sender's view of the group when it started the datagram.
    pub view: ViewId,
}

/// One protocol frame; several are bundled in a datagram.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Frame {
    /// An application message of the header's sender.
    Data(Data),
    /// Periodic sender session message plus the sender's receive state of every stream.
    Status(Status),
    /// Cumulative acknowledgement of the recipient's own stream (piggybacked, cheap).
    Ack(Ack),
    /// The recipient should resend these messages of its own stream.
    Nack(Nack),
    /// ISIS: the header's sender proposes a priority for the recipient's message `seq`.
    Propose(Propose),
    /// ISIS: the agreed priority of the header sender's message `seq`.
    Final(Final),
    /// Failure resolution: a survivor's report to the coordinator (boxed: rare and large, it
    /// would otherwise make every frame of the data path larger).
    FlushReport(Box<FlushReport>),
    /// Failure resolution: please relay the content of these messages of a departed member.
    FlushFetch(FlushFetch),
    /// Failure resolution: the content of one message of a departed member.
    FlushRelay(FlushRelay),
    /// Failure resolution: the coordinator's decision.
    FlushDecision(FlushDecision),
    /// Failure resolution: the decision of `round` has been applied.
    FlushAck(FlushAck),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Data {
    pub seq: SeqNo,
    /// The sender's view when it sent the message: a member that joined in view `v` delivers
    /// exactly the sender's messages sent in views `>= v`.
    pub view: ViewId,
    /// Opaque to the protocol: the runtime puts the sender's wall-clock send time here
    /// (microseconds) so receivers can measure delivery latency.
    pub stamp: u64,
    pub payload: Bytes,
}

/// Receive state of one stream, as reported by the member sending the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamAck {
    pub origin: MemberId,
    /// Every message up to this one has been received (handed past the FIFO layer).
    pub received: SeqNo,
    /// Every message up to this one has a known final priority (total order only).
    pub finals: SeqNo,
    /// Every message up to this one has been delivered (total order only: a message can be
    /// final and still wait in the hold-back queue). The sender's window counts from here, which
    /// bounds what waits at this member per sender.
    pub delivered: SeqNo,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// Highest sequence number the sender has sent (finds tail loss).
    pub high: SeqNo,
    /// First sequence number of the sender's stream that the recipient must deliver.
    pub start: SeqNo,
    /// The sender's receive state of each stream it receives.
    pub acks: Vec<StreamAck>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    pub received: SeqNo,
    pub finals: SeqNo,
    /// See [`StreamAck::delivered`].
    pub delivered: SeqNo,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nack {
    /// Inclusive ranges of missing sequence numbers.
    pub missing: Vec<(SeqNo, SeqNo)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Propose {
    pub seq: SeqNo,
    /// The proposal is `(counter, header.sender)`.
    pub counter: u128,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Final {
    pub seq: SeqNo,
    pub priority: Priority,
}

/// What a survivor knows of the order of one message of a departed member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryState {
    /// Not proposed yet (held back behind a gap in the FIFO layer).
    Unproposed,
    /// Proposed with this priority, final unknown.
    Proposed(Priority),
    /// Final priority known (the message may already be delivered).
    Final(Priority),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportEntry {
    pub seq: SeqNo,
    pub state: EntryState,
    /// Set when the survivor holds the content (and can relay it): the view it was sent in.
    pub content: Option<ViewId>,
    /// With `content`: the digest of what the survivor holds ([`content_digest`]).
    pub digest: Option<ContentDigest>,
}

/// SHA-256 of a message's view, stamp and payload, truncated to 128 bits: what failure
/// resolution relays must match what a survivor reported holding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ContentDigest(pub [u8; 16]);

/// The digest of one message's content as failure resolution reports and checks it.
pub fn content_digest(view: ViewId, stamp: u64, payload: &[u8]) -> ContentDigest {
    use sha2::Digest as _;
    let mut hasher = sha2::Sha256::new();
    hasher.update(b"messenger relay v1");
    hasher.update(view.0.to_le_bytes());
    hasher.update(stamp.to_le_bytes());
    hasher.update((payload.len() as u64).to_le_bytes());
    hasher.update(payload);
    let full = hasher.finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&full[..16]);
    ContentDigest(out)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamReport {
    pub origin: MemberId,
    /// Highest sequence number of `origin` this survivor has delivered; `None` when it never
    /// learned where its part of the stream starts (it joined after `origin`).
    pub delivered: Option<SeqNo>,
    /// Set when this survivor already applied a decision that ended the stream at this number.
    pub closed: Option<SeqNo>,
    pub entries: Vec<ReportEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlushReport {
    /// The view in which the report is made.
    pub round: ViewId,
    /// The view in which the reporting member joined (it delivers only messages sent in views
    /// from this one on).
    pub joined: ViewId,
    /// Highest order key this survivor has delivered in the group.
    pub delivered_max: Option<OrderKey>,
    pub streams: Vec<StreamReport>,
    /// Which part of the whole report this frame carries (a report with many entries is sent
    /// in parts, each fitting a datagram; a stream's entries may span parts).
    pub part: Part,
}

/// Which part of a report or decision a frame carries, counting from 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    pub index: u32,
    pub count: u32,
}

impl Part {
    /// All of it in one frame.
    pub const WHOLE: Part = Part { index: 0, count: 1 };
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlushFetch {
    pub round: ViewId,
    pub origin: MemberId,
    pub seqs: Vec<SeqNo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlushRelay {
    pub origin: MemberId,
    pub seq: SeqNo,
    pub view: ViewId,
    pub stamp: u64,
    pub payload: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamDecision {
    pub origin: MemberId,
    /// Sequence number of the first decided message.
    pub first: SeqNo,
    /// Messages `first, first + 1, ...` in order; everything after the last one is dropped.
    pub decided: Vec<Decided>,
}

/// The fate of one message of a departed member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decided {
    pub priority: Priority,
    /// The view it was sent in: members that joined later do not deliver it.
    pub view: ViewId,
    /// The content to deliver: relayed copies that do not match are refused.
    pub digest: ContentDigest,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlushDecision {
    pub round: ViewId,
    pub streams: Vec<StreamDecision>,
    /// Which part of the whole decision this frame carries (a stream's decided messages may
    /// span parts; every part names its first sequence number).
    pub part: Part,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlushAck {
    pub round: ViewId,
}

/// A decoded datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    pub header: Header,
    pub frames: Vec<Frame>,
}

impl Datagram {
    /// Encodes the datagram as one buffer (no size budget: see [`DatagramBuilder`] for bundling).
    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out = postcard::to_extend(&self.header, out)?;
        for frame in &self.frames {
            out = postcard::to_extend(frame, out)?;
        }
        if out.len() > MAX_DATAGRAM {
            return Err(WireError::Oversized {
                len: out.len(),
                limit: MAX_DATAGRAM,
            });
        }
        Ok(out)
    }

    /// [`Datagram::decode`] without copying payloads: every payload is a slice of `bytes`
    /// (which it keeps alive).
    pub fn decode_shared(bytes: &Bytes) -> Result<Datagram, WireError> {
        Self::decode_as::<FrameIn<'_>>(bytes, |frame| frame.into_frame(bytes))
    }

    /// Decodes and validates one datagram.
    pub fn decode(bytes: &[u8]) -> Result<Datagram, WireError> {
        Self::decode_as::<Frame>(bytes, |frame| frame)
    }

    /// Header, then frames decoded as `F` and turned into [`Frame`]s, until the bytes end.
    fn decode_as<'a, F: Deserialize<'a>>(
        bytes: &'a [u8],
        into_frame: impl Fn(F) -> Frame,
    ) -> Result<Datagram, WireError> {
        let (header, mut rest) = decode_header(bytes)?;
        let mut frames = Vec::new();
        while !rest.is_empty() {
            let (frame, tail) = postcard::take_from_bytes::<F>(rest)?;
            frames.push(into_frame(frame));
            rest = tail;
        }
        if frames.is_empty() {
            return Err(WireError::Empty);
        }
        Ok(Datagram { header, frames })
    }
}

/// [`Frame`] as decoded from a shared buffer: payloads borrow from the datagram and become
/// slices of it ([`Datagram::decode_shared`]), with no allocation or copy per message. Same
/// variants in the same order as [`Frame`], so the same bytes decode to the same frames
/// (tested).
#[derive(Deserialize)]
enum FrameIn<'a> {
    Data(#[serde(borrow)] DataIn<'a>),
    Status(Status),
    Ack(Ack),
    Nack(Nack),
    Propose(Propose),
    Final(Final),
    FlushReport(Box<FlushReport>),
    FlushFetch(FlushFetch),
    FlushRelay(#[serde(borrow)] FlushRelayIn<'a>),
    FlushDecision(FlushDecision),
    FlushAck(FlushAck),
}

#[derive(Deserialize)]
struct DataIn<'a> {
    seq: SeqNo,
    view: ViewId,
    stamp: u64,
    payload: &'a [u8],
}

#[derive(Deserialize)]
struct FlushRelayIn<'a> {
    origin: MemberId,
    seq: SeqNo,
    view: ViewId,
    stamp: u64,
    payload: &'a [u8],
}

impl FrameIn<'_> {
    fn into_frame(self, buffer: &Bytes) -> Frame {
        match self {
            FrameIn::Data(d) => Frame::Data(Data {
                seq: d.seq,
                view: d.view,
                stamp: d.stamp,
                payload: buffer.slice_ref(d.payload),
            }),
            FrameIn::Status(f) => Frame::Status(f),
            FrameIn::Ack(f) => Frame::Ack(f),
            FrameIn::Nack(f) => Frame::Nack(f),
            FrameIn::Propose(f) => Frame::Propose(f),
            FrameIn::Final(f) => Frame::Final(f),
            FrameIn::FlushReport(f) => Frame::FlushReport(f),
            FrameIn::FlushFetch(f) => Frame::FlushFetch(f),
            FrameIn::FlushRelay(r) => Frame::FlushRelay(FlushRelay {
                origin: r.origin,
                seq: r.seq,
                view: r.view,
                stamp: r.stamp,
                payload: buffer.slice_ref(r.payload),
            }),
            FrameIn::FlushDecision(f) => Frame::FlushDecision(f),
            FrameIn::FlushAck(f) => Frame::FlushAck(f),
        }
    }
}

/// Encodes one frame on its own, for [`DatagramBuilder::push_encoded`].
pub fn encode_frame(frame: &Frame) -> Result<Vec<u8>, WireError> {
    Ok(postcard::to_stdvec(frame)?)
}

/// [`encode_frame`], appending to `out` (a buffer reused from frame to frame).
pub fn encode_frame_into(frame: &Frame, out: Vec<u8>) -> Result<Vec<u8>, WireError> {
    Ok(postcard::to_extend(frame, out)?)
}

/// Checks magic, version and size, and decodes the header; returns the undecoded frames.
pub fn decode_header(bytes: &[u8]) -> Result<(Header, &[u8]), WireError> {
    if bytes.len() > MAX_DATAGRAM {
        return Err(WireError::Oversized {
            len: bytes.len(),
            limit: MAX_DATAGRAM,
        });
    }
    if bytes.len() < 3 {
        return Err(WireError::Truncated(bytes.len()));
    }
    if bytes[..2] != MAGIC {
        return Err(WireError::BadMagic);
    }
    if bytes[2] != VERSION {
        return Err(WireError::UnsupportedVersion(bytes[2]));
    }
    let (header, rest) = postcard::take_from_bytes::<Header>(&bytes[3..])?;
    Ok((header, rest))
}

/// Bundles frames for one destination into datagrams of at most `budget` bytes.
///
/// A frame that alone exceeds the budget (a large flush report, say) travels in a datagram of
/// its own, up to [`MAX_DATAGRAM`].
#[derive(Debug)]
pub struct DatagramBuilder {
    header_bytes: Vec<u8>,
    budget: usize,
    current: Vec<u8>,
    scratch: Vec<u8>,
    done: Vec<Vec<u8>>,
}

impl DatagramBuilder {
    pub fn new(header: Header, budget: usize) -> Self {
        let mut header_bytes = Vec::with_capacity(24);
        header_bytes.extend_from_slice(&MAGIC);
        header_bytes.push(VERSION);
        header_bytes =
            postcard::to_extend(&header, header_bytes).expect("a header always serializes");
        DatagramBuilder {
            current: Vec::new(),
            header_bytes,
            budget,
            scratch: Vec::new(),
            done: Vec::new(),
        }
    }

    /// The header of datagrams started from now on (the view changed).
    pub fn set_header(&mut self, header: Header) {
        self.header_bytes.clear();
        self.header_bytes.extend_from_slice(&MAGIC);
        self.header_bytes.push(VERSION);
        self.header_bytes = postcard::to_extend(&header, std::mem::take(&mut self.header_bytes))
            .expect("a header always serializes");
    }

    /// Appends a frame, starting a new datagram when the budget would be exceeded.
    pub fn push(&mut self, frame: &Frame) -> Result<(), WireError> {
        self.scratch.clear();
        let scratch = std::mem::take(&mut self.scratch);
        let encoded = postcard::to_extend(frame, scratch)?;
        let result = self.push_encoded(&encoded);
        self.scratch = encoded;
        result
    }

    /// Appends a frame already encoded with [`encode_frame`] (a frame sent to many members is
    /// encoded once).
    pub fn push_encoded(&mut self, encoded: &[u8]) -> Result<(), WireError> {
        let alone = self.header_bytes.len() + encoded.len();
        if alone > MAX_DATAGRAM {
            return Err(WireError::Oversized {
                len: alone,
                limit: MAX_DATAGRAM,
            });
        }
        if !self.current.is_empty() && self.current.len() + encoded.len() > self.budget {
            self.done.push(std::mem::take(&mut self.current));
        }
        if self.current.is_empty() {
            self.current.reserve(self.budget.max(alone));
            self.current.extend_from_slice(&self.header_bytes);
        }
        self.current.extend_from_slice(encoded);
        Ok(())
    }

    /// True when nothing has been pushed since the last [`DatagramBuilder::finish`].
    pub fn is_empty(&self) -> bool {
        self.current.is_empty() && self.done.is_empty()
    }

    /// Closes the datagram under construction and returns every finished datagram.
    pub fn finish(&mut self) -> impl Iterator<Item = Vec<u8>> + '_ {
        if !self.current.is_empty() {
            self.done.push(std::mem::take(&mut self.current));
        }
        self.done.drain(..)
    }
}

// ---------------------------------------------------------------------------------------------
// Control plane (tracker <-> client over TCP)
// ---------------------------------------------------------------------------------------------

/// Delivery order of a group, fixed when the group is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Order {
    Fifo,
    Total,
}

impl Order {
    /// The order's name: `"fifo"` or `"total"`, what [`FromStr`](std::str::FromStr) parses
    /// and [`Display`](std::fmt::Display) writes (command lines, bindings, logs).
    pub const fn as_str(self) -> &'static str {
        match self {
            Order::Fifo => "fifo",
            Order::Total => "total",
        }
    }
}

impl std::fmt::Display for Order {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not an [`Order`]'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("order must be \"fifo\" or \"total\", not {0:?}")]
pub struct ParseOrderError(pub String);

impl std::str::FromStr for Order {
    type Err = ParseOrderError;

    /// `"fifo"` or `"total"`, exactly (no other case or spelling).
    fn from_str(s: &str) -> Result<Order, ParseOrderError> {
        match s {
            "fifo" => Ok(Order::Fifo),
            "total" => Ok(Order::Total),
            other => Err(ParseOrderError(other.to_string())),
        }
    }
}

/// One member of a view as the tracker announces it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewMember {
    pub id: MemberId,
    pub name: String,
    pub addr: SocketAddr,
    /// The view in which this member joined the group (datagrams it sent in earlier views
    /// belong to an earlier membership and are ignored).
    pub joined: ViewId,
}

/// A group's membership at one point of its history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct View {
    pub group: GroupId,
    pub name: String,
    pub order: Order,
    pub id: ViewId,
    pub members: Vec<ViewMember>,
}

impl View {
    pub fn member(&self, id: MemberId) -> Option<&ViewMember> {
        self.members.iter().find(|m| m.id == id)
    }

    pub fn contains(&self, id: MemberId) -> bool {
        self.member(id).is_some()
    }
}

/// First frame of every client connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub version: u32,
    pub username: String,
    /// Where this client receives datagrams (the address peers send to).
    pub udp_addr: SocketAddr,
}

/// Delivery metrics of one client, sent with every heartbeat answer and when it quits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricsReport {
    /// Messages this client sent (all groups).
    pub sent: u64,
    /// Messages from other members delivered to this client.
    pub received: u64,
    /// Time since the client connected.
    pub elapsed_micros: u64,
    /// Delivery latency (send to delivery) of the received messages.
    pub latency_mean_micros: u64,
    pub latency_p50_micros: u64,
    pub latency_p99_micros: u64,
    pub latency_max_micros: u64,
    /// Datagrams dropped as malformed, spoofed, stale or for an unknown group.
    pub dropped_datagrams: u64,
}

/// A group password as a join carries it: on the wire a plain string (the encoding of a
/// `String`), in `Debug` output never shown, so that logging a request cannot leak it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Password(String);

impl Password {
    pub fn new(password: impl Into<String>) -> Self {
        Password(password.into())
    }

    /// The password itself, for the one place that compares it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// A request from a client; each gets exactly one [`Reply`] with the same id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// One page of the groups, in name order: at most [`GROUPS_PAGE`] of them, starting after
    /// the group named `after` (from the first when `None`). [`Reply::Groups`] says whether
    /// more exist; the next page starts after the last name of this one.
    ListGroups {
        after: Option<String>,
    },
    ListMembers {
        group: String,
    },
    /// Joins `group`, creating it with `order` if it does not exist (and the policy allows).
    Join {
        group: String,
        order: Order,
        password: Option<Password>,
    },
    Leave {
        group: String,
    },
    /// Leaves every group and closes the session; the metrics are logged by the tracker.
    Quit {
        metrics: MetricsReport,
    },
    /// Tracker-wide counters.
    Stats,
    /// Reports that `member` of `group` has been silent on the data plane (see
    /// [`Event::Suspect`](crate::protocol::Event::Suspect)); the tracker removes it from the
    /// group once enough of its members report it. Answered by [`Reply::Suspected`].
    Suspect {
        group: String,
        member: MemberId,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientFrame {
    Hello(Hello),
    Request {
        id: u64,
        request: Request,
    },
    /// Answer to [`ServerFrame::Heartbeat`], with the client's metrics so far (the tracker logs
    /// the last ones it heard if the client is dropped).
    HeartbeatAck {
        nonce: u64,
        metrics: MetricsReport,
    },
    /// The cookie of the address probe the tracker sent to the hello's UDP address (see
    /// [`encode_address_probe`]): proof that this client receives datagrams there.
    AddressProof {
        cookie: [u8; COOKIE_LEN],
    },
}

/// First two bytes of the tracker's address probe (distinct from the data plane's [`MAGIC`]).
pub const PROBE_MAGIC: [u8; 2] = *b"GP";
/// Version of the address probe format.
pub const PROBE_VERSION: u8 = 1;
/// Length of an address-proof cookie.
pub const COOKIE_LEN: usize = 16;
/// Length of an address probe datagram: magic, version, cookie.
pub const PROBE_LEN: usize = 3 + COOKIE_LEN;

/// The datagram the tracker sends to a client's claimed UDP address: `"GP"`, the version,
/// and the cookie the client must send back over TCP in [`ClientFrame::AddressProof`].
pub fn encode_address_probe(cookie: &[u8; COOKIE_LEN]) -> [u8; PROBE_LEN] {
    let mut out = [0u8; PROBE_LEN];
    out[..2].copy_from_slice(&PROBE_MAGIC);
    out[2] = PROBE_VERSION;
    out[3..].copy_from_slice(cookie);
    out
}

/// The cookie of an address probe, or `None` if `bytes` is not one (any other datagram,
/// including every data-plane datagram, whose magic differs).
pub fn decode_address_probe(bytes: &[u8]) -> Option<[u8; COOKIE_LEN]> {
    if bytes.len() != PROBE_LEN || bytes[..2] != PROBE_MAGIC || bytes[2] != PROBE_VERSION {
        return None;
    }
    let mut cookie = [0u8; COOKIE_LEN];
    cookie.copy_from_slice(&bytes[3..]);
    Some(cookie)
}

/// Error codes of the control protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ErrorCode {
    UnknownGroup,
    NotAMember,
    AlreadyMember,
    UsernameTaken,
    /// A username or group name that is empty, too long, or has spaces or control characters.
    InvalidName,
    /// Wrong password, or not on the group's allow-list, or the policy forbids creating it.
    AccessDenied,
    /// The group exists with the other order.
    OrderMismatch,
    GroupFull,
    BadRequest,
    VersionMismatch,
    /// A limit of the tracker was reached (connections, groups, partial frames, password
    /// attempts); the message names the limit.
    LimitReached,
    /// The client did not prove that it receives datagrams at the UDP address of its hello
    /// (no proof in time, or a wrong cookie); the message names the address.
    AddressUnverified,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupInfo {
    pub name: String,
    pub order: Order,
    pub members: u32,
}

/// Tracker-wide counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackerStats {
    pub clients: u32,
    pub groups: u32,
    pub memberships: u32,
    pub views_pushed: u64,
    pub requests: u64,
    pub errors: u64,
    /// Clients removed because they stopped answering heartbeats.
    pub clients_dropped: u64,
    /// Connections closed for a malformed or oversized frame or a protocol violation.
    pub bad_connections: u64,
    /// Connections refused or closed for reaching a limit: connections in all or per
    /// address, bytes of partial frames, wrong passwords.
    pub refused_connections: u64,
    /// Members taken out of a group because enough of its members reported them silent.
    pub members_suspected: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// One page of groups (see [`Request::ListGroups`]); `more` when further groups follow
    /// the last one listed.
    Groups {
        groups: Vec<GroupInfo>,
        more: bool,
    },
    Members(View),
    /// The joiner's member id in the group, and the view that added it.
    Joined {
        member: MemberId,
        view: View,
    },
    Left,
    Bye,
    Stats(TrackerStats),
    /// The report of a silent member was counted; `removed` when it was the one that made the
    /// tracker take the member out of the group.
    Suspected {
        removed: bool,
    },
    Error {
        code: ErrorCode,
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerFrame {
    /// Accepts the hello. `client` numbers the session; heartbeats come every
    /// `heartbeat_interval_ms`.
    Welcome {
        client: u64,
        heartbeat_interval_ms: u64,
    },
    Reply {
        id: u64,
        reply: Reply,
    },
    /// A group's new view in full: pushed to a member that joins it (and whenever the tracker
    /// cannot assume the client holds the previous view).
    ViewChange(View),
    /// A group's new view as a change of the previous one, pushed to the members that held
    /// the previous view (and to a member it removed): see [`ViewDelta::apply`].
    ViewDelta(ViewDelta),
    Heartbeat {
        nonce: u64,
    },
    /// A connection-level error (bad hello, protocol violation); the tracker closes the
    /// connection after it.
    Error {
        code: ErrorCode,
        message: String,
    },
}

/// A view as the change from the view before it: what a member that holds view `from_view`
/// of the group needs to compute view `view`. Members keep their order; added members come
/// last, in the order they joined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewDelta {
    pub group: GroupId,
    pub from_view: ViewId,
    pub view: ViewId,
    pub added: Vec<ViewMember>,
    pub removed: Vec<MemberId>,
}

impl ViewDelta {
    /// The change from `before` to `after` (two views of the same group).
    pub fn between(before: &View, after: &View) -> ViewDelta {
        ViewDelta {
            group: after.group,
            from_view: before.id,
            view: after.id,
            added: after
                .members
                .iter()
                .filter(|m| !before.contains(m.id))
                .cloned()
                .collect(),
            removed: before
                .members
                .iter()
                .filter(|m| !after.contains(m.id))
                .map(|m| m.id)
                .collect(),
        }
    }

    /// The view this change leads to from `previous`, or `None` when `previous` is not the
    /// view it starts from (another group or another view id).
    pub fn apply(&self, previous: &View) -> Option<View> {
        if previous.group != self.group || previous.id != self.from_view {
            return None;
        }
        let mut members: Vec<ViewMember> = previous
            .members
            .iter()
            .filter(|m| !self.removed.contains(&m.id))
            .cloned()
            .collect();
        members.extend(
            self.added
                .iter()
                .filter(|m| !previous.contains(m.id))
                .cloned(),
        );
        Some(View {
            group: previous.group,
            name: previous.name.clone(),
            order: previous.order,
            id: self.view,
            members,
        })
    }
}

/// Most groups in one [`Reply::Groups`] page.
pub const GROUPS_PAGE: usize = 256;

/// Encodes one control frame with its 4-byte big-endian length prefix.
pub fn encode_control<T: Serialize>(frame: &T) -> Result<Vec<u8>, WireError> {
    let mut out = vec![0u8; 4];
    out = postcard::to_extend(frame, out)?;
    let body = out.len() - 4;
    if body > MAX_CONTROL_FRAME {
        return Err(WireError::Oversized {
            len: body,
            limit: MAX_CONTROL_FRAME,
        });
    }
    out[..4].copy_from_slice(&(body as u32).to_be_bytes());
    Ok(out)
}

/// Buffer capacity a [`FrameDecoder`] gives back once it holds no partial frame.
const SHRINK_ABOVE: usize = 64 * 1024;

/// Splits a TCP byte stream into control frames (sans-IO: feed bytes in, take frames out).
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
}

impl FrameDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes read from the connection.
    pub fn extend(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes received but not yet part of a complete frame.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Takes the next complete frame. `Ok(None)` means more bytes are needed; an error means
    /// the stream is corrupt and the connection should be closed.
    pub fn next_frame<T: for<'de> Deserialize<'de>>(&mut self) -> Result<Option<T>, WireError> {
        if self.buf.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize;
        if len > MAX_CONTROL_FRAME {
            return Err(WireError::Oversized {
                len,
                limit: MAX_CONTROL_FRAME,
            });
        }
        if self.buf.len() < 4 + len {
            return Ok(None);
        }
        let result = match postcard::take_from_bytes::<T>(&self.buf[4..4 + len]) {
            Ok((frame, [])) => Ok(frame),
            Ok((_, rest)) => Err(WireError::Malformed(format!(
                "{} trailing bytes after the frame",
                rest.len()
            ))),
            Err(e) => Err(e.into()),
        };
        self.buf.drain(..4 + len);
        // A large frame must not leave its buffer allocated for the rest of the connection.
        if self.buf.is_empty() && self.buf.capacity() > SHRINK_ABOVE {
            self.buf = Vec::new();
        }
        result.map(Some)
    }
}

#[cfg(test)]
mod order_names {
    use super::{Order, ParseOrderError};

    #[test]
    fn every_order_parses_back_from_its_name() {
        for order in [Order::Fifo, Order::Total] {
            assert_eq!(order.as_str().parse::<Order>(), Ok(order));
            assert_eq!(order.to_string(), order.as_str());
        }
        assert_eq!(Order::Fifo.as_str(), "fifo");
        assert_eq!(Order::Total.as_str(), "total");
        assert_eq!(
            "Total".parse::<Order>(),
            Err(ParseOrderError("Total".to_string()))
        );
    }
}
