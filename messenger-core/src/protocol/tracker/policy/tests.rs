//! Tests of the access policy: parsing its TOML form (and refusing bad ones without echoing
//! passwords), which rule a group name takes, and [`admit`](super::admit) with every denial.

use super::*;

/// A policy that does not parse must not echo its passwords: not in the message (which
/// reaches the tracker's stderr, Python exceptions and the C last error) nor in `Debug`.
#[test]
fn a_malformed_policy_does_not_echo_its_passwords() {
    for text in [
        "[[group]]\nname = \"a\"\npassword = s3cret-pw",
        "[[group]]\nname = \"a\"\npassword = \"s3cret-pw\"\nmax_members = \"many\"",
        "[default]\npassword = \"s3cret-pw\"\n[[group]\n",
        "[[group]]\nname = \"a\"\npassword = \"s3cret-pw\"\npasswrd = \"s3cret-pw\"",
    ] {
        let e = AccessPolicy::from_toml_str(text).expect_err(text);
        assert!(matches!(e, PolicyError::Toml { .. }), "{e:?}");
        assert!(!e.to_string().contains("s3cret"), "{e}");
        assert!(!format!("{e:?}").contains("s3cret"), "{e:?}");
    }
}

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
        PolicyError::Toml { .. }
    ));
    assert!(matches!(
        err("[default]\ncreate = 3"),
        PolicyError::Toml { .. }
    ));
    assert!(matches!(err("not toml ["), PolicyError::Toml { .. }));
    assert!(toml::from_str::<AccessPolicy>("[[group]]\nmax_members = 1").is_err());
    // Where the parser went wrong, and never the text of the file around it.
    match err("[default]\ncreate = 3") {
        PolicyError::Toml { line, column, .. } => assert_eq!((line, column), (2, 10)),
        other => panic!("{other:?}"),
    }
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

// --- admit -----------------------------------------------------------------------------

fn attempt<'a>(username: &'a str, password: Option<&'a str>) -> JoinAttempt<'a> {
    JoinAttempt {
        username,
        password,
        order: Order::Fifo,
        group: None,
        groups: 0,
        created: 0,
    }
}

fn existing(members: usize) -> Option<GroupNow> {
    Some(GroupNow {
        order: Order::Fifo,
        members,
        is_member: false,
    })
}

fn ops() -> Rule {
    Rule {
        password: Some("s3cret".into()),
        allow: Some(vec!["alice".into(), "bob".into()]),
        max_members: Some(2),
        create: true,
    }
}

#[test]
fn an_open_rule_admits_anyone_to_a_new_or_existing_group() {
    let limits = RegistryLimits::default();
    let open = Rule::open();
    assert_eq!(admit(&open, &limits, &attempt("carol", None)), Ok(()));
    let join = JoinAttempt {
        group: existing(3),
        ..attempt("carol", Some("ignored: the rule has no password"))
    };
    assert_eq!(admit(&open, &limits, &join), Ok(()));
    let right = attempt("alice", Some("s3cret"));
    assert_eq!(admit(&ops(), &limits, &right), Ok(()));
}

#[test]
fn admit_refuses_for_each_reason() {
    let limits = RegistryLimits {
        max_groups: 3,
        max_groups_per_client: 2,
        default_max_members: 4,
        ..RegistryLimits::default()
    };
    let denied = |rule: &Rule, join: JoinAttempt<'_>| admit(rule, &limits, &join).err();
    let alice = attempt("alice", Some("s3cret"));

    let member = Some(GroupNow {
        is_member: true,
        ..existing(1).expect("group")
    });
    let again = JoinAttempt {
        group: member,
        ..alice
    };
    assert_eq!(denied(&ops(), again), Some(Denial::AlreadyMember));
    assert_eq!(
        denied(&ops(), attempt("carol", Some("s3cret"))),
        Some(Denial::NotAllowed)
    );
    assert_eq!(
        denied(&ops(), attempt("alice", None)),
        Some(Denial::PasswordMissing)
    );
    for wrong in ["guess", "", "s3cre", "s3cret!", "S3CRET"] {
        assert_eq!(
            denied(&ops(), attempt("alice", Some(wrong))),
            Some(Denial::WrongPassword),
            "{wrong:?}"
        );
    }
    let total = JoinAttempt {
        order: Order::Total,
        group: existing(1),
        ..alice
    };
    assert_eq!(
        denied(&ops(), total),
        Some(Denial::OrderMismatch {
            group: Order::Fifo,
            asked: Order::Total
        })
    );
    let full = JoinAttempt {
        group: existing(2),
        ..alice
    };
    assert_eq!(denied(&ops(), full), Some(Denial::Full { members: 2 }));
    let closed = Rule {
        create: false,
        ..Rule::open()
    };
    assert_eq!(
        denied(&closed, attempt("alice", None)),
        Some(Denial::NotCreatable)
    );
    let none = Rule {
        max_members: Some(0),
        ..Rule::open()
    };
    assert_eq!(
        denied(&none, attempt("alice", None)),
        Some(Denial::AdmitsNoMembers)
    );
    let many = JoinAttempt { groups: 3, ..alice };
    assert_eq!(
        denied(&Rule::open(), many),
        Some(Denial::MaxGroups { limit: 3 })
    );
    let prolific = JoinAttempt {
        groups: 2,
        created: 2,
        ..alice
    };
    assert_eq!(
        denied(&Rule::open(), prolific),
        Some(Denial::MaxGroupsPerClient { created: 2 })
    );
    // The limits on groups bind only a join that creates one.
    let join = JoinAttempt {
        group: existing(0),
        groups: 3,
        created: 2,
        ..alice
    };
    assert_eq!(denied(&Rule::open(), join), None);
}

