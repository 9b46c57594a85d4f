//! The registry's rules for reports of silent members (`Request::Suspect`), sans-IO: time is
//! an argument. (These live here rather than next to the registry because `protocol/` never
//! reads the clock, not even in its tests, and an `Instant` cannot be made without it.)

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use messenger_core::protocol::tracker::{ClientId, Registry, RegistryLimits};
use messenger_core::protocol::wire::{
    ErrorCode, Hello, Order, Reply, Request, View, CONTROL_VERSION,
};
use messenger_core::protocol::MemberId;

const WINDOW: Duration = Duration::from_secs(10);

fn registry() -> Registry {
    Registry::default().with_limits(RegistryLimits {
        suspect_window: WINDOW,
        ..RegistryLimits::default()
    })
}

/// Registers `names` and makes them all join group "g", in order.
fn group_of(r: &mut Registry, names: &[&str]) -> Vec<(ClientId, MemberId)> {
    names
        .iter()
        .map(|name| {
            let client = r
                .register(&Hello {
                    version: CONTROL_VERSION,
                    username: (*name).to_owned(),
                    udp_addr: SocketAddr::from(([127, 0, 0, 1], 4000)),
                })
                .expect("registered");
            let (reply, _) = r.handle(
                client,
                Request::Join {
                    group: "g".into(),
                    order: Order::Total,
                    password: None,
                },
            );
            let Reply::Joined { member, .. } = reply else {
                panic!("{name} did not join: {reply:?}");
            };
            (client, member)
        })
        .collect()
}

fn suspect(member: MemberId) -> Request {
    Request::Suspect {
        group: "g".into(),
        member,
    }
}

fn view(r: &Registry) -> View {
    r.view("g").expect("group g")
}

fn names(v: &View) -> Vec<&str> {
    v.members.iter().map(|m| m.name.as_str()).collect()
}

#[test]
fn half_of_the_others_rounded_up_remove_a_silent_member() {
    let mut r = registry();
    let m = group_of(&mut r, &["a", "b", "c", "d", "e"]);
    let t = Instant::now();
    let (e_client, e) = m[4];
    // Four others: two reports are needed.
    let (reply, pushes) = r.handle_at(t, m[0].0, suspect(e));
    assert_eq!(reply, Reply::Suspected { removed: false });
    assert!(pushes.is_empty());
    assert_eq!(view(&r).members.len(), 5);

    let (reply, pushes) = r.handle_at(t, m[1].0, suspect(e));
    assert_eq!(reply, Reply::Suspected { removed: true });
    let v = view(&r);
    assert_eq!(names(&v), ["a", "b", "c", "d"]);
    // A normal view change: the others, then the removed member itself.
    let to: Vec<ClientId> = pushes.iter().map(|p| p.to).collect();
    assert_eq!(to, [m[0].0, m[1].0, m[2].0, m[3].0, e_client]);
    assert!(pushes.iter().all(|p| *p.view == v));
    assert!(r.groups_of(e_client).is_empty());
    assert_eq!(r.username(e_client), Some("e"), "its session goes on");
    assert_eq!(r.stats().members_suspected, 1);
}

#[test]
fn a_reporter_counts_once() {
    let mut r = registry();
    let m = group_of(&mut r, &["a", "b", "c", "d", "e"]);
    let t = Instant::now();
    for i in 0..5 {
        let (reply, _) = r.handle_at(t + Duration::from_secs(i), m[0].0, suspect(m[4].1));
        assert_eq!(reply, Reply::Suspected { removed: false });
    }
    assert_eq!(view(&r).members.len(), 5);
}

#[test]
fn reports_expire_after_the_window() {
    let mut r = registry();
    let m = group_of(&mut r, &["a", "b", "c", "d", "e"]);
    let t = Instant::now();
    let e = m[4].1;
    r.handle_at(t, m[0].0, suspect(e));
    // a's report has expired when b reports.
    let later = t + WINDOW + Duration::from_millis(1);
    let (reply, _) = r.handle_at(later, m[1].0, suspect(e));
    assert_eq!(reply, Reply::Suspected { removed: false });
    // A report renewed within the window counts.
    let (reply, _) = r.handle_at(later, m[0].0, suspect(e));
    assert_eq!(reply, Reply::Suspected { removed: true });
}

