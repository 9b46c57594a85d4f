//! Property tests of the wire format (`protocol::wire`): every datagram and control frame
//! round-trips, bundling keeps frames in order within the size budget, and no input, however
//! corrupt, makes a decoder panic.
//!
//! `PROPTEST_CASES=10000 cargo test -p messenger-core --test wire` runs a longer search.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::Bytes;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;

use messenger_core::protocol::types::{GroupId, MemberId, OrderKey, Priority, SeqNo, ViewId};
use messenger_core::protocol::wire::{
    decode_address_probe, encode_address_probe, encode_control, Ack, ClientFrame, ContentDigest,
    Data, Datagram, DatagramBuilder, Decided, EntryState, ErrorCode, Final, Frame, FrameDecoder,
    GroupInfo, Header, Hello, MetricsReport, Nack, Order, Part, Password, Propose, Reply,
    ReportEntry, Request, ResolutionAck, ResolutionDecision, ResolutionFetch, ResolutionRelay,
    ResolutionReport, ServerFrame, Status, StreamAck, StreamDecision, StreamReport, TrackerStats,
    View, ViewDelta, ViewMember, WireError, CONTROL_VERSION, COOKIE_LEN, MAGIC, MAX_CONTROL_FRAME,
    MAX_DATAGRAM, VERSION,
};

// ---------------------------------------------------------------------------------------------
// Strategies: scalars and identifiers
// ---------------------------------------------------------------------------------------------

/// A u64 that is mostly small (one-byte varints) but also spans the full range, so that both
/// short and ten-byte varint encodings are exercised.
fn num() -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => 0u64..200,
        2 => any::<u64>(),
        1 => Just(u64::MAX),
    ]
}

fn member() -> impl Strategy<Value = MemberId> {
    num().prop_map(MemberId)
}

fn group_id() -> impl Strategy<Value = GroupId> {
    num().prop_map(GroupId)
}

fn view_id() -> impl Strategy<Value = ViewId> {
    num().prop_map(ViewId)
}

fn seq() -> impl Strategy<Value = SeqNo> {
    num().prop_map(SeqNo)
}

fn payload() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..64).prop_map(Bytes::from)
}

/// Arbitrary (including non-ASCII) short text.
fn text() -> impl Strategy<Value = String> {
    ".{0,16}"
}

fn socket_addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        3 => (any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>(), any::<u16>()).prop_map(
            |(a, b, c, d, port)| SocketAddr::new(IpAddr::V4(Ipv4Addr::new(a, b, c, d)), port)
        ),
        1 => (any::<[u16; 8]>(), any::<u16>()).prop_map(|(s, port)| {
            let ip = Ipv6Addr::new(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]);
            SocketAddr::new(IpAddr::V6(ip), port)
        }),
    ]
}

fn priority() -> impl Strategy<Value = Priority> {
    (counter(), member()).prop_map(|(counter, member)| Priority::new(counter, member))
}

fn counter() -> impl Strategy<Value = u128> {
    prop_oneof![
        3 => 0u128..200,
        2 => any::<u128>(),
    ]
}

fn order_key() -> impl Strategy<Value = OrderKey> {
    (priority(), member(), seq()).prop_map(|(priority, origin, seq)| OrderKey {
        priority,
        origin,
        seq,
    })
}

// ---------------------------------------------------------------------------------------------
// Strategies: the data plane
// ---------------------------------------------------------------------------------------------

fn header() -> impl Strategy<Value = Header> {
    (group_id(), member(), member(), view_id()).prop_map(|(group, sender, recipient, view)| {
        Header {
            group,
            sender,
            recipient,
            view,
        }
    })
}

fn data() -> impl Strategy<Value = Data> {
    (seq(), view_id(), num(), payload()).prop_map(|(seq, view, stamp, payload)| Data {
        seq,
        view,
        stamp,
        payload,
    })
}

fn stream_ack() -> impl Strategy<Value = StreamAck> {
    (member(), seq(), seq(), seq()).prop_map(|(origin, received, finals, delivered)| StreamAck {
        origin,
        received,
        finals,
        delivered,
    })
}