#[test]
fn the_member_limit_is_the_rule_s_else_the_default_and_never_past_the_cap() {
    let limits = RegistryLimits {
        default_max_members: 4,
        ..RegistryLimits::default()
    };
    let join = |members: usize| JoinAttempt {
        group: existing(members),
        ..attempt("alice", None)
    };
    let open = Rule::open();
    assert_eq!(admit(&open, &limits, &join(3)), Ok(()));
    assert_eq!(
        admit(&open, &limits, &join(4)),
        Err(Denial::Full { members: 4 })
    );
    let big = Rule {
        max_members: Some(10),
        ..Rule::open()
    };
    assert_eq!(admit(&big, &limits, &join(9)), Ok(()));
    let huge = Rule {
        max_members: Some(u32::MAX),
        ..Rule::open()
    };
    let cap = MAX_MEMBERS as usize;
    assert_eq!(admit(&huge, &limits, &join(cap - 1)), Ok(()));
    assert_eq!(
        admit(&huge, &limits, &join(cap)),
        Err(Denial::Full { members: cap })
    );
}

#[test]
fn the_first_failing_check_decides() {
    let limits = RegistryLimits::default();
    let denied = |rule: &Rule, join: JoinAttempt<'_>| admit(rule, &limits, &join).err();
    // A member that asks again is not asked for the password, so it is not counted.
    let member = JoinAttempt {
        group: Some(GroupNow {
            is_member: true,
            ..existing(2).expect("group")
        }),
        ..attempt("alice", Some("guess"))
    };
    assert_eq!(denied(&ops(), member), Some(Denial::AlreadyMember));
    // Someone not on the allow-list gets no answer about the password.
    assert_eq!(
        denied(&ops(), attempt("carol", Some("guess"))),
        Some(Denial::NotAllowed)
    );
    // The password comes before anything about the group: a guess at a full group or in
    // the wrong order is still a wrong password.
    let full = JoinAttempt {
        order: Order::Total,
        group: existing(2),
        ..attempt("alice", Some("guess"))
    };
    assert_eq!(denied(&ops(), full), Some(Denial::WrongPassword));
    // The order before the member limit.
    let both = JoinAttempt {
        order: Order::Total,
        group: existing(2),
        ..attempt("alice", Some("s3cret"))
    };
    assert!(matches!(
        denied(&ops(), both),
        Some(Denial::OrderMismatch { .. })
    ));
    // For an absent group: creation forbidden before a limit of 0, before the limits on
    // groups.
    let nothing = Rule {
        create: false,
        max_members: Some(0),
        ..Rule::open()
    };
    let crowded = JoinAttempt {
        groups: usize::MAX,
        created: usize::MAX,
        ..attempt("alice", None)
    };
    assert_eq!(denied(&nothing, crowded), Some(Denial::NotCreatable));
    let zero = Rule {
        max_members: Some(0),
        ..Rule::open()
    };
    assert_eq!(denied(&zero, crowded), Some(Denial::AdmitsNoMembers));
    assert!(matches!(
        denied(&Rule::open(), crowded),
        Some(Denial::MaxGroups { .. })
    ));
}

#[test]
fn each_denial_has_its_code_and_message() {
    let denials = [
        Denial::AlreadyMember,
        Denial::NotAllowed,
        Denial::PasswordMissing,
        Denial::WrongPassword,
        Denial::OrderMismatch {
            group: Order::Total,
            asked: Order::Fifo,
        },
        Denial::Full { members: 8 },
        Denial::NotCreatable,
        Denial::AdmitsNoMembers,
        Denial::MaxGroups { limit: 10 },
        Denial::MaxGroupsPerClient { created: 64 },
    ];
    let replies: Vec<String> = denials
        .iter()
        .map(|d| d.refusal("g", "alice"))
        .map(|r| format!("{:?}: {}", r.code, r.message))
        .collect();
    let expected = r#"AlreadyMember: alice is already a member of "g"
AccessDenied: alice may not join "g"
AccessDenied: "g" needs a password
AccessDenied: wrong password for "g"
OrderMismatch: "g" is a total group, not fifo
GroupFull: "g" is full (8 members)
AccessDenied: "g" does not exist and may not be created by joining
GroupFull: "g" admits no members
LimitReached: cannot create "g": the tracker holds its limit of 10 groups (max_groups)
LimitReached: cannot create "g": alice already created 64 groups, the limit per client (max_groups_per_client)"#;
    assert_eq!(replies.join("\n"), expected);
}
