//! The key schedule of sealed datagrams, written down once: a member's X25519 key pair, the
//! secret each pair of members shares, the key of each direction in each view, and the AEAD
//! that uses it. The derivations and their labels are drawn in the parent module's
//! documentation and pinned by known-answer tests below.

use hkdf::Hkdf;
use ring::aead::{self, Aad, LessSafeKey, Nonce, Tag, UnboundKey};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::protocol::types::{GroupId, MemberId, ViewId};

/// The AEAD of every sealed datagram (32-byte key, 12-byte nonce, 16-byte tag).
pub(crate) const AEAD: &aead::Algorithm = &aead::AES_256_GCM;
/// Bytes of an AEAD tag.
pub const TAG_LEN: usize = 16;
/// HKDF-Extract salt: names the protocol and the version of this schedule.
const EXTRACT_SALT: &[u8] = b"messenger seal v1";
/// First part of the HKDF-Expand info of a direction key.
const KEY_LABEL: &[u8] = b"messenger seal v1 direction key";

/// A member's X25519 secret for one membership of one group. Zeroized when dropped; its
/// `Debug` output is redacted.
pub struct SecretKey(x25519_dalek::StaticSecret);

impl SecretKey {
    /// The secret made of 32 bytes from a cryptographically secure source (the OS generator):
    /// the protocol has no source of randomness of its own. Each membership needs a fresh
    /// secret: a secret used again with the same group, member id and view would repeat
    /// nonces. The caller should wipe its copy of `seed`.
    pub fn from_seed(seed: [u8; 32]) -> SecretKey {
        SecretKey(x25519_dalek::StaticSecret::from(seed))
    }

    /// The public key to publish in the group's views.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(x25519_dalek::PublicKey::from(&self.0).to_bytes())
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// A member's X25519 public key, as the tracker publishes it in a view.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    pub const LEN: usize = 32;

    pub fn from_bytes(bytes: [u8; 32]) -> PublicKey {
        PublicKey(bytes)
    }

    pub fn to_bytes(&self) -> [u8; 32] {
        self.0
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// True for a key of small order (the zero key among them), with which every member would
    /// compute the all-zero shared secret: a ring refuses such a member, and the tracker can
    /// refuse the key when it is published. Any clamped X25519 scalar is a multiple of the
    /// cofactor, so a fixed one maps exactly the small-order points to zero.
    pub fn is_low_order(&self) -> bool {
        let probe = x25519_dalek::StaticSecret::from([0x5a; 32]);
        !probe
            .diffie_hellman(&x25519_dalek::PublicKey::from(self.0))
            .was_contributory()
    }
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PublicKey(")?;
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        f.write_str(")")
    }
}

/// What two members share whatever the view: HKDF-Extract of their X25519 shared secret. Its
/// HMAC state is wiped when dropped (sha2's `zeroize`); kept by the ring so that a view
/// change computes Diffie-Hellman only for members new to it.
pub(crate) struct PairSecret(Hkdf<Sha256>);

impl PairSecret {
    /// `None` when the shared secret is all zeros (`theirs` is of small order).
    pub(crate) fn agree(mine: &SecretKey, theirs: &PublicKey) -> Option<PairSecret> {
        let shared = mine
            .0
            .diffie_hellman(&x25519_dalek::PublicKey::from(theirs.0));
        if !shared.was_contributory() {
            return None;
        }
        Some(PairSecret(Hkdf::<Sha256>::new(
            Some(EXTRACT_SALT),
            shared.as_bytes(),
        )))
    }

