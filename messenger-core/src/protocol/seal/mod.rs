//! Sealed datagrams: every datagram encrypted and authenticated under a key that only its
//! sender and its receiver hold.
//!
//! Sans-IO like the rest of `protocol/`: no clock, no socket, no randomness of its own (a
//! member's secret is made from 32 bytes the caller takes from the OS). One [`KeyRing`] per
//! membership of a group holds the member's X25519 secret, the keys of the views it installed,
//! the send counters and the replay windows. The group seals each datagram right before it
//! leaves ([`KeyRing::seal`], after `poll_transmit` built it) and opens each one right after it
//! arrives ([`KeyRing::open`], before anything else decodes it).
//!
//! # A sealed datagram
//!
//! ```text
//! +-----+-----+---------+----------------------------+-------------+----------------+--------+
//! | 'G' | 'M' | 0x82    | header (postcard): group,  | counter     | frames,        | tag    |
//! |     |     |         | sender, recipient, view    | u64, LE, 8  | encrypted      | 16     |
//! +-----+-----+---------+----------------------------+-------------+----------------+--------+
//!  \______________________ associated data (clear) ________________/
//! ```
//!
//! The first bytes and the header are those of a plain datagram (`wire`'s module
//! documentation), so the receiver finds the key without decrypting anything; the version byte
//! is [`SEALED_VERSION`], the plain [`VERSION`] with the high bit set, so a plain decoder refuses
//! a sealed datagram and [`KeyRing::open`] refuses a plain one ([`OpenError::Unsealed`]). The
//! counter numbers the datagrams of one (sender, receiver, view) from 0; the nonce is four zero
//! bytes and the counter. Everything before the ciphertext is associated data. The AEAD is
//! AES-256-GCM; sealing adds [`SEAL_OVERHEAD`] = 24 bytes (counter and tag).
//!
//! A sealed datagram opened in place becomes a plain one: [`KeyRing::open`] decrypts the frames
//! where they are and moves the (short) header up over the counter, so `bytes[opened.plain]`
//! is the plain datagram `'G' 'M' VERSION header frames` that `wire::Datagram::decode` reads.
//!
//! # Key schedule
//!
//! ```text
//!  member A: secret a, public A = X25519(a, 9)        member B: secret b, public B
//!                  │          (A and B published in the group's view by the tracker)
//!                  ▼
//!  shared  = X25519(a, B) = X25519(b, A)             all zeros: B refused (small order)
//!  prk     = HKDF-Extract(salt = "messenger seal v1", shared)          kept per pair
//!  key A→B in view v = HKDF-Expand(prk, "messenger seal v1 direction key"
//!                        ‖ group ‖ v ‖ A's member id ‖ B's member id ‖ A ‖ B, 32)   (u64s LE)
//!  key B→A in view v = the same with B first: another key
//! ```
//!
//! The tracker publishes public keys only, so it never holds a key; a third member C knows
//! neither `shared` nor the keys, so it cannot forge A's traffic to B (nor read it). Keys change
//! with every view; the secrets stay for the membership, so a view change computes
//! Diffie-Hellman only for members new to the ring. `keys.rs` pins the schedule with a
//! known-answer test.
//!
//! # Opening: cheap checks first
//!
//! [`KeyRing::open`] refuses, in this order, each with its own [`OpenError`]: a length outside
//! 31 to 65,507 bytes; another magic; a plain or unknown version; a header that does not
//! decode, or a datagram too short for it plus counter and tag; another group; another
//! recipient; a view retired or not installed; a sender not in that view or whose key was
//! refused; a counter the sender's replay window refuses. Only then is the tag verified (the one
//! AEAD operation, and the only step that costs more than a few comparisons), and only a
//! datagram whose tag verifies moves the replay window.
//!
//! # Views
//!
//! A datagram is sealed in its header's view. A view's keys stay until the caller retires
//! them ([`KeyRing::retire_before`]) when that view's failure resolution has ended, so nothing
//! in flight at a view change is lost. At most [`MAX_VIEWS`] views are held: the current view,
//! the one whose resolution may still be running, and two more for view changes that arrive
//! during it; installing a fifth evicts the oldest (reported in [`Installed::evicted`]), whose
//! datagrams are then refused as retired. Memory per installed view is about 1.4 KiB per other
//! member (two AES key schedules of 544 bytes, a 280-byte replay window, a counter).
//!
//! # What a caller provides
//!
//! - A fresh secret per membership ([`SecretKey::from_seed`] with 32 bytes from the OS), its
//!   public key published in the group's views, and one ring for the whole membership: a ring
//!   made again from the same secret for the same member and view would repeat nonces.
//! - Each view as it is applied: [`KeyRing::install_view`] with every member's id and
//!   published key; when that view's failure resolution ended (or, for a view without one,
//!   once traffic of the view before has drained), [`KeyRing::retire_before`].
//! - Sealing right after a datagram is built, with [`SEAL_OVERHEAD`] bytes left in the size
//!   budget; opening right after one arrives, before any decoding, on a mutable buffer; a
//!   runtime that must pick the group first reads it with [`clear_header`].
//! - A datagram of a view the receiver has not installed yet is refused
//!   ([`OpenError::UnknownView`]): the sender's repair sends it again, in a view by then known.
//!
//! # Crates, and why
//!
//! - AEAD: `ring`'s AES-256-GCM. Measured on this project's machine kind (2 vCPU AMD EPYC,
//!   one core, release build), sealing a 1,400-byte datagram: ring AES-256-GCM 0.26 µs, ring
//!   ChaCha20-Poly1305 0.87 µs, RustCrypto `aes-gcm` 0.8 to 1.4 µs, RustCrypto
//!   `chacha20poly1305` 3.3 to 4.6 µs; 100 bytes: 0.13 to 0.18, 0.29, 0.36 to 0.40, 2.3 to 2.6
//!   µs. ring uses the CPU's AES and carry-less multiply instructions (every x86-64 server
//!   of the last decade has them) and falls back to constant-time code without them. It is
//!   maintained by the rustls project. It does not wipe its key schedules: the bytes they are
//!   made from are wiped, the schedules live as long as the view's keys.
//! - X25519: `x25519-dalek` (`static_secrets`; ring's X25519 is ephemeral-only), whose
//!   secrets and shared secrets are zeroized when dropped.
//! - HKDF-SHA256: RustCrypto's `hkdf` 0.13 on the workspace's `sha2` 0.11 (the same digest
//!   traits), with sha2's `zeroize` so the HMAC states keyed by a pair's secret are wiped.
//!
//! # Layout
//!
//! - `mod.rs`: the format, [`KeyRing`] (install, retire, seal, open) and the errors.
//! - `keys.rs`: the key schedule: [`SecretKey`], [`PublicKey`], pair secrets, direction keys.
//! - `replay.rs`: [`ReplayWindow`].