#[test]
fn in_a_pair_one_report_is_enough() {
    let mut r = registry();
    let m = group_of(&mut r, &["a", "b"]);
    let (reply, pushes) = r.handle_at(Instant::now(), m[0].0, suspect(m[1].1));
    assert_eq!(reply, Reply::Suspected { removed: true });
    assert_eq!(names(&view(&r)), ["a"]);
    assert_eq!(pushes.len(), 2);
}

#[test]
fn bad_reports_are_refused_and_change_nothing() {
    let mut r = registry();
    let m = group_of(&mut r, &["a", "b", "c"]);
    let outsider = r
        .register(&Hello {
            version: CONTROL_VERSION,
            username: "outsider".into(),
            udp_addr: SocketAddr::from(([127, 0, 0, 1], 4000)),
        })
        .expect("registered");
    let before = view(&r);
    let t = Instant::now();
    let check =
        |r: &mut Registry, who: ClientId, request: Request, code: ErrorCode, needle: &str| {
            let (reply, pushes) = r.handle_at(t, who, request);
            let Reply::Error { code: got, message } = reply else {
                panic!("expected {code:?}, got {reply:?}");
            };
            assert_eq!(got, code, "{message}");
            assert!(
                message.contains(needle),
                "{message:?} should say {needle:?}"
            );
            assert!(pushes.is_empty());
        };
    check(
        &mut r,
        outsider,
        suspect(m[2].1),
        ErrorCode::NotAMember,
        "outsider",
    );
    check(
        &mut r,
        m[0].0,
        suspect(MemberId(999)),
        ErrorCode::NotAMember,
        "999",
    );
    check(
        &mut r,
        m[0].0,
        suspect(m[0].1),
        ErrorCode::BadRequest,
        "itself",
    );
    let elsewhere = Request::Suspect {
        group: "nope".into(),
        member: m[1].1,
    };
    check(&mut r, m[0].0, elsewhere, ErrorCode::UnknownGroup, "nope");
    // Without the time, a report cannot be weighed.
    let (reply, _) = r.handle(m[0].0, suspect(m[2].1));
    assert!(
        matches!(
            reply,
            Reply::Error {
                code: ErrorCode::BadRequest,
                ..
            }
        ),
        "{reply:?}"
    );
    assert_eq!(view(&r), before);
    // None of them counted: one real report is still needed (two others, so one).
    let (reply, _) = r.handle_at(t, m[0].0, suspect(m[2].1));
    assert_eq!(reply, Reply::Suspected { removed: true });
}

#[test]
fn reports_by_or_about_a_member_that_left_are_void() {
    let mut r = registry();
    let m = group_of(&mut r, &["a", "b", "c", "d", "e"]);
    let t = Instant::now();
    let e = m[4].1;
    r.handle_at(t, m[0].0, suspect(e));
    // a leaves: its report goes with it. Four remain, three others of e: two reports needed.
    r.handle(m[0].0, Request::Leave { group: "g".into() });
    let (reply, _) = r.handle_at(t, m[1].0, suspect(e));
    assert_eq!(reply, Reply::Suspected { removed: false });
    // e leaves and joins again: a new membership, not suspected.
    r.handle(m[4].0, Request::Leave { group: "g".into() });
    let (reply, _) = r.handle(
        m[4].0,
        Request::Join {
            group: "g".into(),
            order: Order::Total,
            password: None,
        },
    );
    let Reply::Joined { member: e2, .. } = reply else {
        panic!("{reply:?}");
    };
    let (reply, _) = r.handle_at(t, m[2].0, suspect(e2));
    assert_eq!(reply, Reply::Suspected { removed: false });
    // The old membership is not in the group any more.
    let (reply, _) = r.handle_at(t, m[2].0, suspect(e));
    assert!(matches!(
        reply,
        Reply::Error {
            code: ErrorCode::NotAMember,
            ..
        }
    ));
}