    /// The key of datagrams from `sender` to `receiver` in `view` of `group`. Both members
    /// compute it; the order of sender and receiver in the info separates the two directions.
    pub(crate) fn direction_key(&self, direction: &Direction) -> Zeroizing<[u8; 32]> {
        let group = direction.group.0.to_le_bytes();
        let view = direction.view.0.to_le_bytes();
        let sender = direction.sender.0.to_le_bytes();
        let receiver = direction.receiver.0.to_le_bytes();
        let info: [&[u8]; 7] = [
            KEY_LABEL,
            &group,
            &view,
            &sender,
            &receiver,
            direction.sender_key.as_bytes(),
            direction.receiver_key.as_bytes(),
        ];
        let mut key = Zeroizing::new([0u8; 32]);
        self.0
            .expand_multi_info(&info, key.as_mut())
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        key
    }
}

/// Everything a direction key is bound to.
pub(crate) struct Direction {
    pub group: GroupId,
    pub view: ViewId,
    pub sender: MemberId,
    pub receiver: MemberId,
    pub sender_key: PublicKey,
    pub receiver_key: PublicKey,
}

/// The AEAD key of one direction in one view. ring does not wipe its expanded key schedule;
/// the key bytes it was made from are (see the module documentation).
pub(crate) struct DirectionKey(LessSafeKey);

impl DirectionKey {
    pub(crate) fn new(key: &Zeroizing<[u8; 32]>) -> DirectionKey {
        let unbound =
            UnboundKey::new(AEAD, key.as_ref()).expect("32 bytes is a valid AES-256-GCM key");
        DirectionKey(LessSafeKey::new(unbound))
    }

    /// Encrypts `in_out` in place; returns the tag.
    pub(crate) fn seal(&self, counter: u64, aad: &[u8], in_out: &mut [u8]) -> Option<[u8; 16]> {
        let tag = self
            .0
            .seal_in_place_separate_tag(nonce(counter), Aad::from(aad), in_out)
            .ok()?;
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(tag.as_ref());
        Some(out)
    }

