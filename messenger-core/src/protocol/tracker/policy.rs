//! The access policy: who may join which group, and whether joining may create it; its TOML
//! form (see the documentation of [`protocol::tracker`](super)).

use std::collections::BTreeSet;
use std::fmt;

use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::names::{glob_match, quoted, validate_name, NameError};
use super::{Refusal, RegistryLimits, MAX_MEMBERS};
use crate::protocol::wire::{ErrorCode, Order};

fn yes() -> bool {
    true
}

/// What a rule of the [`AccessPolicy`] demands of a joiner.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// A join must carry exactly this password.
    #[serde(default)]
    pub password: Option<String>,
    /// Only these usernames may join.
    #[serde(default)]
    pub allow: Option<Vec<String>>,
    /// At most this many members at a time.
    #[serde(default)]
    pub max_members: Option<u32>,
    /// Whether joining an absent group creates it (default true).
    #[serde(default = "yes")]
    pub create: bool,
}

impl Rule {
    /// The open rule: no password, no allow-list, no limit, joining creates the group.
    pub fn open() -> Self {
        Rule {
            password: None,
            allow: None,
            max_members: None,
            create: true,
        }
    }
}

impl Default for Rule {
    fn default() -> Self {
        Rule::open()
    }
}

// Passwords stay out of logs.
impl fmt::Debug for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rule")
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("allow", &self.allow)
            .field("max_members", &self.max_members)
            .field("create", &self.create)
            .finish()
    }
}

/// Which groups a [`GroupRule`] is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// Exactly this group name.
    Name(String),
    /// Every group name the glob pattern matches (see [`glob_match`]).
    Pattern(String),
}

/// A rule for one group name or for a pattern of names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRule {
    pub selector: Selector,
    pub rule: Rule,
}

/// Why a policy could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The TOML parser's message and where it points, without the excerpt of the file it
    /// would quote (that line may hold a password; so may the parser's `Debug`, which keeps the
    /// whole document).
    #[error("the policy is not valid TOML (line {line}, column {column}): {message}")]
    Toml {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("group rule {index} has neither `name` nor `pattern`")]
    MissingSelector { index: usize },
    #[error("group rule {index} has both `name` and `pattern`")]
    BothSelectors { index: usize },
    #[error("group rule {index}: {name:?} is not a valid group name: {reason}")]
    InvalidName {
        index: usize,
        name: String,
        reason: NameError,
    },
    #[error("group rule {index} has an empty pattern")]
    EmptyPattern { index: usize },
    #[error("group rule {index} repeats the rule for group {name:?}")]
    DuplicateName { index: usize, name: String },
}

/// Who may join which group, and whether joining may create it. The default policy is open.
///
/// Loaded from TOML with [`AccessPolicy::from_toml_str`] (see the module documentation for the
/// format); it also implements `Deserialize`, with the same validation, for embedding in a
/// larger configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawPolicy")]
pub struct AccessPolicy {
    default: Rule,
    rules: Vec<GroupRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default)]
    default: Rule,
    #[serde(default)]
    group: Vec<RawGroupRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroupRule {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    pattern: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    allow: Option<Vec<String>>,
    #[serde(default)]
    max_members: Option<u32>,
    #[serde(default = "yes")]
    create: bool,
}

impl TryFrom<RawPolicy> for AccessPolicy {
    type Error = PolicyError;

    fn try_from(raw: RawPolicy) -> Result<Self, PolicyError> {
        let mut names = BTreeSet::new();
        let mut rules = Vec::with_capacity(raw.group.len());
        for (i, g) in raw.group.into_iter().enumerate() {
            let index = i + 1;
            let selector = match (g.name, g.pattern) {
                (None, None) => return Err(PolicyError::MissingSelector { index }),
                (Some(_), Some(_)) => return Err(PolicyError::BothSelectors { index }),
                (Some(name), None) => {
                    if let Err(reason) = validate_name(&name) {
                        return Err(PolicyError::InvalidName {
                            index,
                            name,
                            reason,
                        });
                    }
                    if !names.insert(name.clone()) {
                        return Err(PolicyError::DuplicateName { index, name });
                    }
                    Selector::Name(name)
                }
                (None, Some(pattern)) => {
                    if pattern.is_empty() {
                        return Err(PolicyError::EmptyPattern { index });
                    }
                    Selector::Pattern(pattern)
                }
            };
            rules.push(GroupRule {
                selector,
                rule: Rule {
                    password: g.password,
                    allow: g.allow,
                    max_members: g.max_members,
                    create: g.create,
                },
            });
        }
        Ok(AccessPolicy {
            default: raw.default,
            rules,
        })
    }
}

