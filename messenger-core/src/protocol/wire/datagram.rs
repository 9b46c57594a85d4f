//! The data plane (UDP): the datagram [`Header`], every [`Frame`] and what it carries, and how a
//! [`Datagram`] is encoded, decoded (copying, or sharing the received buffer) and bundled under
//! a size budget ([`DatagramBuilder`]). The byte layout is drawn in the parent module's
//! documentation.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{WireError, MAGIC, MAX_DATAGRAM, VERSION};
use crate::protocol::types::{GroupId, MemberId, OrderKey, Priority, SeqNo, ViewId};

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
    ResolutionReport(Box<ResolutionReport>),
    /// Failure resolution: please relay the content of these messages of a departed member.
    ResolutionFetch(ResolutionFetch),
    /// Failure resolution: the content of one message of a departed member.
    ResolutionRelay(ResolutionRelay),
    /// Failure resolution: the coordinator's decision.
    ResolutionDecision(ResolutionDecision),
    /// Failure resolution: the decision of `round` has been applied.
    ResolutionAck(ResolutionAck),
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
pub struct ResolutionReport {
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
pub struct ResolutionFetch {
    pub round: ViewId,
    pub origin: MemberId,
    pub seqs: Vec<SeqNo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolutionRelay {
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
pub struct ResolutionDecision {
    pub round: ViewId,
    pub streams: Vec<StreamDecision>,
    /// Which part of the whole decision this frame carries (a stream's decided messages may
    /// span parts; every part names its first sequence number).
    pub part: Part,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolutionAck {
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
    ResolutionReport(Box<ResolutionReport>),
    ResolutionFetch(ResolutionFetch),
    ResolutionRelay(#[serde(borrow)] ResolutionRelayIn<'a>),
    ResolutionDecision(ResolutionDecision),
    ResolutionAck(ResolutionAck),
}

#[derive(Deserialize)]
struct DataIn<'a> {
    seq: SeqNo,
    view: ViewId,
    stamp: u64,
    payload: &'a [u8],
}

#[derive(Deserialize)]
struct ResolutionRelayIn<'a> {
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
            FrameIn::ResolutionReport(f) => Frame::ResolutionReport(f),
            FrameIn::ResolutionFetch(f) => Frame::ResolutionFetch(f),
            FrameIn::ResolutionRelay(r) => Frame::ResolutionRelay(ResolutionRelay {
                origin: r.origin,
                seq: r.seq,
                view: r.view,
                stamp: r.stamp,
                payload: buffer.slice_ref(r.payload),
            }),
            FrameIn::ResolutionDecision(f) => Frame::ResolutionDecision(f),
            FrameIn::ResolutionAck(f) => Frame::ResolutionAck(f),
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
/// A frame that alone exceeds the budget (a large resolution report, say) travels in a datagram
/// of its own, up to [`MAX_DATAGRAM`].
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
