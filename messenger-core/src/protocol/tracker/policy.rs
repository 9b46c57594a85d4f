//! The access policy: who may join which group, and whether joining may create it; its TOML
//! form (see the documentation of [`protocol::tracker`](super)).

use std::collections::BTreeSet;
use std::fmt;

use serde::Deserialize;

use super::names::{glob_match, validate_name, NameError};
use crate::protocol::wire::Order;

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
    #[error("the policy is not valid TOML: {0}")]
    Toml(#[from] toml::de::Error),
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
        let raw: RawPolicy = toml::from_str(text)?;
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

/// How a message names an order.
pub(super) fn order_name(order: Order) -> &'static str {
    match order {
        Order::Fifo => "fifo",
        Order::Total => "total",
    }
}

/// Compares two secrets in time that depends only on their lengths.
pub(super) fn same_secret(given: &str, expected: &str) -> bool {
    let (a, b) = (given.as_bytes(), expected.as_bytes());
    let mut diff = a.len() ^ b.len();
    for (i, &x) in b.iter().enumerate() {
        diff |= usize::from(x ^ a.get(i).copied().unwrap_or(!x));
    }
    diff == 0
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
mod tests {
    use super::*;

    #[test]
    fn example_policy_parses() {
        let p = AccessPolicy::from_toml_str(EXAMPLE).expect("valid policy");
        assert_eq!(p.default_rule(), &Rule::open());
        let ops = p.rule_for("ops");
        assert_eq!(ops.password.as_deref(), Some("s3cret"));
        assert_eq!(ops.max_members, Some(8));
        assert!(ops.create);
        let team = p.rule_for("team-x");
        assert_eq!(
            team.allow.as_deref(),
            Some(&["alice".to_owned(), "bob".to_owned()][..])
        );
        assert!(!team.create);
        assert_eq!(p.rule_for("lobby"), &Rule::open());
        // Passwords stay out of Debug output.
        assert!(!format!("{p:?}").contains("s3cret"));
        // Deserialize goes through the same validation.
        let via_serde: AccessPolicy = toml::from_str(EXAMPLE).expect("valid policy");
        assert_eq!(via_serde, p);
    }

    #[test]
    fn exact_names_win_over_patterns_and_first_pattern_wins() {
        let p = AccessPolicy::from_toml_str(
            r#"
            [default]
            create = false
            [[group]]
            pattern = "a*"
            max_members = 1
            [[group]]
            pattern = "ab*"
            max_members = 2
            [[group]]
            name = "abc"
            max_members = 3
            "#,
        )
        .expect("valid policy");
        assert_eq!(p.rule_for("abc").max_members, Some(3));
        assert_eq!(p.rule_for("abd").max_members, Some(1));
        assert_eq!(p.rule_for("zzz").max_members, None);
        assert!(!p.rule_for("zzz").create);
        // A rule replaces the default: unset fields are open.
        assert!(p.rule_for("abc").create);
    }

    #[test]
    fn bad_policies_are_refused() {
        let err = |text: &str| AccessPolicy::from_toml_str(text).expect_err(text);
        assert!(matches!(
            err("[[group]]\nmax_members = 1"),
            PolicyError::MissingSelector { index: 1 }
        ));
        assert!(matches!(
            err("[[group]]\nname = \"a\"\npattern = \"b*\""),
            PolicyError::BothSelectors { index: 1 }
        ));
        assert!(matches!(
            err("[[group]]\nname = \"a b\""),
            PolicyError::InvalidName { index: 1, .. }
        ));
        assert!(matches!(
            err("[[group]]\npattern = \"\""),
            PolicyError::EmptyPattern { index: 1 }
        ));
        assert!(matches!(
            err("[[group]]\nname = \"a\"\n[[group]]\nname = \"a\""),
            PolicyError::DuplicateName { index: 2, .. }
        ));
        assert!(matches!(
            err("[[group]]\nname = \"a\"\npasswrd = \"x\""),
            PolicyError::Toml(_)
        ));
        assert!(matches!(err("[default]\ncreate = 3"), PolicyError::Toml(_)));
        assert!(matches!(err("not toml ["), PolicyError::Toml(_)));
        assert!(toml::from_str::<AccessPolicy>("[[group]]\nmax_members = 1").is_err());
        assert_eq!(
            AccessPolicy::from_toml_str("").expect("empty is open"),
            AccessPolicy::open()
        );
    }

    #[test]
    fn secrets_compare_exactly() {
        assert!(same_secret("abc", "abc"));
        assert!(same_secret("", ""));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("ab", "abc"));
        assert!(!same_secret("abcd", "abc"));
        assert!(!same_secret("", "a"));
    }
}