mod keys;
mod replay;

use std::collections::{HashMap, HashSet, VecDeque};
use std::ops::Range;

use thiserror::Error;

pub use keys::{PublicKey, SecretKey, TAG_LEN};
pub use replay::{ReplayError, ReplayWindow, REPLAY_WINDOW};

use keys::{Direction, DirectionKey, PairSecret};

use crate::protocol::types::{GroupId, MemberId, ViewId};
use crate::protocol::wire::{self, Header, WireError, MAGIC, MAX_DATAGRAM, VERSION};

/// Version byte of a sealed datagram: the version of the frames inside, high bit set.
pub const SEALED_VERSION: u8 = 0x80 | VERSION;
/// Bytes of the counter that follows the header.
pub const COUNTER_LEN: usize = 8;
/// What sealing adds to a plain datagram: the counter and the tag. A plain datagram of more
/// than `MAX_DATAGRAM - SEAL_OVERHEAD` bytes cannot be sealed.
pub const SEAL_OVERHEAD: usize = COUNTER_LEN + TAG_LEN;
/// Shortest sealed datagram: magic, version, the shortest header (four one-byte numbers), the
/// counter and the tag, with no frames.
pub const MIN_SEALED: usize = 3 + 4 + COUNTER_LEN + TAG_LEN;
/// Views whose keys a ring holds at most (see the module documentation).
pub const MAX_VIEWS: usize = 4;

