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
//! Invalid name, already a member, not on the allow-list, wrong or missing password, then for
//! an existing group the order and the member limit, and for an absent one whether joining may
//! create it (and a limit of 0).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::ops::Bound;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::types::{GroupId, MemberId, ViewId};
use super::wire::{
    ErrorCode, GroupInfo, Hello, Order, Reply, Request, TrackerStats, View, ViewDelta, ViewMember,
    CONTROL_VERSION, GROUPS_PAGE,
};

mod names;
mod policy;

use names::{check_group_name, quoted};
pub use names::{glob_match, validate_name, NameError, MAX_NAME_CHARS};
use policy::{order_name, same_secret};
pub use policy::{AccessPolicy, GroupRule, PolicyError, Rule, Selector};

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
    /// How long a report that a member is silent ([`Request::Suspect`]) counts (default
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

// ---------------------------------------------------------------------------------------------
// Registry
// ---------------------------------------------------------------------------------------------

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
    /// It sent [`Request::Quit`].
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

#[derive(Debug, Clone)]
struct ClientEntry {
    username: String,
    udp_addr: SocketAddr,
    /// How many existing groups this client created.
    created: usize,
    /// Joins refused for a wrong password in this session.
    wrong_passwords: u32,
    /// Names of the groups it is a member of.
    groups: BTreeSet<String>,
}

#[derive(Debug, Clone)]
struct Membership {
    client: ClientId,
    member: ViewMember,
}

#[derive(Debug, Clone)]
struct GroupEntry {
    id: GroupId,
    /// Who created it (counted against its limit while the group exists).
    creator: ClientId,
    order: Order,
    view: ViewId,
    /// In the order they joined (so by growing member id).
    members: Vec<Membership>,
    /// Reports that a member is silent: suspect, then who reported it and when.
    suspicions: BTreeMap<MemberId, BTreeMap<ClientId, Instant>>,
}

impl GroupEntry {
    fn view(&self, name: &str) -> View {
        View {
            group: self.id,
            name: name.to_owned(),
            order: self.order,
            id: self.view,
            members: self.members.iter().map(|m| m.member.clone()).collect(),
        }
    }

    fn position(&self, client: ClientId) -> Option<usize> {
        self.members.iter().position(|m| m.client == client)
    }
}

/// The tracker's state: clients, groups, views, the access policy and the counters of
/// [`TrackerStats`]. Pure: every method is a state transition that returns what to send.
#[derive(Debug, Clone)]
pub struct Registry {
    policy: AccessPolicy,
    limits: RegistryLimits,
    clients: BTreeMap<ClientId, ClientEntry>,
    usernames: HashMap<String, ClientId>,
    groups: BTreeMap<String, GroupEntry>,
    next_client: u64,
    next_group: u64,
    next_member: u64,
    stats: TrackerStats,
}

impl Default for Registry {
    fn default() -> Self {
        Registry::new(AccessPolicy::open())
    }
}

impl Registry {
    /// An empty registry enforcing `policy`.
    pub fn new(policy: AccessPolicy) -> Self {
        Registry {
            policy,
            limits: RegistryLimits::default(),
            clients: BTreeMap::new(),
            usernames: HashMap::new(),
            groups: BTreeMap::new(),
            next_client: 1,
            next_group: 1,
            next_member: 1,
            stats: TrackerStats::default(),
        }
    }

    /// An empty registry whose group ids start above `group_id_base`.
    ///
    /// Datagrams carry the group id and are matched against it first, so a tracker that is
    /// restarted should number its groups differently from its previous life: then a datagram
    /// still in flight from a membership the old tracker made cannot land in a group the new
    /// tracker made. The server passes a base derived from the time it started.
    pub fn with_group_id_base(policy: AccessPolicy, group_id_base: u64) -> Self {
        Registry {
            next_group: group_id_base.saturating_add(1),
            ..Registry::new(policy)
        }
    }

    /// This registry enforcing `limits`.
    pub fn with_limits(self, limits: RegistryLimits) -> Self {
        Registry { limits, ..self }
    }

    // --- getters -------------------------------------------------------------------------

    pub fn policy(&self) -> &AccessPolicy {
        &self.policy
    }

    pub fn limits(&self) -> &RegistryLimits {
        &self.limits
    }

    /// How many joins of `client` were refused for a wrong password in its session.
    pub fn wrong_passwords(&self, client: ClientId) -> u32 {
        self.clients.get(&client).map_or(0, |c| c.wrong_passwords)
    }

    /// The username of a connected client.
    pub fn username(&self, client: ClientId) -> Option<&str> {
        self.clients.get(&client).map(|c| c.username.as_str())
    }

    /// The client connected under `username`.
    pub fn client_by_name(&self, username: &str) -> Option<ClientId> {
        self.usernames.get(username).copied()
    }

    /// The current view of a group.
    pub fn view(&self, group: &str) -> Option<View> {
        self.groups.get(group).map(|g| g.view(group))
    }