fn status() -> impl Strategy<Value = Status> {
    (seq(), seq(), vec(stream_ack(), 0..5)).prop_map(|(high, start, acks)| Status {
        high,
        start,
        acks,
    })
}

fn ack() -> impl Strategy<Value = Ack> {
    (seq(), seq(), seq()).prop_map(|(received, finals, delivered)| Ack {
        received,
        finals,
        delivered,
    })
}

fn nack() -> impl Strategy<Value = Nack> {
    vec((seq(), seq()), 0..5).prop_map(|missing| Nack { missing })
}

fn propose() -> impl Strategy<Value = Propose> {
    (seq(), counter()).prop_map(|(seq, counter)| Propose { seq, counter })
}

fn final_() -> impl Strategy<Value = Final> {
    (seq(), priority()).prop_map(|(seq, priority)| Final { seq, priority })
}

fn entry_state() -> impl Strategy<Value = EntryState> {
    prop_oneof![
        Just(EntryState::Unproposed),
        priority().prop_map(EntryState::Proposed),
        priority().prop_map(EntryState::Final),
    ]
}

fn report_entry() -> impl Strategy<Value = ReportEntry> {
    (
        seq(),
        entry_state(),
        proptest::option::of((view_id(), any::<[u8; 16]>())),
    )
        .prop_map(|(seq, state, content)| ReportEntry {
            seq,
            state,
            content: content.map(|(view, _)| view),
            digest: content.map(|(_, d)| ContentDigest(d)),
        })
}

fn stream_report() -> impl Strategy<Value = StreamReport> {
    (
        member(),
        proptest::option::of(seq()),
        proptest::option::of(seq()),
        vec(report_entry(), 0..4),
    )
        .prop_map(|(origin, delivered, closed, entries)| StreamReport {
            origin,
            delivered,
            closed,
            entries,
        })
}

fn resolution_report() -> impl Strategy<Value = ResolutionReport> {
    (
        view_id(),
        view_id(),
        proptest::option::of(order_key()),
        vec(stream_report(), 0..4),
    )
        .prop_map(|(round, joined, delivered_max, streams)| ResolutionReport {
            round,
            joined,
            delivered_max,
            streams,
            part: Part { index: 0, count: 1 },
        })
}

fn resolution_fetch() -> impl Strategy<Value = ResolutionFetch> {
    (view_id(), member(), vec(seq(), 0..6)).prop_map(|(round, origin, seqs)| ResolutionFetch {
        round,
        origin,
        seqs,
    })
}

fn resolution_relay() -> impl Strategy<Value = ResolutionRelay> {
    (member(), seq(), view_id(), num(), payload()).prop_map(
        |(origin, seq, view, stamp, payload)| ResolutionRelay {
            origin,
            seq,
            view,
            stamp,
            payload,
        },
    )
}

fn decided() -> impl Strategy<Value = Decided> {
    (priority(), view_id(), any::<[u8; 16]>()).prop_map(|(priority, view, digest)| Decided {
        priority,
        view,
        digest: ContentDigest(digest),
    })
}

fn stream_decision() -> impl Strategy<Value = StreamDecision> {
    (member(), seq(), vec(decided(), 0..5)).prop_map(|(origin, first, decided)| StreamDecision {
        origin,
        first,
        decided,
    })
}

fn resolution_decision() -> impl Strategy<Value = ResolutionDecision> {
    (view_id(), vec(stream_decision(), 0..4)).prop_map(|(round, streams)| ResolutionDecision {
        round,
        streams,
        part: Part::WHOLE,
    })
}

fn resolution_ack() -> impl Strategy<Value = ResolutionAck> {
    view_id().prop_map(|round| ResolutionAck { round })
}