/// Why a received datagram was not opened. Nothing of the ring changed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum OpenError {
    #[error("{len} bytes is shorter than a sealed datagram ({min} at least)")]
    TooShort { len: usize, min: usize },
    #[error("{len} bytes is longer than any datagram ({MAX_DATAGRAM})")]
    TooLong { len: usize },
    #[error("bad magic: not a messenger datagram")]
    BadMagic,
    #[error("unsealed datagram (plain version {VERSION}): every datagram must be sealed")]
    Unsealed,
    #[error("unsupported datagram version {0:#04x} (this build seals with {SEALED_VERSION:#04x})")]
    UnsupportedVersion(u8),
    #[error("malformed clear header")]
    MalformedHeader,
    #[error("datagram of group {group}, not this ring's")]
    WrongGroup { group: GroupId },
    #[error("datagram for member {recipient}, not for this member")]
    Misdirected { recipient: MemberId },
    #[error("keys of view {view} are retired")]
    RetiredView { view: ViewId },
    #[error("keys of view {view} are not installed")]
    UnknownView { view: ViewId },
    #[error("sender {sender} is not a member of view {view}")]
    UnknownSender { sender: MemberId, view: ViewId },
    #[error("sender {sender}'s public key is of small order (all-zero shared secret): refused")]
    RefusedKey { sender: MemberId },
    #[error("from sender {sender}: {error}")]
    Replay {
        sender: MemberId,
        error: ReplayError,
    },
    #[error("bad tag: datagram from {sender} forged or corrupted")]
    BadTag { sender: MemberId },
}

/// Why a datagram could not be sealed. The datagram is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SealError {
    #[error("not a plain datagram: {0}")]
    NotPlain(WireError),
    #[error("datagram of group {group}, not this ring's")]
    WrongGroup { group: GroupId },
    #[error("datagram names sender {sender}, but this ring seals for member {me}")]
    NotMine { sender: MemberId, me: MemberId },
    #[error("sealing {len} bytes would exceed the datagram limit of {MAX_DATAGRAM}")]
    Oversized { len: usize },
    #[error("keys of view {view} are retired")]
    RetiredView { view: ViewId },
    #[error("keys of view {view} are not installed")]
    UnknownView { view: ViewId },
    #[error("recipient {recipient} is not a member of view {view}")]
    UnknownRecipient { recipient: MemberId, view: ViewId },
    #[error(
        "recipient {recipient}'s public key is of small order (all-zero shared secret): refused"
    )]
    RefusedKey { recipient: MemberId },
    #[error("counter of view {view} to {recipient} exhausted: no more datagrams in this view")]
    CounterExhausted { recipient: MemberId, view: ViewId },
}

/// Why a view was not installed. Nothing of the ring changed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InstallError {
    #[error("view {view} is not newer than the newest installed, {newest}")]
    NotNewer { view: ViewId, newest: ViewId },
    #[error("view {view} is older than the retired views (below {floor})")]
    Retired { view: ViewId, floor: ViewId },
    #[error("member {me} (this ring's) is not in view {view}")]
    NotInView { me: MemberId, view: ViewId },
    #[error("view {view} publishes another public key for member {me} than this ring's")]
    OwnKeyMismatch { me: MemberId, view: ViewId },
    #[error("member {member} appears twice in view {view}")]
    DuplicateMember { member: MemberId, view: ViewId },
}

