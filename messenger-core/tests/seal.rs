//! Sealed datagrams (`protocol::seal`) through their public API: every pair of a view talks,
//! nobody else reads or forges, replays are refused, views come and go, garbage never panics.
//! The key schedule's known answers and the replay window's own tests are unit tests in
//! `src/protocol/seal/`.

use bytes::Bytes;
use messenger_core::protocol::seal::{
    clear_header, InstallError, KeyRing, OpenError, PublicKey, ReplayError, SealError, SecretKey,
    MAX_VIEWS, MIN_SEALED, REPLAY_WINDOW, SEALED_VERSION, SEAL_OVERHEAD,
};
use messenger_core::protocol::wire::{self, Data, Datagram, Frame, Header};
use messenger_core::protocol::{GroupId, MemberId, SeqNo, ViewId};
use proptest::prelude::*;

const GROUP: GroupId = GroupId(7);

fn secret(member: u64) -> SecretKey {
    // The member in bytes 8..16: X25519 clamps the low bits of byte 0, which would make the
    // secrets of members 1 to 7 one and the same.
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(b"testseed");
    seed[8..16].copy_from_slice(&member.to_le_bytes());
    SecretKey::from_seed(seed)
}

#[test]
fn test_members_have_distinct_keys() {
    let keys: std::collections::HashSet<PublicKey> =
        (1..=8).map(|m| secret(m).public_key()).collect();
    assert_eq!(keys.len(), 8);
}

/// Rings of members 1..=n, each with view 1 of all of them installed.
fn rings(n: u64) -> Vec<KeyRing> {
    let mut rings: Vec<KeyRing> = (1..=n)
        .map(|m| KeyRing::new(GROUP, MemberId(m), secret(m)))
        .collect();
    install(&mut rings, 1);
    rings
}

fn members(rings: &[KeyRing]) -> Vec<(MemberId, PublicKey)> {
    rings.iter().map(|r| (r.me(), r.public_key())).collect()
}

fn install(rings: &mut [KeyRing], view: u64) {
    let members = members(rings);
    for r in rings.iter_mut() {
        let installed = r.install_view(ViewId(view), members.clone()).unwrap();
        assert!(installed.refused.is_empty());
    }
}

fn header(sender: u64, recipient: u64, view: u64) -> Header {
    Header {
        group: GROUP,
        sender: MemberId(sender),
        recipient: MemberId(recipient),
        view: ViewId(view),
    }
}

fn plain(sender: u64, recipient: u64, view: u64, payload: &[u8]) -> Vec<u8> {
    Datagram {
        header: header(sender, recipient, view),
        frames: vec![Frame::Data(Data {
            seq: SeqNo(1),
            view: ViewId(view),
            stamp: 42,
            payload: Bytes::copy_from_slice(payload),
        })],
    }
    .encode()
    .unwrap()
}

/// Member `sender`'s ring (rings are numbered from member 1).
fn at(rings: &mut [KeyRing], member: u64) -> &mut KeyRing {
    &mut rings[member as usize - 1]
}

fn sealed(rings: &mut [KeyRing], sender: u64, recipient: u64, view: u64) -> Vec<u8> {
    let mut datagram = plain(sender, recipient, view, b"hello from a member");
    at(rings, sender).seal(&mut datagram).unwrap();
    datagram
}

/// Opens a copy of `datagram` at `member`; the plain datagram on success.
fn open(rings: &mut [KeyRing], member: u64, datagram: &[u8]) -> Result<Vec<u8>, OpenError> {
    let mut buffer = datagram.to_vec();
    let opened = at(rings, member).open(&mut buffer)?;
    Ok(buffer[opened.plain].to_vec())
}

/// `datagram` with its clear header replaced by `header` (same counter, ciphertext and tag).
fn with_header(datagram: &[u8], header: Header) -> Vec<u8> {
    let (_, end) = clear_header(datagram).unwrap();
    let mut out = vec![b'G', b'M', SEALED_VERSION];
    out = postcard::to_extend(&header, out).unwrap();
    out.extend_from_slice(&datagram[end..]);
    out
}

/// `datagram` with its counter replaced.
fn with_counter(datagram: &[u8], counter: u64) -> Vec<u8> {
    let (_, end) = clear_header(datagram).unwrap();
    let mut out = datagram.to_vec();
    out[end..end + 8].copy_from_slice(&counter.to_le_bytes());
    out
}