impl AccessPolicy {
    /// The open policy: anyone may create and join any group.
    pub fn open() -> Self {
        AccessPolicy::default()
    }

    /// A policy from its default rule and its group rules (first matching rule wins, exact
    /// names before patterns).
    pub fn new(default: Rule, rules: Vec<GroupRule>) -> Self {
        AccessPolicy { default, rules }
    }

    /// Parses and validates a policy written in TOML (format in the module documentation).
    pub fn from_toml_str(text: &str) -> Result<AccessPolicy, PolicyError> {
        let raw: RawPolicy = toml::from_str(text).map_err(|e| {
            let at = e.span().map_or(0, |s| s.start).min(text.len());
            let before = text.as_bytes()[..at].iter();
            let line = 1 + before.clone().filter(|&&b| b == b'\n').count();
            let column = 1 + before.rev().take_while(|&&b| b != b'\n').count();
            PolicyError::Toml {
                line,
                column,
                message: e.message().trim().to_string(),
            }
        })?;
        AccessPolicy::try_from(raw)
    }

    /// The rule used when no group rule applies.
    pub fn default_rule(&self) -> &Rule {
        &self.default
    }

    /// The group rules, in the order they were written.
    pub fn rules(&self) -> &[GroupRule] {
        &self.rules
    }

    /// The rule for `group`: the first rule naming it, else the first pattern matching it,
    /// else the default rule.
    pub fn rule_for(&self, group: &str) -> &Rule {
        let exact = self.rules.iter().find(|r| match &r.selector {
            Selector::Name(n) => n == group,
            Selector::Pattern(_) => false,
        });
        let pattern = || {
            self.rules.iter().find(|r| match &r.selector {
                Selector::Name(_) => false,
                Selector::Pattern(p) => glob_match(p, group),
            })
        };
        exact
            .or_else(pattern)
            .map(|r| &r.rule)
            .unwrap_or(&self.default)
    }
}

// ---------------------------------------------------------------------------------------------
// Admission: may this join go ahead?
// ---------------------------------------------------------------------------------------------

/// A join as [`admit`] sees it: who asks, with what, and the state the join would change.
///
/// Not `Debug`: it holds the password.
#[derive(Clone, Copy)]
pub(super) struct JoinAttempt<'a> {
    pub(super) username: &'a str,
    pub(super) password: Option<&'a str>,
    pub(super) order: Order,
    /// The group as it is, `None` when it does not exist (the join would create it).
    pub(super) group: Option<GroupNow>,
    /// How many groups exist.
    pub(super) groups: usize,
    /// How many of them the requester created.
    pub(super) created: usize,
}

/// An existing group, as [`admit`] needs to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct GroupNow {
    pub(super) order: Order,
    pub(super) members: usize,
    /// Whether the requester is a member of it already.
    pub(super) is_member: bool,
}

/// Why [`admit`] refuses a join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Denial {
    AlreadyMember,
    /// The rule has an allow-list without the requester.
    NotAllowed,
    PasswordMissing,
    /// The one refusal that counts against the requester
    /// ([`Registry::wrong_passwords`](super::Registry::wrong_passwords)).
    WrongPassword,
    OrderMismatch {
        group: Order,
        asked: Order,
    },
    Full {
        members: usize,
    },
    /// The group does not exist and the rule forbids creating it by joining.
    NotCreatable,
    /// The group does not exist and its member limit is 0.
    AdmitsNoMembers,
    /// Creating it would pass [`RegistryLimits::max_groups`].
    MaxGroups {
        limit: usize,
    },
    /// Creating it would pass [`RegistryLimits::max_groups_per_client`].
    MaxGroupsPerClient {
        created: usize,
    },
}

