//! The [`Registry`]: clients, groups and their views, and the requests that read or change
//! them. Joins and leaves (with the view changes they push) are in `membership.rs`, reports of
//! silent members in `suspicion.rs`; who may join is decided by the policy (`policy.rs`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::ops::Bound;
use std::time::Instant;

use super::names::{check_group_name, quoted, validate_name};
use super::{AccessPolicy, ClientId, Departure, Push, Refusal, RegistryLimits};
use crate::protocol::types::{GroupId, MemberId, ViewId};
use crate::protocol::wire::{
    ErrorCode, GroupInfo, Hello, Order, Password, Reply, Request, TrackerStats, View, ViewMember,
    CONTROL_VERSION, GROUPS_PAGE,
};

mod membership;
mod suspicion;

#[derive(Debug, Clone)]
#[cfg_attr(test, derive(PartialEq, Eq))]
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
#[cfg_attr(test, derive(PartialEq, Eq))]
struct Membership {
    client: ClientId,
    member: ViewMember,
}

#[derive(Debug, Clone)]
#[cfg_attr(test, derive(PartialEq, Eq))]
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
#[cfg_attr(test, derive(PartialEq, Eq))]
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
                } => self.join(
                    client,
                    &group,
                    order,
                    password.as_ref().map(Password::expose),
                ),
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

/// What the tests of the registry and of its parts build requests and read replies with.
#[cfg(test)]
mod fixtures {
    use super::*;

    pub(super) fn hello(name: &str) -> Hello {
        Hello {
            version: CONTROL_VERSION,
            username: name.to_owned(),
            udp_addr: SocketAddr::from(([127, 0, 0, 1], 4000)),
        }
    }

    pub(super) fn join(group: &str, order: Order) -> Request {
        Request::Join {
            group: group.to_owned(),
            order,
            password: None,
        }
    }

    pub(super) fn join_with(group: &str, password: &str) -> Request {
        Request::Join {
            group: group.to_owned(),
            order: Order::Fifo,
            password: Some(Password::new(password)),
        }
    }

    pub(super) fn leave(group: &str) -> Request {
        Request::Leave {
            group: group.to_owned(),
        }
    }

    pub(super) fn code(reply: &Reply) -> Option<ErrorCode> {
        match reply {
            Reply::Error { code, .. } => Some(*code),
            _ => None,
        }
    }

    pub(super) fn joined(reply: Reply) -> (MemberId, View) {
        match reply {
            Reply::Joined { member, view } => (member, view),
            other => panic!("expected Joined, got {other:?}"),
        }
    }

    pub(super) fn limited(limits: RegistryLimits) -> Registry {
        Registry::default().with_limits(limits)
    }

    pub(super) fn refusal(reply: Reply) -> (ErrorCode, String) {
        match reply {
            Reply::Error { code, message } => (code, message),
            other => panic!("expected an error, got {other:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;
    use crate::protocol::tracker::policy::EXAMPLE;
    use crate::protocol::wire::MetricsReport;

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
}