#[test]
fn every_pair_of_a_four_member_view_round_trips() {
    let mut rings = rings(4);
    for sender in 1..=4 {
        for recipient in (1..=4).filter(|&r| r != sender) {
            let payload = format!("from {sender} to {recipient}");
            let original = plain(sender, recipient, 1, payload.as_bytes());
            let mut datagram = original.clone();
            at(&mut rings, sender).seal(&mut datagram).unwrap();
            assert_eq!(datagram.len(), original.len() + SEAL_OVERHEAD);
            assert!(
                !datagram
                    .windows(payload.len())
                    .any(|w| w == payload.as_bytes()),
                "the payload travels encrypted"
            );
            let mut buffer = datagram.clone();
            let opened = at(&mut rings, recipient).open(&mut buffer).unwrap();
            assert_eq!(opened.header, header(sender, recipient, 1));
            assert_eq!(opened.counter, 0, "the first datagram of each pair is 0");
            assert_eq!(buffer[opened.plain.clone()], original[..]);
            let decoded = Datagram::decode(&buffer[opened.plain]).unwrap();
            assert_eq!(decoded, Datagram::decode(&original).unwrap());
        }
    }
    // Counters are per (sender, receiver): the second datagram from 1 to 2 is 1.
    let second = sealed(&mut rings, 1, 2, 1);
    let mut buffer = second.clone();
    assert_eq!(at(&mut rings, 2).open(&mut buffer).unwrap().counter, 1);
}

#[test]
fn every_single_bit_flip_is_refused() {
    let mut rings = rings(2);
    let datagram = sealed(&mut rings, 1, 2, 1);
    for bit in 0..datagram.len() * 8 {
        let mut flipped = datagram.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        let result = open(&mut rings, 2, &flipped);
        assert!(result.is_err(), "bit {bit} flipped was accepted");
    }
    // None of them moved the replay window or used up anything: the original opens.
    assert!(open(&mut rings, 2, &datagram).is_ok());
}

#[test]
fn a_datagram_sealed_for_b_cannot_be_opened_by_c() {
    let mut rings = rings(3);
    let for_b = sealed(&mut rings, 1, 2, 1);
    assert_eq!(
        open(&mut rings, 3, &for_b),
        Err(OpenError::Misdirected {
            recipient: MemberId(2)
        })
    );
    // C runs a ring as member 2 with its own secret, from a view where member 2 has C's key:
    // the datagram, unchanged, still does not open (C lacks B's half of the shared secret).
    let (a, b, c) = (
        rings[0].public_key(),
        rings[1].public_key(),
        rings[2].public_key(),
    );
    assert_ne!(b, c);
    let mut impostor = KeyRing::new(GROUP, MemberId(2), secret(3));
    let lie = [(MemberId(1), a), (MemberId(2), c), (MemberId(3), c)];
    let _ = impostor.install_view(ViewId(1), lie).unwrap();
    assert_eq!(
        impostor.open(&mut for_b.clone()),
        Err(OpenError::BadTag {
            sender: MemberId(1)
        })
    );
    // Naming C as the recipient does not help either.
    let renamed = with_header(&for_b, header(1, 3, 1));
    assert_eq!(
        open(&mut rings, 3, &renamed),
        Err(OpenError::BadTag {
            sender: MemberId(1)
        })
    );
    assert!(open(&mut rings, 2, &for_b).is_ok());
}

#[test]
fn c_cannot_make_b_accept_a_datagram_in_a_s_name() {
    let mut rings = rings(3);
    let (a, c) = (rings[0].public_key(), rings[2].public_key());
    let b = rings[1].public_key();

    // C seals to B as itself, then names A as the sender.
    let from_c = sealed(&mut rings, 3, 2, 1);
    let renamed = with_header(&from_c, header(1, 2, 1));
    assert_eq!(
        open(&mut rings, 2, &renamed),
        Err(OpenError::BadTag {
            sender: MemberId(1)
        })
    );

    // C runs a ring as member 1 with its own secret: the true view publishes A's key for
    // member 1, so the ring refuses it ...
    let mut forger = KeyRing::new(GROUP, MemberId(1), secret(3));
    let true_view = [(MemberId(1), a), (MemberId(2), b), (MemberId(3), c)];
    assert_eq!(
        forger.install_view(ViewId(1), true_view),
        Err(InstallError::OwnKeyMismatch {
            me: MemberId(1),
            view: ViewId(1)
        })
    );
    // ... and with a view of its own making, where member 1 has C's key, B still refuses
    // what it seals: B derives A's keys from A's published key.
    let lie = [(MemberId(1), c), (MemberId(2), b), (MemberId(3), c)];
    let _ = forger.install_view(ViewId(1), lie).unwrap();
    let mut forged = plain(1, 2, 1, b"I am A");
    forger.seal(&mut forged).unwrap();
    assert_eq!(
        open(&mut rings, 2, &forged),
        Err(OpenError::BadTag {
            sender: MemberId(1)
        })
    );
    // Nothing of that moved B's window for A: A's first datagram (counter 0) is accepted.
    let from_a = sealed(&mut rings, 1, 2, 1);
    assert!(open(&mut rings, 2, &from_a).is_ok());
}

