//! One `Group` fed by hand, for the tests of what a member does with what its peers send
//! (bounds.rs, hostile.rs, stalls.rs): a view of three members — this one (`ME`), one that
//! misbehaves (`MALLORY`) and one that does not (`HONEST`) — and datagrams built for `ME`.

#![allow(dead_code)]

use std::net::SocketAddr;

use messenger_core::protocol::wire::{Datagram, Frame, Header};
use messenger_core::protocol::{GroupId, MemberId, Order, View, ViewId, ViewMember};

pub const ME: MemberId = MemberId(1);
pub const MALLORY: MemberId = MemberId(2);
pub const HONEST: MemberId = MemberId(3);
pub const GROUP: GroupId = GroupId(7);

/// A member's UDP address (never bound: the group only compares addresses).
pub fn addr(id: MemberId) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 30_000 + id.0 as u16))
}

/// View 1 of the group, with the three members.
pub fn view(order: Order) -> View {
    View {
        group: GROUP,
        name: "g".into(),
        order,
        id: ViewId(1),
        members: [ME, MALLORY, HONEST]
            .into_iter()
            .map(|id| ViewMember {
                id,
                name: format!("m{id}"),
                addr: addr(id),
                joined: ViewId(1),
            })
            .collect(),
    }
}

/// The encoded datagram `from` sends `ME` in view 1.
pub fn datagram(from: MemberId, frames: Vec<Frame>) -> Vec<u8> {
    Datagram {
        header: Header {
            group: GROUP,
            sender: from,
            recipient: ME,
            view: ViewId(1),
        },
        frames,
    }
    .encode()
    .expect("encodes")
}