fn frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        data().prop_map(Frame::Data),
        status().prop_map(Frame::Status),
        ack().prop_map(Frame::Ack),
        nack().prop_map(Frame::Nack),
        propose().prop_map(Frame::Propose),
        final_().prop_map(Frame::Final),
        resolution_report().prop_map(|r| Frame::ResolutionReport(Box::new(r))),
        resolution_fetch().prop_map(Frame::ResolutionFetch),
        resolution_relay().prop_map(Frame::ResolutionRelay),
        resolution_decision().prop_map(Frame::ResolutionDecision),
        resolution_ack().prop_map(Frame::ResolutionAck),
    ]
}

fn datagram() -> impl Strategy<Value = Datagram> {
    (header(), vec(frame(), 1..8)).prop_map(|(header, frames)| Datagram { header, frames })
}

// ---------------------------------------------------------------------------------------------
// Strategies: the control plane
// ---------------------------------------------------------------------------------------------

fn order() -> impl Strategy<Value = Order> {
    prop_oneof![Just(Order::Fifo), Just(Order::Total)]
}

fn view_member() -> impl Strategy<Value = ViewMember> {
    (member(), text(), socket_addr(), view_id()).prop_map(|(id, name, addr, joined)| ViewMember {
        id,
        name,
        addr,
        joined,
    })
}

fn view() -> impl Strategy<Value = View> {
    (
        group_id(),
        text(),
        order(),
        view_id(),
        vec(view_member(), 0..4),
    )
        .prop_map(|(group, name, order, id, members)| View {
            group,
            name,
            order,
            id,
            members,
        })
}

fn hello() -> impl Strategy<Value = Hello> {
    (
        prop_oneof![Just(CONTROL_VERSION), any::<u32>()],
        text(),
        socket_addr(),
    )
        .prop_map(|(version, username, udp_addr)| Hello {
            version,
            username,
            udp_addr,
        })
}

fn metrics_report() -> impl Strategy<Value = MetricsReport> {
    (num(), num(), num(), num(), num(), num(), num(), num()).prop_map(
        |(
            sent,
            received,
            elapsed_micros,
            latency_mean_micros,
            latency_p50_micros,
            latency_p99_micros,
            latency_max_micros,
            dropped_datagrams,
        )| MetricsReport {
            sent,
            received,
            elapsed_micros,
            latency_mean_micros,
            latency_p50_micros,
            latency_p99_micros,
            latency_max_micros,
            dropped_datagrams,
        },
    )
}

fn tracker_stats() -> impl Strategy<Value = TrackerStats> {
    (any::<(u32, u32, u32)>(), num(), num(), num(), num(), num()).prop_map(
        |((clients, groups, memberships), views_pushed, requests, errors, dropped, bad)| {
            TrackerStats {
                clients,
                groups,
                memberships,
                views_pushed,
                requests,
                errors,
                clients_dropped: dropped,
                bad_connections: bad,
                refused_connections: bad / 2,
                members_suspected: bad / 3,
            }
        },
    )
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        proptest::option::of("[a-z]{1,8}").prop_map(|after| Request::ListGroups { after }),
        text().prop_map(|group| Request::ListMembers { group }),
        (text(), order(), proptest::option::of(text())).prop_map(|(group, order, password)| {
            Request::Join {
                group,
                order,
                password: password.map(Password::new),
            }
        }),
        text().prop_map(|group| Request::Leave { group }),
        metrics_report().prop_map(|metrics| Request::Quit { metrics }),
        Just(Request::Stats),
        (text(), member()).prop_map(|(group, member)| Request::Suspect { group, member }),
    ]
}

fn client_frame() -> impl Strategy<Value = ClientFrame> {
    prop_oneof![
        hello().prop_map(ClientFrame::Hello),
        (num(), request()).prop_map(|(id, request)| ClientFrame::Request { id, request }),
        (num(), metrics_report())
            .prop_map(|(nonce, metrics)| ClientFrame::HeartbeatAck { nonce, metrics }),
        any::<[u8; COOKIE_LEN]>().prop_map(|cookie| ClientFrame::AddressProof { cookie }),
    ]
}