    /// Verifies `tag` and decrypts `in_out` in place; `false` (and `in_out` unspecified)
    /// when the tag does not verify.
    pub(crate) fn open(&self, counter: u64, aad: &[u8], in_out: &mut [u8], tag: [u8; 16]) -> bool {
        let tag = Tag::from(tag);
        self.0
            .open_in_place_separate_tag(nonce(counter), Aad::from(aad), tag, in_out, 0..)
            .is_ok()
    }
}

/// The nonce of counter `counter`: four zero bytes, then the counter (little-endian). Each key
/// seals one direction of one view and its counter never repeats, so neither does the nonce.
fn nonce(counter: u64) -> Nonce {
    let mut bytes = [0u8; aead::NONCE_LEN];
    bytes[4..].copy_from_slice(&counter.to_le_bytes());
    Nonce::assume_unique_for_key(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn direction(sender: (u64, &SecretKey), receiver: (u64, &SecretKey)) -> Direction {
        Direction {
            group: GroupId(7),
            view: ViewId(3),
            sender: MemberId(sender.0),
            receiver: MemberId(receiver.0),
            sender_key: sender.1.public_key(),
            receiver_key: receiver.1.public_key(),
        }
    }

    /// Computed once from the schedule as the module documentation writes it, with another
    /// implementation (Python's `cryptography` for X25519, `hmac`/`hashlib` for HKDF), and
    /// pinned: this code agrees with the documentation, and a change of the schedule (labels,
    /// order of the info, HKDF, the curve) shows up here.
    #[test]
    fn direction_keys_match_the_known_answer() {
        let a = SecretKey::from_seed([1; 32]);
        let b = SecretKey::from_seed([2; 32]);
        assert_eq!(
            hex(a.public_key().as_bytes()),
            "a4e09292b651c278b9772c569f5fa9bb13d906b46ab68c9df9dc2b4409f8a209"
        );
        assert_eq!(
            hex(b.public_key().as_bytes()),
            "ce8d3ad1ccb633ec7b70c17814a5c76ecd029685050d344745ba05870e587d59"
        );
        let at_a = PairSecret::agree(&a, &b.public_key()).unwrap();
        let at_b = PairSecret::agree(&b, &a.public_key()).unwrap();
        let a_to_b = direction((1, &a), (2, &b));
        let b_to_a = direction((2, &b), (1, &a));
        let key_ab = at_a.direction_key(&a_to_b);
        assert_eq!(*key_ab, *at_b.direction_key(&a_to_b), "both ends agree");
        assert_eq!(*at_a.direction_key(&b_to_a), *at_b.direction_key(&b_to_a));
        assert_eq!(
            hex(key_ab.as_ref()),
            "14e623df520dfa16e027451ab1e304675799a60fc4f47709a7dd0264cff03c16"
        );
        assert_eq!(
            hex(at_a.direction_key(&b_to_a).as_ref()),
            "76d5857ea992d0e7850df60c7dd78f02d21e6ef0835539862ff6bd094bf4cd60"
        );
    }

    #[test]
    fn the_two_directions_and_each_view_and_group_have_their_own_key() {
        let a = SecretKey::from_seed([1; 32]);
        let b = SecretKey::from_seed([2; 32]);
        let pair = PairSecret::agree(&a, &b.public_key()).unwrap();
        let base = direction((1, &a), (2, &b));
        let mut keys = vec![
            pair.direction_key(&base),
            pair.direction_key(&direction((2, &b), (1, &a))),
        ];
        keys.push(pair.direction_key(&Direction {
            view: ViewId(4),
            ..direction((1, &a), (2, &b))
        }));
        keys.push(pair.direction_key(&Direction {
            group: GroupId(8),
            ..direction((1, &a), (2, &b))
        }));
        keys.push(pair.direction_key(&Direction {
            sender: MemberId(9),
            ..direction((1, &a), (2, &b))
        }));
        for i in 0..keys.len() {
            for j in 0..i {
                assert_ne!(*keys[i], *keys[j], "keys {i} and {j}");
            }
        }
    }

    #[test]
    fn a_third_member_derives_another_secret() {
        let a = SecretKey::from_seed([1; 32]);
        let b = SecretKey::from_seed([2; 32]);
        let c = SecretKey::from_seed([3; 32]);
        let ab = PairSecret::agree(&a, &b.public_key()).unwrap();
        let cb = PairSecret::agree(&c, &b.public_key()).unwrap();
        // C names itself A in the info; it still lacks A's half of the shared secret.
        let forged = direction((1, &a), (2, &b));
        assert_ne!(*ab.direction_key(&forged), *cb.direction_key(&forged));
    }

    #[test]
    fn small_order_keys_are_refused() {
        let secret = SecretKey::from_seed([1; 32]);
        // The small-order points of Curve25519 (u = 0, u = 1, the two of order 8, p - 1) and
        // the non-canonical encodings of 0 and 1 (p and p + 1), as listed by libsodium.
        let low_order = [
            "0000000000000000000000000000000000000000000000000000000000000000",
            "0100000000000000000000000000000000000000000000000000000000000000",
            "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
            "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
            "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
            "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
            "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        ];
        for text in low_order {
            let mut bytes = [0u8; 32];
            for (i, b) in bytes.iter_mut().enumerate() {
                *b = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap();
            }
            let key = PublicKey::from_bytes(bytes);
            assert!(key.is_low_order(), "{text}");
            assert!(PairSecret::agree(&secret, &key).is_none(), "{text}");
        }
        let honest = SecretKey::from_seed([2; 32]).public_key();
        assert!(!honest.is_low_order());
        assert!(PairSecret::agree(&secret, &honest).is_some());
    }

    #[test]
    fn secrets_never_reach_debug_output() {
        let seed = [0xab; 32];
        let secret = SecretKey::from_seed(seed);
        let text = format!("{secret:?} {secret:#?}");
        assert!(!text.contains("ab"), "{text}");
        assert!(!text.contains("171"), "{text}");
        assert!(text.contains("redacted"));
    }

    #[test]
    fn sealing_and_opening_round_trip_and_a_wrong_counter_fails() {
        let key = DirectionKey::new(&Zeroizing::new([9; 32]));
        let mut data = *b"frames of a datagram";
        let tag = key.seal(5, b"header", &mut data).unwrap();
        assert_ne!(&data, b"frames of a datagram");
        let sealed = data;
        assert!(key.open(5, b"header", &mut data, tag));
        assert_eq!(&data, b"frames of a datagram");
        let mut again = sealed;
        assert!(!key.open(6, b"header", &mut again, tag));
        let mut again = sealed;
        assert!(!key.open(5, b"headex", &mut again, tag));
    }
}