#[test]
fn a_to_b_and_b_to_a_are_sealed_under_different_keys() {
    let mut same = rings(2);
    // The same frames with the same counter (0) each way: under one key the ciphertexts
    // (AES-GCM's counter mode) would be equal, whatever the headers.
    let mut there = plain(1, 2, 1, b"same frames");
    let mut back = plain(2, 1, 1, b"same frames");
    at(&mut same, 1).seal(&mut there).unwrap();
    at(&mut same, 2).seal(&mut back).unwrap();
    let body = |d: &[u8]| {
        let (_, end) = clear_header(d).unwrap();
        d[end + 8..d.len() - 16].to_vec()
    };
    assert_eq!(there.len(), back.len());
    assert_ne!(body(&there), body(&back));

    let mut rings = rings(2);
    // The same counter (0) both ways; a datagram of A to B presented to A as B's fails.
    let a_to_b = sealed(&mut rings, 1, 2, 1);
    let b_to_a = sealed(&mut rings, 2, 1, 1);
    let swapped = with_header(&a_to_b, header(2, 1, 1));
    assert_eq!(
        open(&mut rings, 1, &swapped),
        Err(OpenError::BadTag {
            sender: MemberId(2)
        })
    );
    assert!(open(&mut rings, 1, &b_to_a).is_ok());
    assert!(open(&mut rings, 2, &a_to_b).is_ok());
}

#[test]
fn a_replayed_datagram_is_refused() {
    let mut rings = rings(2);
    let datagram = sealed(&mut rings, 1, 2, 1);
    assert!(open(&mut rings, 2, &datagram).is_ok());
    assert_eq!(
        open(&mut rings, 2, &datagram),
        Err(OpenError::Replay {
            sender: MemberId(1),
            error: ReplayError::Replayed { counter: 0 }
        })
    );
}

#[test]
fn out_of_order_inside_the_window_is_accepted_once() {
    let mut rings = rings(2);
    let datagrams: Vec<Vec<u8>> = (0..12).map(|_| sealed(&mut rings, 1, 2, 1)).collect();
    for i in [11, 3, 5, 0, 10, 1] {
        assert!(open(&mut rings, 2, &datagrams[i]).is_ok(), "counter {i}");
    }
    for i in [3, 11, 0] {
        assert_eq!(
            open(&mut rings, 2, &datagrams[i]),
            Err(OpenError::Replay {
                sender: MemberId(1),
                error: ReplayError::Replayed { counter: i as u64 }
            })
        );
    }
    assert!(open(&mut rings, 2, &datagrams[7]).is_ok());
}

#[test]
fn a_datagram_older_than_the_window_is_refused() {
    let mut rings = rings(2);
    let count = REPLAY_WINDOW as usize + 60;
    let datagrams: Vec<Vec<u8>> = (0..count).map(|_| sealed(&mut rings, 1, 2, 1)).collect();
    let highest = count as u64 - 1;
    assert!(open(&mut rings, 2, &datagrams[count - 1]).is_ok());
    let oldest = (highest + 1 - REPLAY_WINDOW) as usize;
    for old in [0, oldest - 1] {
        assert_eq!(
            open(&mut rings, 2, &datagrams[old]),
            Err(OpenError::Replay {
                sender: MemberId(1),
                error: ReplayError::TooOld {
                    counter: old as u64,
                    highest
                }
            })
        );
    }
    assert!(open(&mut rings, 2, &datagrams[oldest]).is_ok());
}

