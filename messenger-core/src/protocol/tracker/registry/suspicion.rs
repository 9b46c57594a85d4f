//! Reports of silent members ([`Request::Suspect`](crate::protocol::wire::Request::Suspect)):
//! the rule is documented on [`Registry::handle_at`]. Its tests are in
//! `messenger-core/tests/registry_suspect.rs`: they need `Instant`s, which `protocol/` cannot
//! make (it never reads the clock).

use std::time::Instant;

use super::super::names::{check_group_name, quoted};
use super::super::{ClientId, Push, Refusal};
use super::{unknown_group, Registry};
use crate::protocol::types::MemberId;
use crate::protocol::wire::{ErrorCode, Reply};

impl Registry {
    pub(super) fn suspect(
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
}
