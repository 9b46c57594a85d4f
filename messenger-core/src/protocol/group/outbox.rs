//! Output assembly: frames queued per member are bundled into datagrams of at most
//! `bundle_size` bytes, with the acknowledgements due to that member riding along.

use std::collections::{BTreeMap, VecDeque};

use super::{Group, Transmit};
use crate::protocol::types::MemberId;
use crate::protocol::wire::{self, DatagramBuilder, Frame, Header, Status, StreamAck, View};

/// The datagrams under construction, one per member, and the finished ones waiting for
/// [`Group::poll_transmit`].
#[derive(Debug, Default)]
pub(super) struct Outbox {
    builders: BTreeMap<MemberId, DatagramBuilder>,
    transmits: VecDeque<Transmit>,
    /// Reused buffer for frames encoded once for several members.
    scratch_frame: Vec<u8>,
}

impl Outbox {
    /// Forgets everything not sent yet (this member left the group).
    pub(super) fn clear(&mut self) {
        self.builders.clear();
        self.transmits.clear();
    }

    /// Datagrams started from now on name `view`; those under construction keep their view.
    pub(super) fn set_view(&mut self, view: &View, me: MemberId) {
        for (&to, builder) in self.builders.iter_mut() {
            builder.set_header(Header {
                group: view.group,
                sender: me,
                recipient: to,
                view: view.id,
            });
        }
    }

    /// Drops what was queued for a member that left.
    pub(super) fn remove(&mut self, member: MemberId) {
        self.builders.remove(&member);
    }

    pub(super) fn has_transmits(&self) -> bool {
        !self.transmits.is_empty()
    }

    pub(super) fn pop_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }
}

impl Group {
    /// Queues our session status for `to`: our highest number, where our stream starts for
    /// it, and what we received of everyone.
    pub(super) fn send_status(&mut self, to: MemberId) {
        let Some(peer) = self.peers.get(&to) else {
            return;
        };
        let start = peer.start_for;
        let acks = self
            .peers
            .iter()
            .map(|(&origin, p)| {
                let a = p.stream.ack();
                StreamAck {
                    origin,
                    received: a.received,
                    finals: a.finals,
                    delivered: a.delivered,
                }
            })
            .collect();
        let status = Frame::Status(Status {
            high: self.last_seq,
            start,
            acks,
        });
        self.queue(to, &status);
    }

    pub(super) fn queue_ack(&mut self, to: MemberId) {
        let Some(peer) = self.peers.get_mut(&to) else {
            return;
        };
        peer.ack_due = false;
        let ack = Frame::Ack(peer.stream.ack());
        self.queue(to, &ack);
    }

    /// Queues one frame for several members, encoding it once.
    pub(super) fn queue_to_all(&mut self, targets: &[MemberId], frame: &Frame) {
        let mut scratch = std::mem::take(&mut self.outbox.scratch_frame);
        scratch.clear();
        let Ok(encoded) = wire::encode_frame_into(frame, scratch) else {
            return;
        };
        for &to in targets {
            if let Some(builder) = self.builder(to) {
                let _ = builder.push_encoded(&encoded);
            }
        }
        self.outbox.scratch_frame = encoded;
    }

    /// The datagram under construction for `to` (a member of the view).
    fn builder(&mut self, to: MemberId) -> Option<&mut DatagramBuilder> {
        if !self.peers.contains_key(&to) {
            return None;
        }
        let header = Header {
            group: self.view.group,
            sender: self.me,
            recipient: to,
            view: self.view.id,
        };
        let budget = self.config.bundle_size;
        Some(
            self.outbox
                .builders
                .entry(to)
                .or_insert_with(|| DatagramBuilder::new(header, budget)),
        )
    }

    pub(super) fn queue(&mut self, to: MemberId, frame: &Frame) {
        // Frames are bounded by construction (payload limit, window-bounded lists), so a frame
        // over the datagram limit is a configuration error; it is dropped rather than sent.
        if let Some(builder) = self.builder(to) {
            let _ = builder.push(frame);
        }
    }

    /// Finishes every datagram under construction into the transmit queue.
    pub(super) fn assemble_datagrams(&mut self) {
        // Piggyback due acknowledgements on datagrams that are going out anyway.
        let due: Vec<MemberId> = self
            .outbox
            .builders
            .iter()
            .filter(|(id, b)| !b.is_empty() && self.peers.get(id).is_some_and(|p| p.ack_due))
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.queue_ack(id);
        }
        let outbox = &mut self.outbox;
        for (id, builder) in outbox.builders.iter_mut() {
            let Some(peer) = self.peers.get(id) else {
                continue;
            };
            for bytes in builder.finish() {
                outbox.transmits.push_back(Transmit {
                    to: peer.addr,
                    member: *id,
                    bytes,
                });
            }
        }
    }
}
