//! What the client delivers to the application: messages, views and events.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::protocol::wire::{Order, View};
use crate::protocol::{GroupId, MemberId};

/// A delivered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The group's name (shared by every message of the group: no allocation per message).
    pub group: Arc<str>,
    /// The sender's username (shared likewise).
    pub sender: Arc<str>,
    /// The sender's member id in the group (one membership).
    pub sender_id: MemberId,
    /// The sender's sequence number in the group, from 1.
    pub seq: u64,
    pub payload: Bytes,
    /// From the sender's send to this delivery (wall clocks of both hosts).
    pub latency: Duration,
    /// True for this client's own messages (delivered back in the group's order).
    pub own: bool,
}

impl Message {
    /// The payload as text (invalid UTF-8 replaced).
    pub fn text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.payload)
    }
}

/// A member as the application sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: MemberId,
    pub name: String,
    pub addr: SocketAddr,
}

/// A group's new membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupView {
    pub group: String,
    /// The tracker's number for the group (what datagrams carry).
    pub group_id: GroupId,
    pub order: Order,
    pub view_id: u64,
    pub members: Vec<Member>,
    /// Usernames that joined since the previous view this client saw.
    pub joined: Vec<String>,
    /// Usernames that left (or failed) since the previous view.
    pub left: Vec<String>,
}

impl GroupView {
    pub(crate) fn from_view(view: &View, previous: Option<&View>) -> Self {
        let names = |v: Option<&View>| -> Vec<String> {
            v.map(|v| v.members.iter().map(|m| m.name.clone()).collect())
                .unwrap_or_default()
        };
        let (now, before) = (names(Some(view)), names(previous));
        GroupView {
            group: view.name.clone(),
            group_id: view.group,
            order: view.order,
            view_id: view.id.0,
            members: view
                .members
                .iter()
                .map(|m| Member {
                    id: m.id,
                    name: m.name.clone(),
                    addr: m.addr,
                })
                .collect(),
            joined: now
                .iter()
                .filter(|n| !before.contains(n))
                .cloned()
                .collect(),
            left: before
                .iter()
                .filter(|n| !now.contains(n))
                .cloned()
                .collect(),
        }
    }
}

/// Connection and group events.
///
/// More events may be added (`#[non_exhaustive]`): a `match` needs a catch-all arm.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// The tracker connection dropped; delivery among known members goes on, and the client
    /// reconnects by itself.
    TrackerLost { reason: String },
    /// Back in touch with the tracker, registered again and re-joined these groups (as new
    /// memberships).
    Reconnected { groups: Vec<String> },
    /// Re-joining a group after reconnecting failed.
    RejoinFailed { group: String, reason: String },
    /// The tracker removed this client from a group it did not leave.
    Removed { group: String },
    /// Messages `first..=last` of a member that left or failed can never be delivered.
    Lost {
        group: String,
        sender: String,
        first: u64,
        last: u64,
    },
}
