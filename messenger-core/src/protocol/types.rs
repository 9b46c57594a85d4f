//! The protocol's vocabulary: identifiers, sequence numbers, ISIS priorities and the content
//! of a message.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
        )]
        pub struct $name(pub u64);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// One membership of one group, as numbered by the tracker: a client that leaves and joins
    /// again gets a new id.
    MemberId
);
id_type!(
    /// A group, as numbered by the tracker.
    GroupId
);
id_type!(
    /// A view of one group; grows with every membership change.
    ViewId
);
id_type!(
    /// Position of a message in its sender's stream within one group; the first message is 1.
    /// `SeqNo(0)` means "nothing yet".
    SeqNo
);

impl SeqNo {
    pub const ZERO: SeqNo = SeqNo(0);

    /// The following number (saturating: numbers from the network are never trusted not to
    /// be at the limit).
    pub fn next(self) -> SeqNo {
        SeqNo(self.0.saturating_add(1))
    }

    pub fn prev(self) -> SeqNo {
        SeqNo(self.0.saturating_sub(1))
    }
}

/// An ISIS priority: `(counter, member)`, compared lexicographically so that ties between
/// equal counters are broken the same way at every member.
///
/// Counters are 128 bits wide so that no value a member can send stops a group. An honest
/// counter grows by at most one per message ordered, so two honest members never know
/// counters more than [`Priority::MAX_AHEAD`] apart (that would take 2^64 messages); a frame
/// carrying a counter further ahead of what the receiver knows is refused, so each frame can
/// raise the group's counters by at most that much, and reaching [`Priority::MAX_COUNTER`]
/// would take 2^56 accepted frames.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
pub struct Priority {
    pub counter: u128,
    pub member: MemberId,
}

impl Priority {
    /// Counters at or above this are refused, which keeps `counter + 1` from overflowing.
    pub const MAX_COUNTER: u128 = 1 << 120;
    /// How far above the highest counter a member knows a received counter may be.
    pub const MAX_AHEAD: u128 = 1 << 64;

    pub fn new(counter: u128, member: MemberId) -> Self {
        Priority { counter, member }
    }

    /// False for a priority no honest member produces, whatever it knows.
    pub fn is_valid(&self) -> bool {
        self.counter < Self::MAX_COUNTER
    }

    /// True when an honest member could have produced `counter` while this member knows
    /// counters up to `known`.
    pub fn plausible_counter(counter: u128, known: u128) -> bool {
        counter < Self::MAX_COUNTER && counter <= known.saturating_add(Self::MAX_AHEAD)
    }
}

/// The position of a message in a total-order hold-back queue: its priority, then its
/// identity. Two messages never share a key, even when a failure resolution gives them the
/// same priority, and a message's key only grows when its final replaces its proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct OrderKey {
    pub priority: Priority,
    pub origin: MemberId,
    pub seq: SeqNo,
}

/// What a message is, apart from its place: the view its sender sent it in, the sender's opaque
/// stamp and the application's bytes. The one type for it wherever a message is kept (FIFO
/// hold-back, the total-order hold-back queue, the retransmission buffer, content relayed and
/// kept by a failure resolution); the wire frames (`Data`, `ResolutionRelay`) carry the same
/// three fields. Cloning shares the bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content {
    /// The view the sender was in when it sent the message.
    pub view: ViewId,
    /// Opaque to the protocol (the runtime puts the send time here).
    pub stamp: u64,
    pub payload: Bytes,
}