fn error_code() -> impl Strategy<Value = ErrorCode> {
    prop_oneof![
        Just(ErrorCode::UnknownGroup),
        Just(ErrorCode::NotAMember),
        Just(ErrorCode::AlreadyMember),
        Just(ErrorCode::UsernameTaken),
        Just(ErrorCode::InvalidName),
        Just(ErrorCode::AccessDenied),
        Just(ErrorCode::OrderMismatch),
        Just(ErrorCode::GroupFull),
        Just(ErrorCode::BadRequest),
        Just(ErrorCode::VersionMismatch),
        Just(ErrorCode::LimitReached),
        Just(ErrorCode::AddressUnverified),
    ]
}

fn group_info() -> impl Strategy<Value = GroupInfo> {
    (text(), order(), any::<u32>()).prop_map(|(name, order, members)| GroupInfo {
        name,
        order,
        members,
    })
}

fn reply() -> impl Strategy<Value = Reply> {
    prop_oneof![
        (vec(group_info(), 0..4), any::<bool>())
            .prop_map(|(groups, more)| Reply::Groups { groups, more }),
        view().prop_map(Reply::Members),
        (member(), view()).prop_map(|(member, view)| Reply::Joined { member, view }),
        tracker_stats().prop_map(Reply::Stats),
        Just(Reply::Left),
        Just(Reply::Bye),
        any::<bool>().prop_map(|removed| Reply::Suspected { removed }),
        (error_code(), text()).prop_map(|(code, message)| Reply::Error { code, message }),
    ]
}

fn server_frame() -> impl Strategy<Value = ServerFrame> {
    prop_oneof![
        (num(), num()).prop_map(|(client, heartbeat_interval_ms)| ServerFrame::Welcome {
            client,
            heartbeat_interval_ms
        }),
        (num(), reply()).prop_map(|(id, reply)| ServerFrame::Reply { id, reply }),
        view().prop_map(ServerFrame::ViewChange),
        (
            group_id(),
            view_id(),
            view_id(),
            vec(view_member(), 0..3),
            vec(member(), 0..3)
        )
            .prop_map(|(group, from_view, view, added, removed)| {
                ServerFrame::ViewDelta(ViewDelta {
                    group,
                    from_view,
                    view,
                    added,
                    removed,
                })
            }),
        num().prop_map(|nonce| ServerFrame::Heartbeat { nonce }),
        (error_code(), text()).prop_map(|(code, message)| ServerFrame::Error { code, message }),
    ]
}

/// Chunk sizes for splitting a byte stream: mostly tiny (1 byte at a time splits every length
/// prefix), sometimes large.
fn chunk_sizes() -> impl Strategy<Value = Vec<usize>> {
    vec(prop_oneof![3 => 1usize..8, 1 => 8usize..600], 1..16)
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A corruption applied to an encoded datagram.
#[derive(Debug, Clone)]
enum Mutation {
    /// XOR one byte with a non-zero mask.
    Flip(Index, u8),
    /// Overwrite one byte.
    Set(Index, u8),
    /// Cut the input at a position.
    Truncate(Index),
    /// Insert a byte at a position.
    Insert(Index, u8),
    /// Remove one byte.
    Remove(Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<Index>(), 1u8..=255).prop_map(|(i, m)| Mutation::Flip(i, m)),
        2 => (any::<Index>(), prop_oneof![Just(0u8), Just(0x7f), Just(0x80), Just(0xff), any::<u8>()])
            .prop_map(|(i, b)| Mutation::Set(i, b)),
        1 => any::<Index>().prop_map(Mutation::Truncate),
        1 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        1 => any::<Index>().prop_map(Mutation::Remove),
    ]
}

fn apply(bytes: &mut Vec<u8>, mutation: &Mutation) {
    if bytes.is_empty() {
        if let Mutation::Insert(_, b) = mutation {
            bytes.push(*b);
        }
        return;
    }
    let len = bytes.len();
    match mutation {
        Mutation::Flip(i, mask) => bytes[i.index(len)] ^= mask,
        Mutation::Set(i, b) => bytes[i.index(len)] = *b,
        Mutation::Truncate(i) => bytes.truncate(i.index(len)),
        Mutation::Insert(i, b) => bytes.insert(i.index(len + 1), *b),
        Mutation::Remove(i) => {
            bytes.remove(i.index(len));
        }
    }
}