/// What [`KeyRing::install_view`] did besides installing the view.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[must_use]
pub struct Installed {
    /// Members whose public key is of small order: nothing is sealed to them or opened from
    /// them in this view ([`SealError::RefusedKey`], [`OpenError::RefusedKey`]).
    pub refused: Vec<MemberId>,
    /// The oldest view, evicted to keep at most [`MAX_VIEWS`].
    pub evicted: Option<ViewId>,
}

/// A datagram opened in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The clear header (authenticated).
    pub header: Header,
    pub counter: u64,
    /// Where the plain datagram (magic, version, header, frames) now lies in the buffer.
    pub plain: Range<usize>,
}

/// The keys of one other member in one view.
struct PeerKeys {
    seal: DirectionKey,
    /// Counter of the next datagram sealed to the peer; `None` once exhausted.
    next: Option<u64>,
    open: DirectionKey,
    window: ReplayWindow,
}

enum Peer {
    Keys(Box<PeerKeys>),
    /// Its public key is of small order.
    Refused,
}

struct ViewKeys {
    id: ViewId,
    peers: HashMap<MemberId, Peer>,
}

/// A pair secret, or its refusal, with the public key it was computed for.
struct Known {
    public: PublicKey,
    secret: Option<PairSecret>,
}

/// One member's sealing state in one group: its secret, the installed views' keys, the send
/// counters and the replay windows. See the module documentation.
pub struct KeyRing {
    group: GroupId,
    me: MemberId,
    secret: SecretKey,
    public: PublicKey,
    /// Pair secrets of the members of the installed views.
    known: HashMap<MemberId, Known>,
    /// Installed views, oldest first; at most [`MAX_VIEWS`].
    views: VecDeque<ViewKeys>,
    /// Views below this one are retired: never installed, their datagrams refused as retired.
    floor: ViewId,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("group", &self.group)
            .field("me", &self.me)
            .field("public", &self.public)
            .field("views", &self.views().collect::<Vec<_>>())
            .field("floor", &self.floor)
            .finish_non_exhaustive()
    }
}

impl KeyRing {
    /// The ring of member `me` of `group`, with no view installed.
    pub fn new(group: GroupId, me: MemberId, secret: SecretKey) -> KeyRing {
        KeyRing {
            group,
            me,
            public: secret.public_key(),
            secret,
            known: HashMap::new(),
            views: VecDeque::new(),
            floor: ViewId(0),
        }
    }

    pub fn group(&self) -> GroupId {
        self.group
    }

    pub fn me(&self) -> MemberId {
        self.me
    }

    /// This member's public key, for the tracker to publish in the group's views.
    pub fn public_key(&self) -> PublicKey {
        self.public
    }