    /// Names of the groups `client` is a member of, sorted.
    pub fn groups_of(&self, client: ClientId) -> Vec<String> {
        self.clients
            .get(&client)
            .map(|c| c.groups.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The counters, with the current numbers of clients, groups and memberships.
    pub fn stats(&self) -> TrackerStats {
        let memberships: usize = self.groups.values().map(|g| g.members.len()).sum();
        TrackerStats {
            clients: saturating_u32(self.clients.len()),
            groups: saturating_u32(self.groups.len()),
            memberships: saturating_u32(memberships),
            ..self.stats
        }
    }

    // --- inputs --------------------------------------------------------------------------

    /// Accepts a client's hello: the version must be [`CONTROL_VERSION`], the username valid
    /// and not used by another connected client.
    pub fn register(&mut self, hello: &Hello) -> Result<ClientId, Refusal> {
        let result = self.try_register(hello);
        if result.is_err() {
            self.stats.errors += 1;
        }
        result
    }

    fn try_register(&mut self, hello: &Hello) -> Result<ClientId, Refusal> {
        if hello.version != CONTROL_VERSION {
            return Err(Refusal::new(
                ErrorCode::VersionMismatch,
                format!(
                    "control protocol version {} is not supported (this tracker speaks {CONTROL_VERSION})",
                    hello.version
                ),
            ));
        }
        let name = &hello.username;
        if let Err(reason) = validate_name(name) {
            return Err(Refusal::new(
                ErrorCode::InvalidName,
                format!("{} is not a valid username: {reason}", quoted(name)),
            ));
        }
        if self.usernames.contains_key(name) {
            return Err(Refusal::new(
                ErrorCode::UsernameTaken,
                format!("the username {} is taken", quoted(name)),
            ));
        }
        let id = ClientId(self.next_client);
        self.next_client += 1;
        self.usernames.insert(name.clone(), id);
        self.clients.insert(
            id,
            ClientEntry {
                username: name.clone(),
                udp_addr: hello.udp_addr,
                created: 0,
                wrong_passwords: 0,
                groups: BTreeSet::new(),
            },
        );
        Ok(id)
    }

    /// Answers one request of `client` with exactly one reply, and returns the views the
    /// request changed, to push. [`Request::Quit`] also removes the client (as
    /// [`Registry::remove`] with [`Departure::Quit`]).
    ///
    /// [`Request::Suspect`] depends on time: it needs [`Registry::handle_at`], and is refused
    /// here.
    pub fn handle(&mut self, client: ClientId, request: Request) -> (Reply, Vec<Push>) {
        self.handle_inner(None, client, request)
    }

    /// [`Registry::handle`] at time `now`, which every request may use.
    ///
    /// A [`Request::Suspect`] reports that `member` of `group` is silent on the data plane.
    /// The reporter must be a member of the group, the suspect another member of it. Each
    /// reporter counts once per suspect, and a report counts for
    /// [`RegistryLimits::suspect_window`] after it was made (a new report renews it). When at
    /// least half of the suspect's fellow members (rounded up, and at least one) have
    /// reported it, the suspect is taken out of the group: a new view, pushed to the others
    /// and to it, as for a leave ([`Reply::Suspected`] says whether this report did it).
    pub fn handle_at(
        &mut self,
        now: Instant,
        client: ClientId,
        request: Request,
    ) -> (Reply, Vec<Push>) {
        self.handle_inner(Some(now), client, request)
    }

    fn handle_inner(
        &mut self,
        now: Option<Instant>,
        client: ClientId,
        request: Request,
    ) -> (Reply, Vec<Push>) {
        self.stats.requests += 1;
        let result = if self.clients.contains_key(&client) {
            match request {
                Request::ListGroups { after } => {
                    let (groups, more) = self.list_groups(after.as_deref());
                    Ok((Reply::Groups { groups, more }, Vec::new()))
                }
                Request::ListMembers { group } => self
                    .list_members(&group)
                    .map(|view| (Reply::Members(view), Vec::new())),
                Request::Join {
                    group,
                    order,
                    password,
                } => self.join(client, &group, order, password.as_deref()),
                Request::Leave { group } => self.leave(client, &group),
                Request::Quit { .. } => Ok((Reply::Bye, self.remove(client, Departure::Quit))),
                Request::Stats => Ok((Reply::Stats(self.stats()), Vec::new())),
                Request::Suspect { group, member } => match now {
                    Some(now) => self.suspect(now, client, &group, member),
                    None => Err(Refusal::new(
                        ErrorCode::BadRequest,
                        "a report of a silent member needs the time (Registry::handle_at)",
                    )),
                },
            }
        } else {
            Err(Refusal::new(
                ErrorCode::BadRequest,
                format!("client {client} is not registered"),
            ))
        };
        match result {
            Ok(done) => done,
            Err(refusal) => {
                self.stats.errors += 1;
                (refusal.into(), Vec::new())
            }
        }
    }

    /// Removes a client that quit, disconnected or was dropped: it leaves every group (in
    /// name order) and the remaining members of each get the new view. Its username becomes
    /// free. Removing an unknown client does nothing.
    pub fn remove(&mut self, client: ClientId, why: Departure) -> Vec<Push> {
        let Some(entry) = self.clients.remove(&client) else {
            return Vec::new();
        };
        self.usernames.remove(&entry.username);
        if why == Departure::Dropped {
            self.stats.clients_dropped += 1;
        }
        let mut pushes = Vec::new();
        for name in &entry.groups {
            self.take_out(name, client, false, &mut pushes);
        }
        pushes
    }

    /// Counts a connection closed for breaking the protocol.
    pub fn note_bad_connection(&mut self) {
        self.stats.bad_connections += 1;
    }

    /// Counts a connection refused or closed for reaching one of the tracker's limits.
    pub fn note_refused_connection(&mut self) {
        self.stats.refused_connections += 1;
    }

    // --- requests ------------------------------------------------------------------------

    /// One page of groups after `after`, in name order, and whether more follow.
    fn list_groups(&self, after: Option<&str>) -> (Vec<GroupInfo>, bool) {
        // A BTreeMap iterates in name order. The cursor need not be an existing group (it may
        // have been deleted since the previous page), nor a valid name: it is only compared.
        let start = match after {
            Some(name) => Bound::Excluded(name),
            None => Bound::Unbounded,
        };
        let mut page = self
            .groups
            .range::<str, _>((start, Bound::Unbounded))
            .map(|(name, g)| GroupInfo {
                name: name.clone(),
                order: g.order,
                members: saturating_u32(g.members.len()),
            });
        let groups: Vec<GroupInfo> = page.by_ref().take(GROUPS_PAGE).collect();
        let more = page.next().is_some();
        (groups, more)
    }

    fn list_members(&self, group: &str) -> Result<View, Refusal> {
        check_group_name(group)?;
        self.view(group).ok_or_else(|| unknown_group(group))
    }

    fn join(
        &mut self,
        client: ClientId,
        group: &str,
        order: Order,
        password: Option<&str>,
    ) -> Result<(Reply, Vec<Push>), Refusal> {
        check_group_name(group)?;
        let (username, udp_addr) = match self.clients.get(&client) {
            Some(c) => (c.username.clone(), c.udp_addr),
            None => return Err(Refusal::new(ErrorCode::BadRequest, "unknown client")),
        };
        let existing = self.groups.get(group);
        if existing.is_some_and(|g| g.position(client).is_some()) {
            return Err(Refusal::new(
                ErrorCode::AlreadyMember,
                format!("{username} is already a member of {}", quoted(group)),
            ));
        }
        let rule = self.policy.rule_for(group);
        if let Some(allow) = &rule.allow {
            if !allow.contains(&username) {
                return Err(Refusal::new(
                    ErrorCode::AccessDenied,
                    format!("{username} may not join {}", quoted(group)),
                ));
            }
        }
        if let Some(expected) = &rule.password {
            match password {
                None => {
                    return Err(Refusal::new(
                        ErrorCode::AccessDenied,
                        format!("{} needs a password", quoted(group)),
                    ))
                }
                Some(given) if !same_secret(given, expected) => {
                    if let Some(c) = self.clients.get_mut(&client) {
                        c.wrong_passwords = c.wrong_passwords.saturating_add(1);
                    }
                    return Err(Refusal::new(
                        ErrorCode::AccessDenied,
                        format!("wrong password for {}", quoted(group)),
                    ));
                }
                Some(_) => {}
            }
        }
        let limit = rule
            .max_members
            .unwrap_or(self.limits.default_max_members)
            .min(MAX_MEMBERS);
        let existing = self.groups.get(group);
        match existing {
            Some(g) => {
                if g.order != order {
                    return Err(Refusal::new(
                        ErrorCode::OrderMismatch,
                        format!(
                            "{} is a {} group, not {}",
                            quoted(group),
                            order_name(g.order),
                            order_name(order)
                        ),
                    ));
                }
                if g.members.len() >= limit as usize {
                    return Err(Refusal::new(
                        ErrorCode::GroupFull,
                        format!("{} is full ({} members)", quoted(group), g.members.len()),
                    ));
                }
            }
            None => {
                if !rule.create {
                    return Err(Refusal::new(
                        ErrorCode::AccessDenied,
                        format!(
                            "{} does not exist and may not be created by joining",
                            quoted(group)
                        ),
                    ));
                }
                if limit == 0 {
                    return Err(Refusal::new(
                        ErrorCode::GroupFull,
                        format!("{} admits no members", quoted(group)),
                    ));
                }
                if self.groups.len() >= self.limits.max_groups {
                    return Err(Refusal::new(
                        ErrorCode::LimitReached,
                        format!(
                            "cannot create {}: the tracker holds its limit of {} groups (max_groups)",
                            quoted(group),
                            self.limits.max_groups
                        ),
                    ));
                }
                let created = self.clients.get(&client).map_or(0, |c| c.created);
                if created >= self.limits.max_groups_per_client {
                    return Err(Refusal::new(
                        ErrorCode::LimitReached,
                        format!(
                            "cannot create {}: {username} already created {created} groups, the limit per client (max_groups_per_client)",
                            quoted(group)
                        ),
                    ));
                }
                if let Some(c) = self.clients.get_mut(&client) {
                    c.created += 1;
                }
                let id = GroupId(self.next_group);
                self.next_group += 1;
                self.groups.insert(
                    group.to_owned(),
                    GroupEntry {
                        id,
                        creator: client,
                        order,
                        view: ViewId(0),
                        members: Vec::new(),
                        suspicions: BTreeMap::new(),
                    },
                );
            }
        }

        let member = MemberId(self.next_member);
        self.next_member += 1;
        let Some(g) = self.groups.get_mut(group) else {
            return Err(unknown_group(group));
        };
        let from_view = g.view;
        g.view = ViewId(g.view.0 + 1);
        let added = ViewMember {
            id: member,
            name: username,
            addr: udp_addr,
            joined: g.view,
        };
        g.members.push(Membership {
            client,
            member: added.clone(),
        });
        let view = Arc::new(g.view(group));
        let delta = Arc::new(ViewDelta {
            group: g.id,
            from_view,
            view: g.view,
            added: vec![added],
            removed: Vec::new(),
        });
        // The members before the joiner hold the previous view: they get the change only.
        let pushes: Vec<Push> = g
            .members
            .iter()
            .map(|m| Push {
                to: m.client,
                view: Arc::clone(&view),
                delta: (m.client != client).then(|| Arc::clone(&delta)),
            })
            .collect();
        let view = View::clone(&view);
        if let Some(c) = self.clients.get_mut(&client) {
            c.groups.insert(group.to_owned());
        }
        self.stats.views_pushed += pushes.len() as u64;
        Ok((Reply::Joined { member, view }, pushes))
    }

    fn leave(&mut self, client: ClientId, group: &str) -> Result<(Reply, Vec<Push>), Refusal> {
        check_group_name(group)?;
        let Some(g) = self.groups.get(group) else {
            return Err(unknown_group(group));
        };
        if g.position(client).is_none() {
            let who = self.username(client).unwrap_or("this client");
            return Err(Refusal::new(
                ErrorCode::NotAMember,
                format!("{who} is not a member of {}", quoted(group)),
            ));
        }
        if let Some(c) = self.clients.get_mut(&client) {
            c.groups.remove(group);
        }
        let mut pushes = Vec::new();
        self.take_out(group, client, true, &mut pushes);
        Ok((Reply::Left, pushes))
    }

    fn suspect(
        &mut self,
        now: Instant,
        reporter: ClientId,
        group: &str,
        member: MemberId,
    ) -> Result<(Reply, Vec<Push>), Refusal> {
        check_group_name(group)?;
        let window = self.limits.suspect_window;
        let reporter_name = self.username(reporter).unwrap_or("this client").to_owned();
        let Some(g) = self.groups.get_mut(group) else {
            return Err(unknown_group(group));
        };
        let Some(reporter_pos) = g.position(reporter) else {
            return Err(Refusal::new(
                ErrorCode::NotAMember,
                format!(
                    "{reporter_name} is not a member of {}: only members report silent members",
                    quoted(group)
                ),
            ));
        };
        if g.members[reporter_pos].member.id == member {
            return Err(Refusal::new(
                ErrorCode::BadRequest,
                format!(
                    "{reporter_name} reported itself (member {member}) silent in {}",
                    quoted(group)
                ),
            ));
        }
        let Some(suspect) = g.members.iter().find(|m| m.member.id == member) else {
            return Err(Refusal::new(
                ErrorCode::NotAMember,
                format!("member {member} is not in {}", quoted(group)),
            ));
        };
        let suspect_client = suspect.client;
        // Reports expire; a reporter counts once (its latest report).
        for reports in g.suspicions.values_mut() {
            reports.retain(|_, at| now.saturating_duration_since(*at) < window);
        }
        g.suspicions.retain(|_, reports| !reports.is_empty());
        let reports = g.suspicions.entry(member).or_default();
        reports.insert(reporter, now);
        let count = reports.len();
        let others = g.members.len() - 1;
        let needed = others.div_ceil(2).max(1);
        if count < needed {
            return Ok((Reply::Suspected { removed: false }, Vec::new()));
        }
        if let Some(c) = self.clients.get_mut(&suspect_client) {
            c.groups.remove(group);
        }
        let mut pushes = Vec::new();
        self.take_out(group, suspect_client, true, &mut pushes);
        self.stats.members_suspected += 1;
        Ok((Reply::Suspected { removed: true }, pushes))
    }

    /// Takes `client` out of `group`: a new view, pushed to the remaining members (and to the
    /// client when `tell_leaver`); the group is deleted when nobody is left.
    fn take_out(&mut self, group: &str, client: ClientId, tell_leaver: bool, out: &mut Vec<Push>) {
        let Some(g) = self.groups.get_mut(group) else {
            return;
        };
        let Some(pos) = g.position(client) else {
            return;
        };
        let gone = g.members.remove(pos);
        // Reports about the one who goes, and by it, are void.
        g.suspicions.remove(&gone.member.id);
        for reports in g.suspicions.values_mut() {
            reports.remove(&client);
        }
        let from_view = g.view;
        g.view = ViewId(g.view.0 + 1);
        let view = Arc::new(g.view(group));
        // Everyone told held the previous view (the leaver too).
        let delta = Arc::new(ViewDelta {
            group: g.id,
            from_view,
            view: g.view,
            added: Vec::new(),
            removed: vec![gone.member.id],
        });
        let push = |to| Push {
            to,
            view: Arc::clone(&view),
            delta: Some(Arc::clone(&delta)),
        };
        let before = out.len();
        out.extend(g.members.iter().map(|m| push(m.client)));
        if tell_leaver {
            out.push(push(client));
        }
        self.stats.views_pushed += (out.len() - before) as u64;
        if g.members.is_empty() {
            let creator = g.creator;
            self.groups.remove(group);
            if let Some(c) = self.clients.get_mut(&creator) {
                c.created = c.created.saturating_sub(1);
            }
        }
    }
}

fn unknown_group(group: &str) -> Refusal {
    Refusal::new(
        ErrorCode::UnknownGroup,
        format!("there is no group named {}", quoted(group)),
    )
}

fn saturating_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::policy::EXAMPLE;
    use super::*;
    use crate::protocol::wire::MetricsReport;

    fn hello(name: &str) -> Hello {
        Hello {
            version: CONTROL_VERSION,
            username: name.to_owned(),
            udp_addr: SocketAddr::from(([127, 0, 0, 1], 4000)),
        }
    }

    fn join(group: &str, order: Order) -> Request {
        Request::Join {
            group: group.to_owned(),
            order,
            password: None,
        }
    }

    fn join_with(group: &str, password: &str) -> Request {
        Request::Join {
            group: group.to_owned(),
            order: Order::Fifo,
            password: Some(password.to_owned()),
        }
    }

    fn leave(group: &str) -> Request {
        Request::Leave {
            group: group.to_owned(),
        }
    }

    fn code(reply: &Reply) -> Option<ErrorCode> {
        match reply {
            Reply::Error { code, .. } => Some(*code),
            _ => None,
        }
    }

    fn joined(reply: Reply) -> (MemberId, View) {
        match reply {
            Reply::Joined { member, view } => (member, view),
            other => panic!("expected Joined, got {other:?}"),
        }
    }

    #[test]
    fn register_checks_version_name_and_uniqueness() {
        let mut r = Registry::default();
        let a = r.register(&hello("alice")).expect("alice");
        let b = r.register(&hello("bob")).expect("bob");
        assert_ne!(a, b);
        assert_eq!(r.username(a), Some("alice"));
        assert_eq!(r.client_by_name("bob"), Some(b));

        let taken = r.register(&hello("alice")).expect_err("taken");
        assert_eq!(taken.code, ErrorCode::UsernameTaken);
        assert!(taken.message.contains("alice"));

        let bad = r.register(&hello("al ice")).expect_err("invalid");
        assert_eq!(bad.code, ErrorCode::InvalidName);
        let long = r.register(&hello(&"x".repeat(5000))).expect_err("too long");
        assert_eq!(long.code, ErrorCode::InvalidName);
        assert!(long.message.len() < 200, "the message is cut short");

        let mut old = hello("carol");
        old.version = CONTROL_VERSION + 1;
        assert_eq!(
            r.register(&old).expect_err("version").code,
            ErrorCode::VersionMismatch
        );
        assert_eq!(r.stats().errors, 4);
        assert_eq!(r.stats().clients, 2);

        // A name is free again once its client is gone.
        assert!(r.remove(a, Departure::Disconnected).is_empty());
        let a2 = r.register(&hello("alice")).expect("alice again");
        assert!(a2 > b, "client ids are not reused");
    }

    #[test]
    fn join_creates_the_group_and_pushes_to_every_member() {
        let mut r = Registry::default();
        let a = r.register(&hello("alice")).expect("alice");
        let b = r.register(&hello("bob")).expect("bob");

        let (reply, pushes) = r.handle(a, join("chat", Order::Total));
        let (ma, v1) = joined(reply);
        assert_eq!(v1.id, ViewId(1));
        assert_eq!(v1.order, Order::Total);
        assert_eq!(v1.members.len(), 1);
        assert_eq!(v1.members[0].id, ma);
        assert_eq!(v1.members[0].joined, ViewId(1));
        assert_eq!(
            pushes,
            vec![Push {
                to: a,
                view: Arc::new(v1.clone()),
                delta: None,
            }]
        );

        let (reply, pushes) = r.handle(b, join("chat", Order::Total));
        let (mb, v2) = joined(reply);
        assert_eq!(v2.id, ViewId(2));
        assert_eq!(v2.group, v1.group);
        assert!(mb > ma);
        let names: Vec<_> = v2.members.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["alice", "bob"]);
        assert_eq!(v2.member(mb).map(|m| m.joined), Some(ViewId(2)));
        assert_eq!(v2.member(ma).map(|m| m.joined), Some(ViewId(1)));
        let to: Vec<_> = pushes.iter().map(|p| p.to).collect();
        assert_eq!(to, [a, b]);
        assert!(pushes.iter().all(|p| *p.view == v2));

        assert_eq!(
            r.handle(
                a,
                Request::ListMembers {
                    group: "chat".into()
                }
            )
            .0,
            Reply::Members(v2)
        );
        assert_eq!(r.stats().views_pushed, 3);
        assert_eq!(r.stats().memberships, 2);
    }