/// What the fuzz target checks: a datagram that decodes re-encodes to one that decodes to the
/// same value.
fn check_reencode(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(decoded) = Datagram::decode(bytes) {
        let again = decoded.encode();
        prop_assert!(
            again.is_ok(),
            "decoded datagram does not re-encode: {again:?}"
        );
        prop_assert_eq!(Datagram::decode(&again.unwrap()), Ok(decoded));
    }
    Ok(())
}

/// Feeds `stream` to a fresh decoder in chunks of the given sizes (cycled), taking every frame
/// that completes, and returns the frames with the decoder.
fn split_decode<T>(stream: &[u8], sizes: &[usize]) -> Result<(Vec<T>, FrameDecoder), WireError>
where
    T: for<'de> serde::Deserialize<'de>,
{
    let mut decoder = FrameDecoder::new();
    let mut frames = Vec::new();
    let mut rest = stream;
    let mut sizes = sizes.iter().cycle();
    while !rest.is_empty() {
        let n = (*sizes.next().expect("at least one chunk size")).min(rest.len());
        decoder.extend(&rest[..n]);
        rest = &rest[n..];
        while let Some(frame) = decoder.next_frame::<T>()? {
            frames.push(frame);
        }
    }
    Ok((frames, decoder))
}

/// Drives a decoder over arbitrary bytes the way a connection would: take frames until one is
/// incomplete or the stream is declared corrupt. Must never panic.
fn drain_any<T>(bytes: &[u8], sizes: &[usize])
where
    T: for<'de> serde::Deserialize<'de>,
{
    let mut decoder = FrameDecoder::new();
    let mut rest = bytes;
    let mut sizes = sizes.iter().cycle();
    while !rest.is_empty() {
        let n = (*sizes.next().expect("at least one chunk size")).min(rest.len());
        decoder.extend(&rest[..n]);
        rest = &rest[n..];
        loop {
            match decoder.next_frame::<T>() {
                Ok(Some(_)) => {}
                Ok(None) => break,
                // A corrupt stream closes the connection.
                Err(_) => return,
            }
        }
    }
}

fn sample_header() -> Header {
    Header {
        group: GroupId(7),
        sender: MemberId(3),
        recipient: MemberId(4),
        view: ViewId(2),
    }
}

