//! Joins and leaves: who is admitted to a group, and the view change that each join or
//! departure pushes to the members.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::super::names::{check_group_name, quoted};
use super::super::policy::{admit, Denial, GroupNow, JoinAttempt};
use super::super::{ClientId, Push, Refusal};
use super::{unknown_group, GroupEntry, Membership, Registry};
use crate::protocol::types::{GroupId, MemberId, ViewId};
use crate::protocol::wire::{ErrorCode, Order, Reply, View, ViewDelta, ViewMember};

impl Registry {
    /// A join: the name is checked, then [`admit`] decides on the state as it is, and only
    /// an admitted join changes anything (creates the group if needed, adds the member, pushes
    /// the new view). The one trace a refused join leaves is the count of wrong passwords,
    /// which the server uses to slow down and cut off guessing.
    pub(super) fn join(
        &mut self,
        client: ClientId,
        group: &str,
        order: Order,
        password: Option<&str>,
    ) -> Result<(Reply, Vec<Push>), Refusal> {
        check_group_name(group)?;
        let Some(entry) = self.clients.get(&client) else {
            return Err(Refusal::new(ErrorCode::BadRequest, "unknown client"));
        };
        let (username, udp_addr) = (entry.username.clone(), entry.udp_addr);
        let existing = self.groups.get(group);
        let attempt = JoinAttempt {
            username: &username,
            password,
            order,
            group: existing.map(|g| GroupNow {
                order: g.order,
                members: g.members.len(),
                is_member: g.position(client).is_some(),
            }),
            groups: self.groups.len(),
            created: entry.created,
        };
        if let Err(denial) = admit(self.policy.rule_for(group), &self.limits, &attempt) {
            if denial == Denial::WrongPassword {
                if let Some(c) = self.clients.get_mut(&client) {
                    c.wrong_passwords = c.wrong_passwords.saturating_add(1);
                }
            }
            return Err(denial.refusal(group, &username));
        }

        // Admitted: nothing below refuses.
        if !self.groups.contains_key(group) {
            self.create_group(client, group, order);
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

    /// Creates `group`, empty (view 0: its first member makes view 1), counted against its
    /// creator's limit while it exists.
    fn create_group(&mut self, creator: ClientId, group: &str, order: Order) {
        if let Some(c) = self.clients.get_mut(&creator) {
            c.created += 1;
        }
        let id = GroupId(self.next_group);
        self.next_group += 1;
        self.groups.insert(
            group.to_owned(),
            GroupEntry {
                id,
                creator,
                order,
                view: ViewId(0),
                members: Vec::new(),
                suspicions: BTreeMap::new(),
            },
        );
    }

    pub(super) fn leave(
        &mut self,
        client: ClientId,
        group: &str,
    ) -> Result<(Reply, Vec<Push>), Refusal> {
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
    /// Takes `client` out of `group`: a new view, pushed to the remaining members (and to the
    /// client when `tell_leaver`); the group is deleted when nobody is left.
    pub(super) fn take_out(
        &mut self,
        group: &str,
        client: ClientId,
        tell_leaver: bool,
        out: &mut Vec<Push>,
    ) {
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

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use crate::protocol::tracker::policy::EXAMPLE;
    use crate::protocol::tracker::{AccessPolicy, RegistryLimits, MAX_MEMBERS};
    use crate::protocol::wire::Request;
    use std::net::SocketAddr;

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

    #[test]
    fn a_refused_join_changes_nothing_but_the_count_of_wrong_passwords() {
        let policy = format!(
            "{EXAMPLE}\n[[group]]\nname = \"duo\"\nmax_members = 1\n[[group]]\nname = \"none\"\nmax_members = 0"
        );
        let mut r = Registry::new(AccessPolicy::from_toml_str(&policy).expect("policy"))
            .with_limits(RegistryLimits {
                max_groups: 4,
                max_groups_per_client: 2,
                ..RegistryLimits::default()
            });
        let a = r.register(&hello("alice")).expect("alice");
        let b = r.register(&hello("bob")).expect("bob");
        let c = r.register(&hello("carol")).expect("carol");
        joined(r.handle(a, join("lobby", Order::Fifo)).0);
        joined(r.handle(a, join_with("ops", "s3cret")).0);
        joined(r.handle(b, join("duo", Order::Fifo)).0);
        joined(r.handle(b, join("full", Order::Fifo)).0);
        assert_eq!(r.stats().groups, 4);

        let cases = [
            (c, join("a b", Order::Fifo), ErrorCode::InvalidName),
            (a, join("lobby", Order::Fifo), ErrorCode::AlreadyMember),
            (c, join("team-a", Order::Fifo), ErrorCode::AccessDenied),
            (c, join("ops", Order::Fifo), ErrorCode::AccessDenied),
            (c, join_with("ops", "guess"), ErrorCode::AccessDenied),
            (c, join("lobby", Order::Total), ErrorCode::OrderMismatch),
            (c, join("duo", Order::Fifo), ErrorCode::GroupFull),
            (c, join("none", Order::Fifo), ErrorCode::GroupFull),
            (c, join("new", Order::Fifo), ErrorCode::LimitReached),
            (a, join("team-a", Order::Fifo), ErrorCode::AccessDenied),
        ];
        for (who, request, want) in cases {
            let wrong_password = matches!(
                &request,
                Request::Join { password: Some(p), .. } if p.expose() == "guess"
            );
            let mut expected = r.clone();
            expected.stats.requests += 1;
            expected.stats.errors += 1;
            if wrong_password {
                if let Some(entry) = expected.clients.get_mut(&who) {
                    entry.wrong_passwords += 1;
                }
            }
            let (reply, pushes) = r.handle(who, request);
            assert_eq!(code(&reply), Some(want), "{reply:?}");
            assert!(pushes.is_empty());
            assert_eq!(r, expected, "{reply:?} changed the registry");
        }
        assert_eq!(r.wrong_passwords(c), 1);
        // With one group fewer, alice still may create no group (she created two), and carol
        // now may.
        r.handle(b, leave("full"));
        let mut expected = r.clone();
        expected.stats.requests += 1;
        expected.stats.errors += 1;
        let (code, message) = refusal(r.handle(a, join("mine", Order::Fifo)).0);
        assert_eq!(code, ErrorCode::LimitReached);
        assert!(message.contains("max_groups_per_client"), "{message}");
        assert_eq!(r, expected);
        joined(r.handle(c, join("new", Order::Fifo)).0);
    }
}