#[test]
fn a_forged_huge_counter_does_not_move_the_window() {
    let mut rings = rings(2);
    let first = sealed(&mut rings, 1, 2, 1);
    for counter in [u64::MAX, u64::MAX / 2, 10 * REPLAY_WINDOW] {
        let forged = with_counter(&first, counter);
        assert_eq!(
            open(&mut rings, 2, &forged),
            Err(OpenError::BadTag {
                sender: MemberId(1)
            })
        );
    }
    // Had the window moved to a forged counter, counter 0 would now be too old.
    assert!(open(&mut rings, 2, &first).is_ok());
}

#[test]
fn the_previous_view_s_keys_work_until_retired() {
    let mut rings = rings(3);
    let in_flight = sealed(&mut rings, 1, 2, 1);
    install(&mut rings, 2);
    // After the view change: the old view's datagram in flight, a datagram started before
    // the change (sealed now, in view 1), and one of the new view all open.
    assert!(open(&mut rings, 2, &in_flight).is_ok());
    let late = sealed(&mut rings, 1, 2, 1);
    assert!(open(&mut rings, 2, &late).is_ok());
    let new = sealed(&mut rings, 1, 2, 2);
    assert!(open(&mut rings, 2, &new).is_ok());
    // The new view's counters start again at 0 under the new key.
    assert_eq!(clear_header(&new).map(|(h, _)| h.view), Ok(ViewId(2)));

    // The failure resolution of view 1 ended: B retires it.
    let later = sealed(&mut rings, 1, 2, 1);
    assert_eq!(at(&mut rings, 2).retire_before(ViewId(2)), 1);
    assert_eq!(
        open(&mut rings, 2, &later),
        Err(OpenError::RetiredView { view: ViewId(1) })
    );
    assert_eq!(at(&mut rings, 2).views().collect::<Vec<_>>(), [ViewId(2)]);
    // A retires it too: it no longer seals in view 1, and never installs it again.
    let a = at(&mut rings, 1);
    let _ = a.retire_before(ViewId(2));
    let mut datagram = plain(1, 2, 1, b"x");
    assert_eq!(
        a.seal(&mut datagram),
        Err(SealError::RetiredView { view: ViewId(1) })
    );
    // A view not installed yet is unknown, not retired.
    let mut datagram = plain(1, 2, 3, b"x");
    assert_eq!(
        a.seal(&mut datagram),
        Err(SealError::UnknownView { view: ViewId(3) })
    );
}

#[test]
fn a_view_change_evicts_the_oldest_beyond_max_views() {
    let mut rings = rings(2);
    let old = sealed(&mut rings, 1, 2, 1);
    let members = members(&rings);
    for view in 2..=MAX_VIEWS as u64 {
        let _ = at(&mut rings, 2).install_view(ViewId(view), members.clone());
    }
    assert!(
        open(&mut rings, 2, &old).is_ok(),
        "{MAX_VIEWS} views are kept"
    );
    let newest = MAX_VIEWS as u64 + 1;
    let installed = at(&mut rings, 2)
        .install_view(ViewId(newest), members.clone())
        .unwrap();
    assert_eq!(installed.evicted, Some(ViewId(1)));
    let old_again = sealed(&mut rings, 1, 2, 1);
    assert_eq!(
        open(&mut rings, 2, &old_again),
        Err(OpenError::RetiredView { view: ViewId(1) })
    );
}

#[test]
fn a_small_order_public_key_is_refused() {
    let mut rings = rings(2);
    let zero = PublicKey::from_bytes([0; 32]);
    let mut one = [0u8; 32];
    one[0] = 1;
    let one = PublicKey::from_bytes(one);
    assert!(zero.is_low_order() && one.is_low_order());
    assert!(!rings[0].public_key().is_low_order());

    let mut view = members(&rings);
    view.push((MemberId(3), zero));
    view.push((MemberId(4), one));
    let a = at(&mut rings, 1);
    let installed = a.install_view(ViewId(2), view).unwrap();
    assert_eq!(installed.refused, [MemberId(3), MemberId(4)]);
    let mut to_zero = plain(1, 3, 2, b"x");
    assert_eq!(
        a.seal(&mut to_zero),
        Err(SealError::RefusedKey {
            recipient: MemberId(3)
        })
    );
    // The other members of the view are installed.
    let mut to_b = plain(1, 2, 2, b"x");
    a.seal(&mut to_b).unwrap();
    // Whatever a member with such a key sends is refused before any tag is checked.
    let mut from_zero = with_header(&to_b, header(3, 1, 2));
    assert_eq!(
        a.open(&mut from_zero),
        Err(OpenError::RefusedKey {
            sender: MemberId(3)
        })
    );
}