    /// The installed views, oldest first.
    pub fn views(&self) -> impl Iterator<Item = ViewId> + '_ {
        self.views.iter().map(|v| v.id)
    }

    /// Derives the keys of `view` with each of its `members` (every member, this one
    /// included, with the public key the view publishes). Costs one X25519 per member new to
    /// the ring and two HKDF-Expand per member. A member with a key of small order is refused
    /// (listed in [`Installed::refused`]); the others are installed.
    pub fn install_view(
        &mut self,
        view: ViewId,
        members: impl IntoIterator<Item = (MemberId, PublicKey)>,
    ) -> Result<Installed, InstallError> {
        if let Some(newest) = self.views.back().map(|v| v.id) {
            if view <= newest {
                return Err(InstallError::NotNewer { view, newest });
            }
        }
        if view < self.floor {
            return Err(InstallError::Retired {
                view,
                floor: self.floor,
            });
        }
        let members: Vec<(MemberId, PublicKey)> = members.into_iter().collect();
        let mut seen = HashSet::with_capacity(members.len());
        for (member, _) in &members {
            if !seen.insert(*member) {
                return Err(InstallError::DuplicateMember {
                    member: *member,
                    view,
                });
            }
        }
        match members.iter().find(|(m, _)| *m == self.me) {
            None => return Err(InstallError::NotInView { me: self.me, view }),
            Some((_, key)) if *key != self.public => {
                return Err(InstallError::OwnKeyMismatch { me: self.me, view })
            }
            Some(_) => {}
        }

        let mut installed = Installed::default();
        let mut peers = HashMap::with_capacity(members.len());
        for (member, public) in members.into_iter().filter(|(m, _)| *m != self.me) {
            if self.known.get(&member).is_none_or(|k| k.public != public) {
                let secret = PairSecret::agree(&self.secret, &public);
                self.known.insert(member, Known { public, secret });
            }
            let known = &self.known[&member];
            let peer = match &known.secret {
                None => {
                    installed.refused.push(member);
                    Peer::Refused
                }
                Some(pair) => {
                    let to = Direction {
                        group: self.group,
                        view,
                        sender: self.me,
                        receiver: member,
                        sender_key: self.public,
                        receiver_key: public,
                    };
                    let from = Direction {
                        sender: member,
                        receiver: self.me,
                        sender_key: public,
                        receiver_key: self.public,
                        ..to
                    };
                    Peer::Keys(Box::new(PeerKeys {
                        seal: DirectionKey::new(&pair.direction_key(&to)),
                        next: Some(0),
                        open: DirectionKey::new(&pair.direction_key(&from)),
                        window: ReplayWindow::new(),
                    }))
                }
            };
            peers.insert(member, peer);
        }
        installed.refused.sort();
        self.views.push_back(ViewKeys { id: view, peers });
        if self.views.len() > MAX_VIEWS {
            installed.evicted = self.views.pop_front().map(|v| v.id);
            self.floor = self.views.front().map_or(view, |v| v.id);
        }
        self.forget_unused();
        Ok(installed)
    }

    /// Retires the keys of every view older than `view` (their failure resolution ended):
    /// their datagrams are refused from now on, and they are never installed again. Returns
    /// how many installed views were retired.
    pub fn retire_before(&mut self, view: ViewId) -> usize {
        let before = self.views.len();
        while self.views.front().is_some_and(|v| v.id < view) {
            self.views.pop_front();
        }
        self.floor = self.floor.max(view);
        self.forget_unused();
        before - self.views.len()
    }

    /// Seals a plain datagram (as `Group::poll_transmit` makes it) in place, for the recipient
    /// its header names, in the view its header names. On error the datagram is unchanged.
    pub fn seal(&mut self, datagram: &mut Vec<u8>) -> Result<(), SealError> {
        let (header, frames) = wire::decode_header(datagram).map_err(SealError::NotPlain)?;
        let header_end = datagram.len() - frames.len();
        if header.group != self.group {
            return Err(SealError::WrongGroup {
                group: header.group,
            });
        }
        if header.sender != self.me {
            return Err(SealError::NotMine {
                sender: header.sender,
                me: self.me,
            });
        }
        let len = datagram.len() + SEAL_OVERHEAD;
        if len > MAX_DATAGRAM {
            return Err(SealError::Oversized { len });
        }
        let (view, floor) = (header.view, self.floor);
        let keys = match self.views.iter_mut().find(|v| v.id == view) {
            None if view < floor => return Err(SealError::RetiredView { view }),
            None => return Err(SealError::UnknownView { view }),
            Some(keys) => keys,
        };
        let recipient = header.recipient;
        let peer = match keys.peers.get_mut(&recipient) {
            None => return Err(SealError::UnknownRecipient { recipient, view }),
            Some(Peer::Refused) => return Err(SealError::RefusedKey { recipient }),
            Some(Peer::Keys(peer)) => peer,
        };
        let counter = peer
            .next
            .ok_or(SealError::CounterExhausted { recipient, view })?;
        peer.next = counter.checked_add(1);

        datagram.reserve(SEAL_OVERHEAD);
        datagram[2] = SEALED_VERSION;
        datagram.splice(header_end..header_end, counter.to_le_bytes());
        let (aad, frames) = datagram.split_at_mut(header_end + COUNTER_LEN);
        let tag = peer
            .seal
            .seal(counter, aad, frames)
            .expect("a datagram under the size limit is within the AEAD's limit");
        datagram.extend_from_slice(&tag);
        Ok(())
    }

    /// Opens a sealed datagram in place: on success `datagram[opened.plain]` is the plain
    /// datagram, ready for `wire::Datagram::decode`. Checks are made cheapest first (module
    /// documentation); the only expensive step, the tag, is verified once, last, and only a
    /// datagram that passes it changes the ring (its counter enters the replay window). On
    /// error the ring is unchanged and the buffer's content unspecified.
    pub fn open(&mut self, datagram: &mut [u8]) -> Result<Opened, OpenError> {
        let (header, header_end) = clear_header(datagram)?;
        let len = datagram.len();
        let body = header_end + COUNTER_LEN;
        if len < body + TAG_LEN {
            return Err(OpenError::TooShort {
                len,
                min: body + TAG_LEN,
            });
        }
        if header.group != self.group {
            return Err(OpenError::WrongGroup {
                group: header.group,
            });
        }
        if header.recipient != self.me {
            return Err(OpenError::Misdirected {
                recipient: header.recipient,
            });
        }
        let (view, floor) = (header.view, self.floor);
        let keys = match self.views.iter_mut().find(|v| v.id == view) {
            None if view < floor => return Err(OpenError::RetiredView { view }),
            None => return Err(OpenError::UnknownView { view }),
            Some(keys) => keys,
        };
        let sender = header.sender;
        let peer = match keys.peers.get_mut(&sender) {
            None => return Err(OpenError::UnknownSender { sender, view }),
            Some(Peer::Refused) => return Err(OpenError::RefusedKey { sender }),
            Some(Peer::Keys(peer)) => peer,
        };
        let mut counter_bytes = [0u8; COUNTER_LEN];
        counter_bytes.copy_from_slice(&datagram[header_end..body]);
        let counter = u64::from_le_bytes(counter_bytes);
        peer.window
            .check(counter)
            .map_err(|error| OpenError::Replay { sender, error })?;

        let (aad, rest) = datagram.split_at_mut(body);
        let (frames, tag_bytes) = rest.split_at_mut(rest.len() - TAG_LEN);
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(tag_bytes);
        if !peer.open.open(counter, aad, frames, tag) {
            return Err(OpenError::BadTag { sender });
        }
        peer.window.accept(counter);

        // The header moves up over the counter, in front of the frames: a plain datagram.
        datagram.copy_within(..header_end, COUNTER_LEN);
        datagram[COUNTER_LEN + 2] = VERSION;
        Ok(Opened {
            header,
            counter,
            plain: COUNTER_LEN..len - TAG_LEN,
        })
    }

    /// Forgets the pair secrets of members in no installed view.
    fn forget_unused(&mut self) {
        let views = &self.views;
        self.known
            .retain(|member, _| views.iter().any(|v| v.peers.contains_key(member)));
    }

    /// Moves the send counter of `recipient` in `view` (tests of exhaustion).
    #[cfg(test)]
    fn set_next_counter(&mut self, view: ViewId, recipient: MemberId, next: Option<u64>) {
        let keys = self.views.iter_mut().find(|v| v.id == view).unwrap();
        match keys.peers.get_mut(&recipient) {
            Some(Peer::Keys(peer)) => peer.next = next,
            _ => panic!("no keys for {recipient} in {view}"),
        }
    }
}