fn data_frame(payload_len: usize) -> Frame {
    Frame::Data(Data {
        seq: SeqNo(1),
        view: ViewId(2),
        stamp: 42,
        payload: Bytes::from(vec![0xab; payload_len]),
    })
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

proptest! {
    #[test]
    fn datagram_round_trips(d in datagram()) {
        let bytes = d.encode().expect("a small datagram encodes");
        prop_assert!(bytes.len() <= MAX_DATAGRAM);
        prop_assert_eq!(&bytes[..2], &MAGIC[..]);
        prop_assert_eq!(bytes[2], VERSION);
        prop_assert_eq!(Datagram::decode(&bytes), Ok(d));
    }

    /// The zero-copy decoder (payloads sliced from the buffer) agrees with the copying one on
    /// every datagram, well-formed or not.
    #[test]
    fn shared_decoding_agrees_with_copying_decoding(d in datagram(), cut in any::<usize>(), flip in any::<(usize, u8)>()) {
        let bytes = d.encode().expect("a small datagram encodes");
        let shared = Bytes::from(bytes.clone());
        prop_assert_eq!(Datagram::decode_shared(&shared), Ok(d));
        let truncated = shared.slice(..cut % (bytes.len() + 1));
        prop_assert_eq!(Datagram::decode_shared(&truncated), Datagram::decode(&truncated));
        let mut mangled = bytes.clone();
        let at = flip.0 % mangled.len();
        mangled[at] ^= flip.1;
        let mangled_shared = Bytes::from(mangled.clone());
        prop_assert_eq!(Datagram::decode_shared(&mangled_shared), Datagram::decode(&mangled));
    }

    #[test]
    fn builder_bundles_in_order_within_budget(
        header in header(),
        budget in 64usize..1500,
        frames in vec(frame(), 0..24),
    ) {
        let mut builder = DatagramBuilder::new(header, budget);
        for frame in &frames {
            builder.push(frame).expect("a small frame is accepted");
        }
        prop_assert_eq!(builder.is_empty(), frames.is_empty());
        let datagrams: Vec<Vec<u8>> = builder.finish().collect();
        prop_assert!(builder.is_empty());

        let mut decoded_frames = Vec::new();
        let mut sizes = Vec::new();
        for bytes in &datagrams {
            let decoded = Datagram::decode(bytes);
            prop_assert!(decoded.is_ok(), "bundled datagram does not decode: {:?}", decoded);
            let decoded = decoded.unwrap();
            prop_assert_eq!(decoded.header, header);
            prop_assert!(
                bytes.len() <= budget || decoded.frames.len() == 1,
                "datagram of {} bytes with {} frames exceeds budget {}",
                bytes.len(),
                decoded.frames.len(),
                budget
            );
            sizes.push((bytes.len(), decoded.frames.len()));
            decoded_frames.extend(decoded.frames);
        }
        prop_assert_eq!(&decoded_frames, &frames);

        // Bundling is greedy: a datagram was closed only because the next frame did not fit.
        for pair in datagrams.windows(2) {
            let next = Datagram::decode(&pair[1]).unwrap();
            let first = postcard::to_allocvec(&next.frames[0]).unwrap();
            prop_assert!(
                pair[0].len() + first.len() > budget,
                "closed a datagram of {} bytes though the next frame ({} bytes) fit in {}",
                pair[0].len(),
                first.len(),
                budget
            );
        }
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in vec(any::<u8>(), 0..2048)) {
        let _ = Datagram::decode(&bytes);
        check_reencode(&bytes)?;
    }

    #[test]
    fn decoding_arbitrary_bytes_after_valid_magic_never_panics(
        tail in vec(any::<u8>(), 0..2048),
    ) {
        let mut bytes = Vec::with_capacity(3 + tail.len());
        bytes.extend_from_slice(&MAGIC);
        bytes.push(VERSION);
        bytes.extend_from_slice(&tail);
        let _ = Datagram::decode(&bytes);
        check_reencode(&bytes)?;
    }

    #[test]
    fn decoding_mutated_datagrams_never_panics(
        d in datagram(),
        mutations in vec(mutation(), 1..8),
    ) {
        let mut bytes = d.encode().expect("a small datagram encodes");
        for m in &mutations {
            apply(&mut bytes, m);
        }
        let _ = Datagram::decode(&bytes);
        check_reencode(&bytes)?;
    }

    #[test]
    fn client_frames_survive_any_split(
        frames in vec(client_frame(), 1..6),
        sizes in chunk_sizes(),
    ) {
        let mut stream = Vec::new();
        for frame in &frames {
            stream.extend(encode_control(frame).expect("a small frame encodes"));
        }
        let (decoded, decoder) = split_decode::<ClientFrame>(&stream, &sizes)
            .expect("a valid stream decodes");
        prop_assert_eq!(decoded, frames);
        prop_assert_eq!(decoder.buffered(), 0);
    }

    #[test]
    fn server_frames_survive_any_split(
        frames in vec(server_frame(), 1..6),
        sizes in chunk_sizes(),
    ) {
        let mut stream = Vec::new();
        for frame in &frames {
            stream.extend(encode_control(frame).expect("a small frame encodes"));
        }
        let (decoded, decoder) = split_decode::<ServerFrame>(&stream, &sizes)
            .expect("a valid stream decodes");
        prop_assert_eq!(decoded, frames);
        prop_assert_eq!(decoder.buffered(), 0);
    }

    #[test]
    fn frame_decoder_on_arbitrary_bytes_never_panics(
        bytes in vec(any::<u8>(), 0..2048),
        sizes in chunk_sizes(),
    ) {
        drain_any::<ClientFrame>(&bytes, &sizes);
        drain_any::<ServerFrame>(&bytes, &sizes);
    }

    /// Arbitrary bytes almost always start with an absurd length prefix; this one keeps the
    /// prefixes plausible so that the bodies reach the postcard decoder.
    #[test]
    fn frame_decoder_on_arbitrary_bodies_never_panics(
        bodies in vec((vec(any::<u8>(), 0..256), -2isize..=2), 1..6),
        sizes in chunk_sizes(),
    ) {
        let mut stream = Vec::new();
        for (body, skew) in &bodies {
            let len = u32::try_from(body.len().saturating_add_signed(*skew)).unwrap();
            stream.extend_from_slice(&len.to_be_bytes());
            stream.extend_from_slice(body);
        }
        drain_any::<ClientFrame>(&stream, &sizes);
        drain_any::<ServerFrame>(&stream, &sizes);
    }
}

// ---------------------------------------------------------------------------------------------
// Specific errors
// ---------------------------------------------------------------------------------------------

#[test]
fn empty_input_is_truncated() {
    assert_eq!(Datagram::decode(&[]), Err(WireError::Truncated(0)));
    assert_eq!(Datagram::decode(b"GM"), Err(WireError::Truncated(2)));
}

#[test]
fn wrong_magic_is_rejected() {
    let mut bytes = Datagram {
        header: sample_header(),
        frames: vec![data_frame(4)],
    }
    .encode()
    .unwrap();
    bytes[0] = b'X';
    assert_eq!(Datagram::decode(&bytes), Err(WireError::BadMagic));
    assert_eq!(Datagram::decode(b"MG\x01"), Err(WireError::BadMagic));
}

#[test]
fn other_version_is_rejected() {
    let mut bytes = Datagram {
        header: sample_header(),
        frames: vec![data_frame(4)],
    }
    .encode()
    .unwrap();
    bytes[2] = 99;
    assert_eq!(
        Datagram::decode(&bytes),
        Err(WireError::UnsupportedVersion(99))
    );
}

#[test]
fn header_without_frames_is_empty() {
    let bytes = Datagram {
        header: sample_header(),
        frames: vec![],
    }
    .encode()
    .unwrap();
    assert_eq!(Datagram::decode(&bytes), Err(WireError::Empty));
}

#[test]
fn oversized_datagram_is_rejected() {
    let bytes = vec![0u8; 65_508];
    assert_eq!(
        Datagram::decode(&bytes),
        Err(WireError::Oversized {
            len: 65_508,
            limit: MAX_DATAGRAM
        })
    );
}

#[test]
fn datagram_of_exactly_max_size_round_trips_and_one_more_byte_does_not_encode() {
    let header = sample_header();
    let base = Datagram {
        header,
        frames: vec![data_frame(0)],
    }
    .encode()
    .unwrap()
    .len();
    // The empty payload's length is a one-byte varint; a payload this large needs three.
    let payload_len = MAX_DATAGRAM - base - 2;
    let d = Datagram {
        header,
        frames: vec![data_frame(payload_len)],
    };
    let bytes = d.encode().unwrap();
    assert_eq!(bytes.len(), MAX_DATAGRAM);
    assert_eq!(Datagram::decode(&bytes), Ok(d));

    let too_big = Datagram {
        header,
        frames: vec![data_frame(payload_len + 1)],
    };
    assert_eq!(
        too_big.encode(),
        Err(WireError::Oversized {
            len: MAX_DATAGRAM + 1,
            limit: MAX_DATAGRAM
        })
    );
    let mut builder = DatagramBuilder::new(header, 1400);
    assert!(matches!(
        builder.push(&data_frame(payload_len + 1)),
        Err(WireError::Oversized { .. })
    ));
    assert!(builder.is_empty());
    builder.push(&data_frame(payload_len)).unwrap();
    let out: Vec<_> = builder.finish().collect();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].len(), MAX_DATAGRAM);
}