impl Denial {
    /// The error code the client gets.
    pub(super) fn code(self) -> ErrorCode {
        match self {
            Denial::AlreadyMember => ErrorCode::AlreadyMember,
            Denial::NotAllowed
            | Denial::PasswordMissing
            | Denial::WrongPassword
            | Denial::NotCreatable => ErrorCode::AccessDenied,
            Denial::OrderMismatch { .. } => ErrorCode::OrderMismatch,
            Denial::Full { .. } | Denial::AdmitsNoMembers => ErrorCode::GroupFull,
            Denial::MaxGroups { .. } | Denial::MaxGroupsPerClient { .. } => ErrorCode::LimitReached,
        }
    }

    /// The reply to the join of `username` to `group`: the code and a sentence naming the
    /// group (and the limit, for a limit).
    pub(super) fn refusal(self, group: &str, username: &str) -> Refusal {
        let group = quoted(group);
        let message = match self {
            Denial::AlreadyMember => format!("{username} is already a member of {group}"),
            Denial::NotAllowed => format!("{username} may not join {group}"),
            Denial::PasswordMissing => format!("{group} needs a password"),
            Denial::WrongPassword => format!("wrong password for {group}"),
            Denial::OrderMismatch { group: is, asked } => format!(
                "{group} is a {is} group, not {asked}"
            ),
            Denial::Full { members } => format!("{group} is full ({members} members)"),
            Denial::NotCreatable => {
                format!("{group} does not exist and may not be created by joining")
            }
            Denial::AdmitsNoMembers => format!("{group} admits no members"),
            Denial::MaxGroups { limit } => format!(
                "cannot create {group}: the tracker holds its limit of {limit} groups (max_groups)"
            ),
            Denial::MaxGroupsPerClient { created } => format!(
                "cannot create {group}: {username} already created {created} groups, the limit per client (max_groups_per_client)"
            ),
        };
        Refusal::new(self.code(), message)
    }
}

/// Whether a join may go ahead, decided from the group's `rule`, the tracker's `limits` and
/// the state the join would change; reads only. The first failing check refuses, in this
/// order: already a member, not on the allow-list, missing or wrong password (compared in
/// constant time), then for an existing group the order and the member limit, and for an
/// absent one whether joining may create it, a member limit of 0, and the limits on groups in
/// all and per creator.
///
/// The member limit is the rule's `max_members`, else `limits.default_max_members`, and
/// never more than [`MAX_MEMBERS`].
pub(super) fn admit(
    rule: &Rule,
    limits: &RegistryLimits,
    attempt: &JoinAttempt<'_>,
) -> Result<(), Denial> {
    if attempt.group.is_some_and(|g| g.is_member) {
        return Err(Denial::AlreadyMember);
    }
    if let Some(allow) = &rule.allow {
        if !allow.iter().any(|name| name == attempt.username) {
            return Err(Denial::NotAllowed);
        }
    }
    if let Some(expected) = &rule.password {
        match attempt.password {
            None => return Err(Denial::PasswordMissing),
            Some(given) if !same_secret(given, expected) => return Err(Denial::WrongPassword),
            Some(_) => {}
        }
    }
    let limit = rule
        .max_members
        .unwrap_or(limits.default_max_members)
        .min(MAX_MEMBERS);
    match attempt.group {
        Some(g) => {
            if g.order != attempt.order {
                return Err(Denial::OrderMismatch {
                    group: g.order,
                    asked: attempt.order,
                });
            }
            if g.members >= limit as usize {
                return Err(Denial::Full { members: g.members });
            }
        }
        None => {
            if !rule.create {
                return Err(Denial::NotCreatable);
            }
            if limit == 0 {
                return Err(Denial::AdmitsNoMembers);
            }
            if attempt.groups >= limits.max_groups {
                return Err(Denial::MaxGroups {
                    limit: limits.max_groups,
                });
            }
            if attempt.created >= limits.max_groups_per_client {
                return Err(Denial::MaxGroupsPerClient {
                    created: attempt.created,
                });
            }
        }
    }
    Ok(())
}

/// Compares two secrets in time that depends only on their lengths (`subtle`, as RustCrypto
/// and dalek use it).
fn same_secret(given: &str, expected: &str) -> bool {
    bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

#[cfg(test)]
pub(super) const EXAMPLE: &str = r#"
    [default]
    create = true
    [[group]]
    name = "ops"
    password = "s3cret"
    max_members = 8
    [[group]]
    pattern = "team-*"
    allow = ["alice", "bob"]
    create = false
"#;

#[cfg(test)]
mod tests;