#[test]
fn views_are_installed_only_in_order_and_with_this_member_s_key() {
    let mut rings = rings(2);
    let members = members(&rings);
    let a = at(&mut rings, 1);
    assert_eq!(
        a.install_view(ViewId(1), members.clone()),
        Err(InstallError::NotNewer {
            view: ViewId(1),
            newest: ViewId(1)
        })
    );
    assert_eq!(
        a.install_view(ViewId(2), members[1..].to_vec()),
        Err(InstallError::NotInView {
            me: MemberId(1),
            view: ViewId(2)
        })
    );
    let mut twice = members.clone();
    twice.push(members[1]);
    assert_eq!(
        a.install_view(ViewId(2), twice),
        Err(InstallError::DuplicateMember {
            member: MemberId(2),
            view: ViewId(2)
        })
    );
    let _ = a.retire_before(ViewId(5));
    assert_eq!(a.views().count(), 0);
    assert_eq!(
        a.install_view(ViewId(4), members.clone()),
        Err(InstallError::Retired {
            view: ViewId(4),
            floor: ViewId(5)
        })
    );
    let _ = a.install_view(ViewId(5), members).unwrap();
}

#[test]
fn unsealed_and_foreign_datagrams_are_refused_by_kind() {
    let mut rings = rings(2);
    let plain_datagram = plain(1, 2, 1, b"hello there, in the clear");
    assert_eq!(
        open(&mut rings, 2, &plain_datagram),
        Err(OpenError::Unsealed)
    );
    let sealed_datagram = sealed(&mut rings, 1, 2, 1);
    // A plain decoder refuses a sealed datagram too.
    assert_eq!(
        wire::decode_header(&sealed_datagram).err(),
        Some(wire::WireError::UnsupportedVersion(SEALED_VERSION))
    );
    let mut other_version = sealed_datagram.clone();
    other_version[2] = 0x83;
    assert_eq!(
        open(&mut rings, 2, &other_version),
        Err(OpenError::UnsupportedVersion(0x83))
    );
    let mut other_magic = sealed_datagram.clone();
    other_magic[0] = b'X';
    assert_eq!(open(&mut rings, 2, &other_magic), Err(OpenError::BadMagic));
    let other_group = with_header(
        &sealed_datagram,
        Header {
            group: GroupId(8),
            ..header(1, 2, 1)
        },
    );
    assert_eq!(
        open(&mut rings, 2, &other_group),
        Err(OpenError::WrongGroup { group: GroupId(8) })
    );
    let stranger = with_header(&sealed_datagram, header(9, 2, 1));
    assert_eq!(
        open(&mut rings, 2, &stranger),
        Err(OpenError::UnknownSender {
            sender: MemberId(9),
            view: ViewId(1)
        })
    );
    for len in [0, 2, MIN_SEALED - 1] {
        assert_eq!(
            open(&mut rings, 2, &sealed_datagram[..len]),
            Err(OpenError::TooShort {
                len,
                min: MIN_SEALED
            })
        );
    }
    // A longer header needs more: 31 bytes with a 5-byte header is one short of counter and tag.
    let mut short = vec![b'G', b'M', SEALED_VERSION];
    short = postcard::to_extend(&header(1, 2, 300), short).unwrap();
    short.resize(MIN_SEALED, 0);
    assert_eq!(
        open(&mut rings, 2, &short),
        Err(OpenError::TooShort {
            len: MIN_SEALED,
            min: MIN_SEALED + 1
        })
    );
    let huge = vec![0u8; wire::MAX_DATAGRAM + 1];
    assert_eq!(
        open(&mut rings, 2, &huge),
        Err(OpenError::TooLong {
            len: wire::MAX_DATAGRAM + 1
        })
    );
    // Only the sender's own datagrams, of its own group, are sealed.
    let a = at(&mut rings, 1);
    let mut not_mine = plain(2, 1, 1, b"x");
    assert_eq!(
        a.seal(&mut not_mine),
        Err(SealError::NotMine {
            sender: MemberId(2),
            me: MemberId(1)
        })
    );
    let mut already = sealed_datagram.clone();
    assert!(matches!(a.seal(&mut already), Err(SealError::NotPlain(_))));
    let mut too_big = plain(1, 2, 1, &vec![7u8; wire::MAX_DATAGRAM - 30]);
    assert!(matches!(
        a.seal(&mut too_big),
        Err(SealError::Oversized { .. })
    ));
}