#[test]
fn control_frame_over_the_limit_is_oversized() {
    let mut decoder = FrameDecoder::new();
    decoder.extend(&((MAX_CONTROL_FRAME + 1) as u32).to_be_bytes());
    assert_eq!(
        decoder.next_frame::<ClientFrame>(),
        Err(WireError::Oversized {
            len: MAX_CONTROL_FRAME + 1,
            limit: MAX_CONTROL_FRAME
        })
    );

    // Exactly at the limit is merely incomplete.
    let mut decoder = FrameDecoder::new();
    decoder.extend(&(MAX_CONTROL_FRAME as u32).to_be_bytes());
    assert_eq!(decoder.next_frame::<ClientFrame>(), Ok(None));
}

#[test]
fn trailing_bytes_in_control_frame_are_malformed() {
    let frame = ServerFrame::Heartbeat { nonce: 5 };
    let mut bytes = encode_control(&frame).unwrap();
    bytes.extend_from_slice(&[0, 0]);
    let body = (bytes.len() - 4) as u32;
    bytes[..4].copy_from_slice(&body.to_be_bytes());
    // A valid frame after the corrupt one.
    bytes.extend(encode_control(&frame).unwrap());

    let mut decoder = FrameDecoder::new();
    decoder.extend(&bytes);
    assert!(matches!(
        decoder.next_frame::<ServerFrame>(),
        Err(WireError::Malformed(_))
    ));
    // The corrupt frame was consumed whole.
    assert_eq!(decoder.next_frame::<ServerFrame>(), Ok(Some(frame)));
    assert_eq!(decoder.next_frame::<ServerFrame>(), Ok(None));
}

