//! The tracker's registry as a sans-IO state machine: who is connected, which groups exist,
//! who is in them, and who may join.
//!
//! The tracker server (`crate::tracker`) owns the sockets, the timers and the locks; everything
//! it decides, it asks [`Registry`]. The registry has three inputs and no outputs of its own:
//!
//! - [`Registry::register`]: a client's [`Hello`] (version, username, UDP address);
//! - [`Registry::handle`]: one [`Request`] of a registered client, answered by exactly one
//!   [`Reply`] and the [`Push`]es (view changes) the request caused;
//! - [`Registry::remove`]: a client is gone (quit, disconnected, or dropped for missing its
//!   heartbeats); it leaves every group, and the remaining members get the new views.
//!
//! # Layout
//!
//! - `names.rs`: what makes a username or group name valid ([`validate_name`]), glob patterns
//!   ([`glob_match`]), and how a name from the network is quoted in a message.
//! - `policy.rs`: the [`AccessPolicy`], its TOML form, and `admit`, which decides whether a
//!   join may go ahead (every refusal reason, with its error code and message).
//! - `registry.rs`: the [`Registry`] (clients, groups, views, the dispatch of requests);
//!   `registry/membership.rs`: joins, leaves and the view changes they push;
//!   `registry/suspicion.rs`: reports of silent members.
//!
//! # Views
//!
//! Each group has a view id that grows by one with every membership change (the group's first
//! view is 1) and a list of members in the order they joined. Member ids come from one
//! tracker-wide counter, one per *membership*: a client that leaves and joins again gets a new
//! member id, so the data plane never confuses the streams of the two memberships. A change is
//! pushed to every member of the new view (the joiner too) and to the member it removed; the
//! pushes of one change come in one `Vec`, members in view order, the leaver last.
//!
//! A group with no members left is deleted; its name can be created again later, with a new
//! [`GroupId`].
//!
//! # Names
//!
//! Usernames and group names are 1 to [`MAX_NAME_CHARS`] characters without whitespace or
//! control characters ([`validate_name`]); anything else is refused with
//! [`ErrorCode::InvalidName`].
//!
//! # Access policy
//!
//! An [`AccessPolicy`] has a default rule and rules for group names or glob patterns (`*` any
//! run of characters, `?` one character). For a group, the first rule naming it exactly
//! applies; failing that, the first pattern that matches; failing that, the default rule. The
//! rule that applies replaces the default entirely: a field it does not set takes its open
//! value (no password, no allow-list, no member limit, joining may create the group).
//!
//! ```toml
//! [default]
//! create = true            # joining an absent group creates it (the default)
//!
//! [[group]]
//! name = "ops"
//! password = "s3cret"      # Join must carry this password
//! max_members = 8          # the 9th joiner gets GroupFull
//!
//! [[group]]
//! pattern = "team-*"
//! allow = ["alice", "bob"] # only these usernames may join
//! create = false           # joining does not create a team-* group: it must exist already
//! ```
//!
//! Unknown keys are refused (a misspelt `passwrd` must not leave a group open).
//!
//! # Order of the checks of a join
//!
//! Invalid name; then, decided by `policy::admit` before the join changes anything: already a
//! member, not on the allow-list, missing or wrong password, then for an existing group the
//! order and the member limit, and for an absent one whether joining may create it, a limit of
//! 0, and the limits on groups ([`RegistryLimits`]). A refused join changes nothing but the
//! count of wrong passwords ([`Registry::wrong_passwords`]).
//!
//! [`Hello`]: crate::protocol::wire::Hello
//! [`Request`]: crate::protocol::wire::Request
//! [`GroupId`]: crate::protocol::types::GroupId

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::wire::{ErrorCode, Reply, View, ViewDelta};

mod names;
mod policy;
mod registry;

pub use names::{glob_match, validate_name, NameError, MAX_NAME_CHARS};
pub use policy::{AccessPolicy, GroupRule, PolicyError, Rule, Selector};
pub use registry::Registry;

/// Most members any group may have, whatever its rule says: a full view of this many members
/// (names of [`MAX_NAME_CHARS`] characters) still fits in one control frame.
pub const MAX_MEMBERS: u32 = 4096;

/// The limits a [`Registry`] enforces besides the access policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistryLimits {
    /// Most groups at a time (default 10,000); a join that would create one more gets
    /// [`ErrorCode::LimitReached`].
    pub max_groups: usize,
    /// Most groups that one client created and that still exist (default 64); a join that
    /// would create one more gets [`ErrorCode::LimitReached`].
    pub max_groups_per_client: usize,
    /// The member limit of a group whose rule sets none (default 256); a rule's own
    /// `max_members` replaces it. Either is capped at [`MAX_MEMBERS`].
    pub default_max_members: u32,
    /// How long a report that a member is silent
    /// ([`Request::Suspect`](crate::protocol::wire::Request::Suspect)) counts (default
    /// 10 s); see [`Registry::handle_at`].
    pub suspect_window: Duration,
}

impl Default for RegistryLimits {
    fn default() -> Self {
        RegistryLimits {
            max_groups: 10_000,
            max_groups_per_client: 64,
            default_max_members: 256,
            suspect_window: Duration::from_secs(10),
        }
    }
}

/// A client session, as numbered by the tracker (from 1, never reused while it runs).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, serde::Serialize, Deserialize,
)]
pub struct ClientId(pub u64);

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A refused hello or request: an error code and a short sentence for the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    pub code: ErrorCode,
    pub message: String,
}

impl Refusal {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Refusal {
            code,
            message: message.into(),
        }
    }
}

impl From<Refusal> for Reply {
    fn from(r: Refusal) -> Reply {
        Reply::Error {
            code: r.code,
            message: r.message,
        }
    }
}

/// A view to send to one client.
///
/// The pushes of one change share one `view` (and one `delta`), so a change costs one copy of
/// the view however many members it goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    pub to: ClientId,
    /// The new view in full.
    pub view: Arc<View>,
    /// The change from the previous view, when this client holds the previous view (it was
    /// a member of it); `None` for the joiner, who gets the full view.
    pub delta: Option<Arc<ViewDelta>>,
}

/// Why a client's session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Departure {
    /// It sent [`Request::Quit`](crate::protocol::wire::Request::Quit).
    Quit,
    /// Its connection closed (or broke the protocol, or the tracker stopped).
    Disconnected,
    /// It missed its heartbeats.
    Dropped,
    /// Enough members of a group reported it silent on the data plane (it leaves that group
    /// only; its session goes on).
    Suspected,
}

impl Departure {
    /// `"quit"`, `"disconnected"` or `"dropped"`, as the metrics log writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Departure::Quit => "quit",
            Departure::Disconnected => "disconnected",
            Departure::Dropped => "dropped",
            Departure::Suspected => "suspected",
        }
    }
}

impl fmt::Display for Departure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