/// The clear header of a sealed datagram and where it ends, read without any key (a runtime
/// finds the datagram's group with it). Checks the length, magic and version first.
pub fn clear_header(datagram: &[u8]) -> Result<(Header, usize), OpenError> {
    let len = datagram.len();
    if len > MAX_DATAGRAM {
        return Err(OpenError::TooLong { len });
    }
    if len < MIN_SEALED {
        return Err(OpenError::TooShort {
            len,
            min: MIN_SEALED,
        });
    }
    if datagram[..2] != MAGIC {
        return Err(OpenError::BadMagic);
    }
    match datagram[2] {
        SEALED_VERSION => {}
        VERSION => return Err(OpenError::Unsealed),
        other => return Err(OpenError::UnsupportedVersion(other)),
    }
    let (header, rest) = postcard::take_from_bytes::<Header>(&datagram[3..])
        .map_err(|_| OpenError::MalformedHeader)?;
    Ok((header, len - rest.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::types::SeqNo;
    use crate::protocol::wire::{Datagram, Frame, Nack};

    fn ring_of(me: u64) -> KeyRing {
        KeyRing::new(
            GroupId(1),
            MemberId(me),
            SecretKey::from_seed([me as u8; 32]),
        )
    }

    fn plain(sender: u64, recipient: u64, view: u64) -> Vec<u8> {
        Datagram {
            header: Header {
                group: GroupId(1),
                sender: MemberId(sender),
                recipient: MemberId(recipient),
                view: ViewId(view),
            },
            frames: vec![Frame::Nack(Nack {
                missing: vec![(SeqNo(1), SeqNo(2))],
            })],
        }
        .encode()
        .unwrap()
    }

    #[test]
    fn an_exhausted_counter_is_an_error_and_never_wraps() {
        let (mut a, mut b) = (ring_of(1), ring_of(2));
        let members = [(MemberId(1), a.public_key()), (MemberId(2), b.public_key())];
        let _ = a.install_view(ViewId(1), members).unwrap();
        let _ = b.install_view(ViewId(1), members).unwrap();
        a.set_next_counter(ViewId(1), MemberId(2), Some(u64::MAX));
        let mut last = plain(1, 2, 1);
        a.seal(&mut last).unwrap();
        let opened = b.open(&mut last).unwrap();
        assert_eq!(opened.counter, u64::MAX);

        let mut next = plain(1, 2, 1);
        let before = next.clone();
        assert_eq!(
            a.seal(&mut next),
            Err(SealError::CounterExhausted {
                recipient: MemberId(2),
                view: ViewId(1)
            })
        );
        assert_eq!(
            next, before,
            "a datagram that cannot be sealed is unchanged"
        );
        // A new view starts a new key with its own counter.
        let _ = a.install_view(ViewId(2), members).unwrap();
        let mut next = plain(1, 2, 2);
        a.seal(&mut next).unwrap();
    }

    #[test]
    fn at_most_max_views_are_held_and_pair_secrets_follow_the_views() {
        let mut a = ring_of(1);
        let others: Vec<KeyRing> = (2..=9).map(ring_of).collect();
        for v in 1..=(MAX_VIEWS as u64 + 2) {
            // View v has member 1 and member v + 1 only.
            let peer = &others[v as usize - 1];
            let members = [
                (MemberId(1), a.public_key()),
                (peer.me(), peer.public_key()),
            ];
            let installed = a.install_view(ViewId(v), members).unwrap();
            let expected = (v > MAX_VIEWS as u64).then(|| ViewId(v - MAX_VIEWS as u64));
            assert_eq!(installed.evicted, expected);
            assert!(a.views.len() <= MAX_VIEWS);
            assert!(a.known.len() <= MAX_VIEWS);
        }
        assert_eq!(
            a.views().collect::<Vec<_>>(),
            (3..=6).map(ViewId).collect::<Vec<_>>()
        );
        let mut datagram = plain(1, 2, 1);
        assert_eq!(
            a.seal(&mut datagram),
            Err(SealError::RetiredView { view: ViewId(1) })
        );
        assert_eq!(a.retire_before(ViewId(6)), 3);
        assert_eq!(a.known.len(), 1);
    }
}