#[test]
fn incomplete_control_frame_waits_for_more_bytes() {
    let frame = ClientFrame::HeartbeatAck {
        nonce: u64::MAX,
        metrics: MetricsReport::default(),
    };
    let bytes = encode_control(&frame).unwrap();
    let mut decoder = FrameDecoder::new();
    for (i, b) in bytes.iter().enumerate() {
        assert_eq!(decoder.next_frame::<ClientFrame>(), Ok(None));
        assert_eq!(decoder.buffered(), i);
        decoder.extend(&[*b]);
    }
    assert_eq!(decoder.next_frame::<ClientFrame>(), Ok(Some(frame)));
    assert_eq!(decoder.buffered(), 0);
}

#[test]
fn address_probes_and_datagrams_are_told_apart() {
    let cookie = [0xa5; COOKIE_LEN];
    let probe = encode_address_probe(&cookie);
    assert_eq!(&probe[..2], b"GP");
    assert_eq!(decode_address_probe(&probe), Some(cookie));
    // A probe is never a data-plane datagram, and no datagram is a probe.
    assert_eq!(Datagram::decode(&probe), Err(WireError::BadMagic));
    let mut data = probe;
    data[..2].copy_from_slice(&MAGIC);
    assert_eq!(decode_address_probe(&data), None);
    // Wrong version or length: not a probe.
    let mut other = probe;
    other[2] = 2;
    assert_eq!(decode_address_probe(&other), None);
    assert_eq!(decode_address_probe(&probe[..probe.len() - 1]), None);
    let mut longer = probe.to_vec();
    longer.push(0);
    assert_eq!(decode_address_probe(&longer), None);
}

/// A join's password is encoded exactly as a string was (the wire format did not change when
/// it got its own type) and never appears in a request's `Debug` output, which logs may print.
#[test]
fn a_password_is_a_string_on_the_wire_and_hidden_in_debug() {
    let join = Request::Join {
        group: "team".into(),
        order: Order::Total,
        password: Some(Password::new("s3cret-pw")),
    };
    assert!(!format!("{join:?}").contains("s3cret"), "{join:?}");
    assert_eq!(
        postcard::to_allocvec(&Password::new("s3cret-pw")).unwrap(),
        postcard::to_allocvec("s3cret-pw").unwrap()
    );
    let bytes = postcard::to_allocvec(&join).unwrap();
    assert_eq!(postcard::from_bytes::<Request>(&bytes).unwrap(), join);
}