/// A whole sealed datagram, pinned: sealed by this code from fixed secrets, and checked
/// against AES-256-GCM of Python's `cryptography` under the key of the schedule's
/// known answer (`keys.rs`), with the nonce and associated data the module documentation
/// gives. A change of layout, nonce or associated data shows up here.
#[test]
fn a_sealed_datagram_matches_the_known_answer() {
    let a = SecretKey::from_seed([1; 32]);
    let b = SecretKey::from_seed([2; 32]);
    let (pa, pb) = (a.public_key(), b.public_key());
    let mut ring_a = KeyRing::new(GROUP, MemberId(1), a);
    let view = [(MemberId(1), pa), (MemberId(2), pb)];
    let _ = ring_a.install_view(ViewId(3), view).unwrap();
    let original = plain(1, 2, 3, b"known answer");
    let mut datagram = original.clone();
    ring_a.seal(&mut datagram).unwrap();
    let hex: String = datagram.iter().map(|b| format!("{b:02x}")).collect();
    let expected = concat!(
        "474d82",                             // 'G' 'M' sealed
        "07010203",                           // group 7, sender 1, recipient 2, view 3
        "0000000000000000",                   // counter 0
        "310b826bc7de4cf2c30a81b7e642b78aa6", // frames (17 bytes) ...
        "bb5543c76fbd740b22b84f4d43d4d648",   // ... and tag
    );
    assert_eq!(hex, expected);

    let mut ring_b = KeyRing::new(GROUP, MemberId(2), b);
    let _ = ring_b.install_view(ViewId(3), view).unwrap();
    let opened = ring_b.open(&mut datagram).unwrap();
    assert_eq!(datagram[opened.plain], original[..]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Garbage of every length up to 200 is an error, never a panic.
    #[test]
    fn garbage_is_refused(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut rings = rings(2);
        let mut buffer = bytes.clone();
        prop_assert!(at(&mut rings, 2).open(&mut buffer).is_err());
    }

    /// Garbage behind a valid sealed prefix (magic, version, a header for this member) gets
    /// past the cheap checks and is refused all the same.
    #[test]
    fn garbage_behind_a_valid_header_is_refused(
        tail in proptest::collection::vec(any::<u8>(), 0..200),
        view in 0u64..4,
        sender in 0u64..4,
    ) {
        let mut rings = rings(2);
        let mut buffer = vec![b'G', b'M', SEALED_VERSION];
        buffer = postcard::to_extend(&header(sender, 2, view), buffer).unwrap();
        buffer.extend_from_slice(&tail);
        prop_assert!(at(&mut rings, 2).open(&mut buffer).is_err());
    }

    /// Every length of every sealed datagram cut short is refused, and so is any byte changed.
    #[test]
    fn a_damaged_datagram_is_refused(cut in 0usize..200, at_byte in 0usize..200, to in any::<u8>()) {
        let mut rings = rings(2);
        let datagram = sealed(&mut rings, 1, 2, 1);
        let cut = cut % datagram.len();
        prop_assert!(open(&mut rings, 2, &datagram[..cut]).is_err());
        let mut changed = datagram.clone();
        let i = at_byte % datagram.len();
        prop_assume!(changed[i] != to);
        changed[i] = to;
        prop_assert!(open(&mut rings, 2, &changed).is_err());
        prop_assert!(open(&mut rings, 2, &datagram).is_ok());
    }
}

#[test]
fn the_shortest_sealed_datagram_is_min_sealed_bytes() {
    let mut rings = rings(2);
    // A header of one-byte numbers and no frame: the shortest thing a ring seals.
    let mut datagram = vec![b'G', b'M', wire::VERSION];
    datagram = postcard::to_extend(&header(1, 2, 1), datagram).unwrap();
    at(&mut rings, 1).seal(&mut datagram).unwrap();
    assert_eq!(datagram.len(), MIN_SEALED);
    assert!(open(&mut rings, 2, &datagram).is_ok());
    assert!(matches!(
        open(&mut rings, 2, &datagram[..MIN_SEALED - 1]),
        Err(OpenError::TooShort { .. })
    ));
}