    #[test]
    fn leave_pushes_to_the_rest_and_to_the_leaver() {
        let mut r = Registry::default();
        let a = r.register(&hello("alice")).expect("alice");
        let b = r.register(&hello("bob")).expect("bob");
        let c = r.register(&hello("carol")).expect("carol");
        for x in [a, b, c] {
            joined(r.handle(x, join("g", Order::Fifo)).0);
        }
        let (reply, pushes) = r.handle(b, leave("g"));
        assert_eq!(reply, Reply::Left);
        let to: Vec<_> = pushes.iter().map(|p| p.to).collect();
        assert_eq!(
            to,
            [a, c, b],
            "remaining members in view order, then the leaver"
        );
        let v = &pushes[0].view;
        assert_eq!(v.id, ViewId(4));
        assert!(pushes.iter().all(|p| &p.view == v));
        let names: Vec<_> = v.members.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["alice", "carol"]);
        assert!(r.groups_of(b).is_empty());
        assert_eq!(r.groups_of(a), ["g"]);
    }

    #[test]
    fn empty_groups_are_deleted_and_can_be_created_again() {
        let mut r = Registry::default();
        let a = r.register(&hello("alice")).expect("alice");
        let (m1, v1) = joined(r.handle(a, join("g", Order::Fifo)).0);
        let (reply, pushes) = r.handle(a, leave("g"));
        assert_eq!(reply, Reply::Left);
        assert_eq!(pushes.len(), 1);
        assert_eq!(pushes[0].to, a);
        assert!(pushes[0].view.members.is_empty());
        assert_eq!(r.view("g"), None);
        assert_eq!(
            r.handle(a, Request::ListGroups { after: None }).0,
            Reply::Groups {
                groups: vec![],
                more: false
            }
        );

        // Recreated with the other order: a new group id, view 1 again, a new member id.
        let (m2, v2) = joined(r.handle(a, join("g", Order::Total)).0);
        assert_ne!(v2.group, v1.group);
        assert_eq!(v2.id, ViewId(1));
        assert_eq!(v2.order, Order::Total);
        assert!(m2 > m1, "a new membership gets a new member id");
    }

    #[test]
    fn rejoining_gets_a_new_member_id() {
        let mut r = Registry::default();
        let a = r.register(&hello("alice")).expect("alice");
        let b = r.register(&hello("bob")).expect("bob");
        joined(r.handle(a, join("g", Order::Fifo)).0);
        let (m1, _) = joined(r.handle(b, join("g", Order::Fifo)).0);
        r.handle(b, leave("g"));
        let (m2, v) = joined(r.handle(b, join("g", Order::Fifo)).0);
        assert!(m2 > m1);
        assert_eq!(v.id, ViewId(4));
        assert_eq!(v.member(m2).map(|m| m.joined), Some(ViewId(4)));
        assert!(!v.contains(m1));
    }

    #[test]
    fn request_errors() {
        let p = AccessPolicy::from_toml_str(EXAMPLE).expect("policy");
        let mut r = Registry::new(p);
        let a = r.register(&hello("alice")).expect("alice");
        let b = r.register(&hello("bob")).expect("bob");
        let c = r.register(&hello("carol")).expect("carol");
        let list = |g: &str| Request::ListMembers { group: g.into() };

        let check = |r: &mut Registry, who, req, want: ErrorCode, needle: &str| {
            let (reply, pushes) = r.handle(who, req);
            assert_eq!(code(&reply), Some(want), "{reply:?}");
            assert!(pushes.is_empty());
            let Reply::Error { message, .. } = reply else {
                unreachable!()
            };
            assert!(message.contains(needle), "{message:?} should name {needle}");
        };

        check(&mut r, a, list("nope"), ErrorCode::UnknownGroup, "nope");
        check(&mut r, a, leave("nope"), ErrorCode::UnknownGroup, "nope");
        check(&mut r, a, list("a b"), ErrorCode::InvalidName, "a b");
        check(
            &mut r,
            a,
            join("", Order::Fifo),
            ErrorCode::InvalidName,
            "group name",
        );
        check(&mut r, a, leave("x\ty"), ErrorCode::InvalidName, "x\\ty");

        joined(r.handle(a, join("lobby", Order::Fifo)).0);
        check(
            &mut r,
            a,
            join("lobby", Order::Fifo),
            ErrorCode::AlreadyMember,
            "lobby",
        );
        check(&mut r, b, leave("lobby"), ErrorCode::NotAMember, "bob");
        check(
            &mut r,
            b,
            join("lobby", Order::Total),
            ErrorCode::OrderMismatch,
            "lobby",
        );

        // Password: missing, wrong, right.
        check(
            &mut r,
            a,
            join("ops", Order::Fifo),
            ErrorCode::AccessDenied,
            "ops",
        );
        check(
            &mut r,
            a,
            join_with("ops", "guess"),
            ErrorCode::AccessDenied,
            "ops",
        );
        check(
            &mut r,
            a,
            join_with("ops", "s3cret!"),
            ErrorCode::AccessDenied,
            "ops",
        );
        check(
            &mut r,
            a,
            join_with("ops", "s3cre"),
            ErrorCode::AccessDenied,
            "ops",
        );
        joined(r.handle(a, join_with("ops", "s3cret")).0);

        // Allow-list and creation forbidden: carol is refused, alice may not create it.
        check(
            &mut r,
            c,
            join("team-a", Order::Fifo),
            ErrorCode::AccessDenied,
            "carol",
        );
        check(
            &mut r,
            a,
            join("team-a", Order::Fifo),
            ErrorCode::AccessDenied,
            "team-a",
        );

        assert_eq!(r.stats().errors, 14);
        assert_eq!(r.stats().requests, 16);
    }

    #[test]
    fn group_full_at_the_limit() {
        let p = AccessPolicy::from_toml_str(
            "[[group]]\nname = \"duo\"\nmax_members = 2\n[[group]]\nname = \"none\"\nmax_members = 0",
        )
        .expect("policy");
        let mut r = Registry::new(p);
        let ids: Vec<_> = ["a", "b", "c"]
            .iter()
            .map(|n| r.register(&hello(n)).expect("client"))
            .collect();
        joined(r.handle(ids[0], join("duo", Order::Fifo)).0);
        joined(r.handle(ids[1], join("duo", Order::Fifo)).0);
        let (reply, _) = r.handle(ids[2], join("duo", Order::Fifo));
        assert_eq!(code(&reply), Some(ErrorCode::GroupFull));
        // A place frees up when someone leaves.
        r.handle(ids[0], leave("duo"));
        joined(r.handle(ids[2], join("duo", Order::Fifo)).0);
        let (reply, _) = r.handle(ids[0], join("none", Order::Fifo));
        assert_eq!(code(&reply), Some(ErrorCode::GroupFull));
        assert_eq!(r.view("none"), None);
    }

    #[test]
    fn allowed_users_may_join_an_existing_group_they_cannot_create() {
        // Created while the policy allowed it, then the policy forbids creation: existing
        // groups stay joinable by the allowed users.
        let p = AccessPolicy::from_toml_str(
            "[[group]]\npattern = \"team-*\"\nallow = [\"alice\", \"bob\"]",
        )
        .expect("policy");
        let mut r = Registry::new(p);
        let a = r.register(&hello("alice")).expect("alice");
        let b = r.register(&hello("bob")).expect("bob");
        joined(r.handle(a, join("team-x", Order::Fifo)).0);
        r.policy = AccessPolicy::from_toml_str(EXAMPLE).expect("policy");
        joined(r.handle(b, join("team-x", Order::Fifo)).0);
    }

    #[test]
    fn list_groups_is_sorted_by_name() {
        let mut r = Registry::default();
        let a = r.register(&hello("alice")).expect("alice");
        let b = r.register(&hello("bob")).expect("bob");
        for g in ["zeta", "alpha", "mid"] {
            joined(r.handle(a, join(g, Order::Fifo)).0);
        }
        joined(r.handle(b, join("mid", Order::Fifo)).0);
        let Reply::Groups {
            groups,
            more: false,
        } = r.handle(b, Request::ListGroups { after: None }).0
        else {
            panic!("expected Groups");
        };
        let names: Vec<_> = groups.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["alpha", "mid", "zeta"]);
        assert_eq!(groups[1].members, 2);
        assert_eq!(groups[0].order, Order::Fifo);
    }

    #[test]
    fn quit_and_remove_leave_every_group() {
        let mut r = Registry::default();
        let a = r.register(&hello("alice")).expect("alice");
        let b = r.register(&hello("bob")).expect("bob");
        let c = r.register(&hello("carol")).expect("carol");
        for g in ["x", "y", "solo"] {
            joined(r.handle(a, join(g, Order::Fifo)).0);
        }
        joined(r.handle(b, join("x", Order::Fifo)).0);
        joined(r.handle(c, join("y", Order::Fifo)).0);
        joined(r.handle(b, join("y", Order::Fifo)).0);

        let (reply, pushes) = r.handle(
            a,
            Request::Quit {
                metrics: MetricsReport::default(),
            },
        );
        assert_eq!(reply, Reply::Bye);
        // Groups in name order, remaining members in view order; "solo" is deleted silently.
        let got: Vec<_> = pushes
            .iter()
            .map(|p| (p.to, p.view.name.as_str(), p.view.id))
            .collect();
        assert_eq!(
            got,
            [
                (b, "x", ViewId(3)),
                (c, "y", ViewId(4)),
                (b, "y", ViewId(4))
            ]
        );
        assert_eq!(r.view("solo"), None);
        assert_eq!(r.username(a), None);
        assert_eq!(r.stats().clients_dropped, 0);

        // A request from a client that is gone is refused, not a panic.
        let (reply, _) = r.handle(a, Request::ListGroups { after: None });
        assert_eq!(code(&reply), Some(ErrorCode::BadRequest));

        let pushes = r.remove(b, Departure::Dropped);
        assert_eq!(pushes.len(), 1);
        assert_eq!(pushes[0].to, c);
        assert_eq!(pushes[0].view.id, ViewId(5));
        assert_eq!(r.stats().clients_dropped, 1);
        assert!(r.remove(b, Departure::Dropped).is_empty(), "idempotent");
        assert_eq!(r.stats().clients_dropped, 1);
    }

    #[test]
    fn stats_count_everything() {
        let mut r = Registry::default();
        let a = r.register(&hello("alice")).expect("alice");
        let b = r.register(&hello("bob")).expect("bob");
        joined(r.handle(a, join("g", Order::Fifo)).0);
        joined(r.handle(b, join("g", Order::Fifo)).0);
        joined(r.handle(b, join("h", Order::Fifo)).0);
        r.handle(a, leave("nope"));
        r.note_bad_connection();
        let Reply::Stats(s) = r.handle(a, Request::Stats).0 else {
            panic!("expected Stats");
        };
        assert_eq!(
            s,
            TrackerStats {
                clients: 2,
                groups: 2,
                memberships: 3,
                views_pushed: 4,
                requests: 5,
                errors: 1,
                clients_dropped: 0,
                bad_connections: 1,
                refused_connections: 0,
                members_suspected: 0,
            }
        );
    }

    fn limited(limits: RegistryLimits) -> Registry {
        Registry::default().with_limits(limits)
    }

    fn refusal(reply: Reply) -> (ErrorCode, String) {
        match reply {
            Reply::Error { code, message } => (code, message),
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn groups_are_limited_per_creator_and_in_all() {
        let mut r = limited(RegistryLimits {
            max_groups: 4,
            max_groups_per_client: 2,
            ..RegistryLimits::default()
        });
        let a = r.register(&hello("alice")).expect("alice");
        let b = r.register(&hello("bob")).expect("bob");
        let c = r.register(&hello("carol")).expect("carol");
        joined(r.handle(a, join("a1", Order::Fifo)).0);
        joined(r.handle(a, join("a2", Order::Fifo)).0);
        let (code, message) = refusal(r.handle(a, join("a3", Order::Fifo)).0);
        assert_eq!(code, ErrorCode::LimitReached);
        assert!(message.contains("max_groups_per_client"), "{message}");
        assert!(message.contains("a3"), "{message}");
        assert_eq!(r.view("a3"), None, "nothing was created");
        // Joining an existing group creates nothing: allowed at the limit.
        joined(r.handle(b, join("b1", Order::Fifo)).0);
        joined(r.handle(a, join("b1", Order::Fifo)).0);
        joined(r.handle(b, join("b2", Order::Fifo)).0);
        let (code, message) = refusal(r.handle(c, join("c1", Order::Fifo)).0);
        assert_eq!(code, ErrorCode::LimitReached);
        assert!(
            message.contains("max_groups") && message.contains('4'),
            "{message}"
        );
        assert_eq!(r.stats().groups, 4);
        // A deleted group frees its place, in all and for its creator.
        r.handle(a, leave("a1"));
        joined(r.handle(c, join("c1", Order::Fifo)).0);
        r.handle(c, leave("c1"));
        joined(r.handle(a, join("a3", Order::Fifo)).0);
    }

    #[test]
    fn the_default_member_limit_applies_when_the_rule_sets_none() {
        let p = AccessPolicy::from_toml_str("[[group]]\nname = \"big\"\nmax_members = 3")
            .expect("policy");
        let mut r = Registry::new(p).with_limits(RegistryLimits {
            default_max_members: 2,
            ..RegistryLimits::default()
        });
        assert_eq!(RegistryLimits::default().default_max_members, 256);
        let ids: Vec<_> = ["a", "b", "c", "d"]
            .iter()
            .map(|n| r.register(&hello(n)).expect("client"))
            .collect();
        joined(r.handle(ids[0], join("small", Order::Fifo)).0);
        joined(r.handle(ids[1], join("small", Order::Fifo)).0);
        let (code, _) = refusal(r.handle(ids[2], join("small", Order::Fifo)).0);
        assert_eq!(code, ErrorCode::GroupFull);
        for &id in &ids[..3] {
            joined(r.handle(id, join("big", Order::Fifo)).0);
        }
        let (code, _) = refusal(r.handle(ids[3], join("big", Order::Fifo)).0);
        assert_eq!(code, ErrorCode::GroupFull);
    }

    #[test]
    fn no_rule_raises_the_member_limit_past_the_hard_cap() {
        let p = AccessPolicy::from_toml_str("[default]\nmax_members = 100000").expect("policy");
        let mut r = Registry::new(p);
        let first = r.register(&hello("u0")).expect("client");
        let (_, view) = joined(r.handle(first, join("g", Order::Fifo)).0);
        let group = view.group;
        // Fill the group to the cap directly rather than through thousands of joins.
        let g = r.groups.get_mut("g").expect("group");
        for i in 1..MAX_MEMBERS {
            g.members.push(Membership {
                client: ClientId(1_000_000 + u64::from(i)),
                member: ViewMember {
                    id: MemberId(1_000_000 + u64::from(i)),
                    name: format!("user-with-a-long-name-{i:010}"),
                    addr: SocketAddr::from(([127, 0, 0, 1], 4000)),
                    joined: ViewId(1),
                },
            });
        }
        let late = r.register(&hello("late")).expect("client");
        let (code, _) = refusal(r.handle(late, join("g", Order::Fifo)).0);
        assert_eq!(code, ErrorCode::GroupFull);
        // The full view of a group at the cap still fits in one frame.
        let Reply::Members(v) = r.handle(late, Request::ListMembers { group: "g".into() }).0 else {
            panic!("members");
        };
        assert_eq!(v.group, group);
        assert_eq!(v.members.len(), MAX_MEMBERS as usize);
        let frame = crate::protocol::wire::ServerFrame::Reply {
            id: 1,
            reply: Reply::Members(v),
        };
        assert!(crate::protocol::wire::encode_control(&frame).is_ok());
    }

    #[test]
    fn groups_are_listed_in_pages() {
        let mut r = limited(RegistryLimits {
            max_groups_per_client: 1_000,
            ..RegistryLimits::default()
        });
        let a = r.register(&hello("alice")).expect("alice");
        let total = 2 * GROUPS_PAGE + 10;
        for i in 0..total {
            joined(r.handle(a, join(&format!("g{i:04}"), Order::Fifo)).0);
        }
        let mut names = Vec::new();
        let mut after = None;
        let mut pages = 0;
        loop {
            let Reply::Groups { groups, more } = r.handle(a, Request::ListGroups { after }).0
            else {
                panic!("groups");
            };
            assert!(groups.len() <= GROUPS_PAGE);
            pages += 1;
            names.extend(groups.into_iter().map(|g| g.name));
            if !more {
                break;
            }
            after = names.last().cloned();
        }
        assert_eq!(pages, 3);
        let expected: Vec<String> = (0..total).map(|i| format!("g{i:04}")).collect();
        assert_eq!(names, expected);
        // A cursor that names no group (deleted meanwhile) still works.
        let Reply::Groups { groups, more } = r
            .handle(
                a,
                Request::ListGroups {
                    after: Some("g0519x".into()),
                },
            )
            .0
        else {
            panic!("groups");
        };
        assert!(!more);
        assert_eq!(groups.first().map(|g| g.name.as_str()), Some("g0520"));
        assert_eq!(groups.len(), total - 520);
    }

    #[test]
    fn members_of_the_previous_view_get_the_change_only() {
        let mut r = Registry::default();
        let ids: Vec<_> = ["a", "b", "c"]
            .iter()
            .map(|n| r.register(&hello(n)).expect("client"))
            .collect();
        let mut views = Vec::new();
        for &id in &ids {
            let (reply, pushes) = r.handle(id, join("g", Order::Total));
            let (_, view) = joined(reply);
            for p in &pushes {
                assert_eq!(*p.view, view);
                match &p.delta {
                    None => assert_eq!(p.to, id, "only the joiner gets the full view"),
                    Some(d) => {
                        let previous: &View = views.last().expect("a previous view");
                        assert_eq!(d.apply(previous).as_ref(), Some(&view));
                        assert_eq!(d.added.len(), 1);
                        assert!(d.removed.is_empty());
                    }
                }
            }
            views.push(view);
        }
        let (_, pushes) = r.handle(ids[1], leave("g"));
        let last = views.last().expect("view");
        assert_eq!(pushes.len(), 3);
        for p in &pushes {
            let d = p.delta.as_ref().expect("everyone held the previous view");
            assert_eq!(d.apply(last).as_ref(), Some(&*p.view));
            assert_eq!(d.removed.len(), 1);
            // A change applies only to the view it starts from.
            assert_eq!(d.apply(&views[0]), None);
        }
    }

    #[test]
    fn wrong_passwords_are_counted_per_client() {
        let p = AccessPolicy::from_toml_str(EXAMPLE).expect("policy");
        let mut r = Registry::new(p);
        let a = r.register(&hello("alice")).expect("alice");
        let b = r.register(&hello("bob")).expect("bob");
        r.handle(a, join_with("ops", "guess"));
        r.handle(a, join_with("ops", "guess2"));
        // A missing password and a refusal by the allow-list are not guesses.
        r.handle(b, join("ops", Order::Fifo));
        r.handle(b, join("team-a", Order::Fifo));
        assert_eq!(r.wrong_passwords(a), 2);
        assert_eq!(r.wrong_passwords(b), 0);
        joined(r.handle(a, join_with("ops", "s3cret")).0);
        assert_eq!(
            r.wrong_passwords(a),
            2,
            "a right password does not reset the count"
        );
    }
}
