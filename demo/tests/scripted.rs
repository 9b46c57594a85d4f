//! `messenger chat` in scripted mode and `messenger tracker`, as processes over loopback: the
//! output of each chat is checked line by line.

#![cfg(unix)]

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use support::{chat, chat_with, deliveries, free_port, spawn_chat, tracker, Proc};

/// Messages each chat sends to each group.
const N: usize = 10;

/// Three chats join a fifo and a total-order group, talk at the same time, one leaves; every
/// message is delivered exactly once, in each sender's order, and in the same order at all
/// three in the total-order group. On end of input they report their metrics to the tracker.
#[test]
fn three_chats_in_a_fifo_and_a_total_group() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("three-chats-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let json = dir.join("metrics.jsonl");
    let _ = std::fs::remove_file(&json);
    let json_arg = json.to_string_lossy().to_string();
    let (mut tracker, addr) = tracker(&["--log-json", &json_arg]);

    let names = ["ann", "bob", "carl"];
    let mut chats: Vec<Proc> = Vec::new();
    for name in names {
        let mut c = chat(name, addr);
        c.send("!j f");
        c.expect_prefix("* you joined f (fifo order)");
        c.send("!j t total");
        c.expect_prefix("* you joined t (total order)");
        chats.push(c);
    }
    // Everyone knows everyone: ann and bob saw carl (the last) join both groups.
    for c in &chats[..2] {
        c.expect_line("* carl joined f");
        c.expect_line("* carl joined t");
    }
    chats[1].expect_line("* you joined f (fifo order) with ann");
    chats[2].expect_line("* you joined t (total order) with ann, bob");

    // All three talk at once, in both groups.
    for c in chats.iter_mut() {
        let name = c.name.clone();
        let mut script = String::from("!w f\n");
        for i in 1..=N {
            script.push_str(&format!("{name}-f-{i}\n"));
        }
        script.push_str("!w t\n");
        for i in 1..=N {
            script.push_str(&format!("{name}-t-{i}\n"));
        }
        c.send(&script);
    }
    for c in &chats {
        c.expect_count("in f ", 3 * N);
        c.expect_count("in t ", 3 * N);
    }

    let mut total_orders = Vec::new();
    for c in &chats {
        let got = deliveries(&c.stdout());
        for group in ["f", "t"] {
            let mut by_sender: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
            for (g, sender, text) in &got {
                if g == group {
                    by_sender.entry(sender).or_default().push(text);
                }
            }
            for sender in names {
                let expected: Vec<String> =
                    (1..=N).map(|i| format!("{sender}-{group}-{i}")).collect();
                assert_eq!(
                    by_sender.get(sender).cloned().unwrap_or_default(),
                    expected,
                    "{}: messages of {sender} in {group}: each once, in order",
                    c.name
                );
            }
            assert_eq!(by_sender.len(), 3, "{}: unexpected senders", c.name);
        }
        let order: Vec<String> = got
            .iter()
            .filter(|(g, _, _)| g == "t")
            .map(|(_, s, t)| format!("{s}:{t}"))
            .collect();
        total_orders.push(order);
    }
    assert_eq!(
        total_orders[0], total_orders[1],
        "ann and bob disagree on t"
    );
    assert_eq!(
        total_orders[0], total_orders[2],
        "ann and carl disagree on t"
    );

    // carl leaves t; the others are told, and what ann says next reaches bob only.
    chats[2].send("!e t");
    chats[2].expect_prefix("* you left t");
    chats[0].expect_line("* carl left t");
    chats[1].expect_line("* carl left t");
    chats[0].send("after carl");
    for c in &chats[..2] {
        c.expect_line("in t ann says:: after carl");
    }

    // End of input: each waits for its own messages, quits, prints and reports its metrics.
    for c in chats.iter_mut() {
        c.close_stdin();
    }
    let expected = [
        ("ann", 2 * N + 1, 4 * N),
        ("bob", 2 * N, 4 * N + 1),
        ("carl", 2 * N, 4 * N),
    ];
    for (c, (name, sent, received)) in chats.iter_mut().zip(expected) {
        let status = c.wait_exit();
        assert!(status.success(), "{name} exited with {status}");
        let out = c.stdout();
        assert!(
            !out.iter().any(|l| l == "in t ann says:: after carl") || name != "carl",
            "carl got a message sent after it left"
        );
        let block = out
            .iter()
            .position(|l| l == "-----Performance analytics -----")
            .unwrap_or_else(|| panic!("{name}: no metrics block in {out:#?}"));
        assert!(
            out[block + 1].starts_with("System throughput = "),
            "{out:#?}"
        );
        assert!(out[block + 2].starts_with("System latency = "), "{out:#?}");
        assert_eq!(
            out[block + 3],
            format!(
                "Messages sent = {sent} / Messages received = {received} / Total messages = {}",
                sent + received
            )
        );
        assert!(c.stderr().is_empty(), "{name} stderr: {:#?}", c.stderr());
        tracker.expect_stderr(&format!(
            "metrics {name}: sent {sent}, received {received}, total {}",
            sent + received
        ));
    }

    // The JSON metrics file has one line per chat; Ctrl-C stops the tracker cleanly.
    tracker.interrupt();
    let status = tracker.wait_exit();
    assert!(status.success(), "tracker exited with {status}");
    tracker.expect_stderr("tracker stopped");
    let text = std::fs::read_to_string(&json).expect("metrics file");
    let users: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split("\"user\":\"").nth(1)?.split('"').next())
        .collect();
    assert_eq!(users.len(), 3, "{text}");
    for name in names {
        assert!(users.contains(&name), "{name} missing in {text}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every mistake gets a one-line answer on stderr and the chat goes on; `!q` quits (lines
/// after it are not read) with the metrics.
#[test]
fn mistakes_get_one_line_answers() {
    let policy = support::policy_file("mistakes");
    let (_tracker, addr) = tracker(&["--policy", &policy]);
    let mut c = chat("dora", addr);
    let long = "g".repeat(40);
    let script = [
        ("hello", Some("no group chosen: use !j <group> to join one")),
        ("!bogus", Some("unknown command !bogus: type !help")),
        (
            "!w nowhere",
            Some("you are not in nowhere: use !j nowhere to join it"),
        ),
        ("!lm nowhere", Some("there is no group named \"nowhere\"")),
        ("!e nowhere", Some("you are not in nowhere")),
        ("!j", Some("which group?: usage: !j <group>")),
        ("!lm a b", Some("one group only: usage: !lm <group>")),
        (&format!("!j {long}"), Some("is not a valid group name")),
        ("!j ops", Some("\"ops\" needs a password")),
        (
            "!j ops --password wrong",
            Some("wrong password for \"ops\""),
        ),
        ("!j ops --password s3cret", None),
        ("!j lobby", None),
        (
            "!j lobby",
            Some("you are already in lobby: use !w lobby to write to it"),
        ),
        ("!j other total", None),
        ("!e other", None),
        ("hello again", Some("no group chosen: use !w <group>")),
        ("!w lobby", None),
        ("now it works", None),
        ("!g", None),
        ("!lm lobby", None),
        ("!help", None),
        ("!stats", None),
        ("!q", None),
        ("never read", None),
    ];
    let text: String = script.iter().map(|(l, _)| format!("{l}\n")).collect();
    c.send(&text);
    let status = c.wait_exit();
    assert!(status.success(), "exited with {status}");

    let errors = c.stderr();
    let expected: Vec<&str> = script.iter().filter_map(|(_, e)| *e).collect();
    assert_eq!(errors.len(), expected.len(), "stderr: {errors:#?}");
    for (line, want) in errors.iter().zip(&expected) {
        assert!(
            line.starts_with("error: ") && line.contains(want),
            "{line:?} should say {want:?}"
        );
    }

    let out = c.stdout();
    for line in [
        "* you joined ops (fifo order); no one else is in it yet",
        "* you joined lobby (fifo order); no one else is in it yet",
        "* you joined other (total order); no one else is in it yet",
        "* you left other; use !w <group> to choose where your lines go",
        "in lobby dora says:: now it works",
        "groups:",
        "  lobby (fifo order, 1 member, you write here)",
        "  ops (fifo order, 1 member, you are in it)",
        "members of lobby (fifo order):",
        "commands:",
    ] {
        assert!(out.iter().any(|l| l == line), "no {line:?} in {out:#?}");
    }
    assert!(
        out.iter()
            .any(|l| l.starts_with("  dora 127.0.0.1:") && l.ends_with(" (you)")),
        "{out:#?}"
    );
    // !stats and !q both print the block.
    let blocks = out
        .iter()
        .filter(|l| *l == "-----Performance analytics -----")
        .count();
    assert_eq!(blocks, 2, "{out:#?}");
    assert_eq!(
        out.last().map(String::as_str),
        Some("Messages sent = 1 / Messages received = 0 / Total messages = 1")
    );
    assert!(!out.iter().any(|l| l.contains("never read")));
    let _ = std::fs::remove_file(&policy);
}

/// With no tracker at the address, the first chat hosts one and says so; the next chat joins
/// it, after being asked for its name again when the first choice is taken or invalid.
#[test]
fn a_chat_hosts_a_tracker_when_none_answers() {
    let addr = format!("127.0.0.1:{}", free_port());
    let mut ann = Proc::spawn("ann", &["chat", "--name", "ann", "--tracker", &addr], &[]);
    ann.expect_line(&format!(
        "* no tracker answered at {addr}; hosting one on {addr} (it stops when this chat quits)"
    ));
    ann.expect_prefix("* connected to the tracker");
    ann.send("!j lobby");
    ann.expect_prefix("* you joined lobby");

    let mut bob = Proc::spawn(
        "bob",
        &["chat", "--tracker", &addr, "--host-tracker", "never"],
        &[],
    );
    bob.send("ann\nbad name\nbob\n!j lobby\nhi ann\n");
    bob.expect_line("* you joined lobby (fifo order) with ann");
    ann.expect_line("* bob joined lobby");
    ann.expect_line("in lobby bob says:: hi ann");
    bob.close_stdin();
    assert!(bob.wait_exit().success());
    let asked = bob
        .stderr()
        .iter()
        .filter(|l| l.contains("Enter your username: "))
        .count();
    let errors: Vec<String> = bob
        .stderr()
        .into_iter()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(asked, 3, "{:#?}", bob.stderr());
    assert_eq!(
        errors,
        [
            "error: the username \"ann\" is taken; choose another",
            "error: \"bad name\" is not a valid username: it contains whitespace; choose another",
        ]
    );

    ann.expect_line("* bob left lobby");
    ann.close_stdin();
    assert!(ann.wait_exit().success());
    let out = ann.stdout();
    assert!(out.contains(&"* stopping the tracker this chat hosted".to_string()));
    assert_eq!(
        out.last().map(String::as_str),
        Some("Messages sent = 0 / Messages received = 1 / Total messages = 1")
    );
    // The hosted tracker went with the chat: nothing listens at its address any more.
    assert!(
        std::net::TcpStream::connect(&addr).is_err(),
        "the tracker still answers at {addr}"
    );
}

/// `--host-tracker never` with no tracker: a clear message and a failure status.
#[test]
fn never_hosting_without_a_tracker_fails_clearly() {
    let addr = format!("127.0.0.1:{}", free_port());
    let mut c = Proc::spawn(
        "lone",
        &[
            "chat",
            "--name",
            "lone",
            "--tracker",
            &addr,
            "--host-tracker",
            "never",
        ],
        &[],
    );
    c.close_stdin();
    let status = c.wait_exit();
    assert!(!status.success());
    c.expect_stderr(&format!("messenger: no tracker answers at {addr}"));
    c.expect_stderr("--host-tracker auto");
}

/// Ctrl-C ends a scripted chat as `!q` does: metrics printed and reported.
#[test]
fn ctrl_c_quits_with_the_metrics() {
    let (tracker, addr) = tracker(&[]);
    let mut c = chat("eve", addr);
    c.send("!j lobby\nhi");
    c.expect_line("in lobby eve says:: hi");
    c.interrupt();
    let status = c.wait_exit();
    assert!(status.success(), "exited with {status}");
    c.expect_line("Messages sent = 1 / Messages received = 0 / Total messages = 1");
    tracker.expect_stderr("metrics eve: sent 1, received 0, total 1");
}

/// A chat whose datagrams all vanish (the fault injector drops everything it sends) while its
/// connection to the tracker stays up: the two others report it after `--suspect-after`, the
/// tracker removes it from the total-order group, and the others go on talking.
#[test]
fn a_chat_silent_on_udp_is_removed_and_the_others_go_on() {
    let (_tracker, addr) = tracker(&[]);
    let spawn = |name: &str, envs: &[(&str, &str)]| {
        chat_with(
            name,
            addr,
            &["--order", "total", "--suspect-after", "0.5"],
            envs,
        )
    };
    let mut ann = spawn("ann", &[]);
    ann.send("!j t");
    ann.expect_prefix("* you joined t (total order)");
    let mut bob = spawn("bob", &[]);
    bob.send("!j t");
    bob.expect_prefix("* you joined t (total order)");
    let mut carl = spawn("carl", &[("MESSENGER_FAULTS", "loss=1.0")]);
    carl.send("!j t");
    carl.expect_prefix("* you joined t (total order)");
    // Nothing carl sends arrives, so nobody can deliver in total order until it is gone.
    carl.send("!w t\nlost in the void");
    ann.expect_line("* carl left t");
    bob.expect_line("* carl left t");
    ann.send("!w t\nafter carl");
    bob.expect_line("in t ann says:: after carl");
    bob.send("!w t\nbob too");
    ann.expect_line("in t bob says:: bob too");
    for c in [&mut ann, &mut bob, &mut carl] {
        c.close_stdin();
        assert!(c.wait_exit().success());
    }
}

/// Starts a tracker with `--heartbeat-interval interval_ms --heartbeat-misses misses` and two
/// chats in one group, freezes one (SIGSTOP: its connection stays open, it answers no probe)
/// and waits until the tracker drops it and the other chat sees it go. Returns how long after
/// the freeze the tracker said so (an upper bound of when it dropped it).
fn time_to_drop_a_frozen_chat(interval_ms: &str, misses: &str) -> Duration {
    let (tracker, addr) = tracker(&[
        "--heartbeat-interval",
        interval_ms,
        "--heartbeat-misses",
        misses,
    ]);
    // Neither chat reports the other for UDP silence within the test: only the heartbeats
    // can remove zed.
    let quiet = ["--suspect-after", "600"];
    let mut ann = chat_with("ann", addr, &quiet, &[]);
    let mut zed = chat_with("zed", addr, &quiet, &[]);
    ann.send("!j g");
    ann.expect_prefix("* you joined g (fifo order)");
    zed.send("!j g");
    zed.expect_line("* you joined g (fifo order) with ann");
    ann.expect_line("* zed joined g");
    // Taken before the signal: the measured wait can only be longer than the real one.
    let frozen_at = Instant::now();
    zed.freeze();
    tracker.expect_stderr(&format!(
        "zed failed: {misses} heartbeats unanswered, removing it from its groups"
    ));
    let waited = frozen_at.elapsed();
    ann.expect_line("* zed left g");
    // ann answered every probe meanwhile.
    assert!(
        !tracker.stderr().iter().any(|l| l.contains("ann failed")),
        "{:#?}",
        tracker.stderr()
    );
    waited
}

/// `--heartbeat-interval 200 --heartbeat-misses 2`: a chat that stops answering is dropped
/// after two unanswered probes (the tracker's log names the number; the default is 3), and
/// not before two intervals have passed: the probes that go unanswered are sent at least
/// 200 ms apart, so it was still a member 0.35 s after it froze.
#[test]
fn a_frozen_chat_is_dropped_after_the_given_heartbeat_misses() {
    let waited = time_to_drop_a_frozen_chat("200", "2");
    assert!(
        waited >= Duration::from_millis(350),
        "dropped {waited:?} after it froze: sooner than 2 probes 200 ms apart"
    );
}

/// The interval is read too, not only its lower bound checked: with 1800 ms between probes
/// and 2 misses, the frozen chat is dropped no sooner than 3.6 s after it froze; with the
/// default interval (1000 ms) it would be gone within 3 s.
#[test]
fn a_longer_heartbeat_interval_keeps_a_frozen_chat_longer() {
    let waited = time_to_drop_a_frozen_chat("1800", "2");
    assert!(
        waited >= Duration::from_millis(3_500),
        "dropped {waited:?} after it froze: sooner than 2 probes 1800 ms apart"
    );
}

/// A zero or non-numeric heartbeat setting is refused before anything starts: a one-line
/// error naming the flag and the value, and a failure status.
#[test]
fn bad_heartbeat_flags_are_refused() {
    for (flag, value) in [
        ("--heartbeat-interval", "0"),
        ("--heartbeat-interval", "soon"),
        ("--heartbeat-interval", "1.5"),
        ("--heartbeat-misses", "0"),
        ("--heartbeat-misses", "two"),
    ] {
        let mut t = Proc::spawn(
            "tracker",
            &["tracker", "--bind", "127.0.0.1:0", flag, value],
            &[],
        );
        let status = t.wait_exit();
        assert!(!status.success(), "{flag} {value} was accepted");
        let first = t.stderr().first().cloned().unwrap_or_default();
        assert!(
            first.starts_with(&format!("error: invalid value '{value}' for '{flag} ")),
            "{flag} {value}: {:#?}",
            t.stderr()
        );
        assert!(t.stdout().is_empty(), "{flag} {value}: {:#?}", t.stdout());
    }
}

/// `--order total`: the groups a chat creates are total-order (`!j <group> fifo` still makes a
/// FIFO one), and a chat without the flag joins such a group in the order it has: its `!g` and
/// `!lm` say so.
#[test]
fn the_order_flag_sets_the_order_of_the_groups_a_chat_creates() {
    let (_tracker, addr) = tracker(&[]);
    let mut ann = chat_with("ann", addr, &["--order", "total"], &[]);
    ann.send("!j t\n!j f fifo");
    ann.expect_line("* you joined t (total order); no one else is in it yet");
    ann.expect_line("* you joined f (fifo order); no one else is in it yet");
    let mut bob = chat("bob", addr);
    bob.send("!j t\n!g\n!lm t");
    bob.expect_line("* you joined t (total order) with ann");
    bob.expect_line("  f (fifo order, 1 member)");
    bob.expect_line("  t (total order, 2 members, you write here)");
    bob.expect_line("members of t (total order):");
    bob.close_stdin();
    assert!(bob.wait_exit().success());
    assert!(bob.stderr().is_empty(), "{:#?}", bob.stderr());
}

/// `--host-tracker always` hosts a tracker even though one answers at --tracker: the address
/// is taken, so the chat fails with a message that says so (`auto` would have joined it).
#[test]
fn always_hosting_on_a_taken_address_fails_clearly() {
    let (_tracker, addr) = tracker(&[]);
    let addr = addr.to_string();
    let mut c = Proc::spawn(
        "ann",
        &[
            "chat",
            "--name",
            "ann",
            "--tracker",
            &addr,
            "--host-tracker",
            "always",
        ],
        &[],
    );
    c.close_stdin();
    let status = c.wait_exit();
    assert!(!status.success(), "exited with {status}");
    c.expect_stderr(&format!(
        "messenger: cannot host a tracker on {addr}: Address already in use"
    ));
    assert!(
        !c.stdout().iter().any(|l| l.starts_with("* connected")),
        "{:#?}",
        c.stdout()
    );
}

/// `--host-tracker always` with port 0: the chat hosts a tracker on a free port, says where,
/// registers with it, and another chat can join it there; the tracker stops with the chat.
#[test]
fn always_hosting_starts_a_tracker_others_can_join() {
    let mut ann = Proc::spawn(
        "ann",
        &[
            "chat",
            "--name",
            "ann",
            "--tracker",
            "127.0.0.1:0",
            "--host-tracker",
            "always",
        ],
        &[],
    );
    let line = ann.expect_prefix("* hosting a tracker on ");
    let addr: std::net::SocketAddr = line
        .trim_start_matches("* hosting a tracker on ")
        .trim_end_matches(" (it stops when this chat quits)")
        .parse()
        .unwrap_or_else(|e| panic!("bad address in {line:?}: {e}"));
    assert_ne!(addr.port(), 0, "{line}");
    ann.expect_line(&format!(
        "* connected to the tracker at {addr} as ann; type !help for the commands"
    ));
    ann.send("!j lobby");
    ann.expect_prefix("* you joined lobby");
    let mut bob = chat("bob", addr);
    bob.send("!j lobby\nhi ann");
    ann.expect_line("in lobby bob says:: hi ann");
    bob.close_stdin();
    assert!(bob.wait_exit().success());
    ann.close_stdin();
    assert!(ann.wait_exit().success());
    ann.expect_line("* stopping the tracker this chat hosted");
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "the tracker still answers at {addr}"
    );
}

/// `--udp ADDR`: the chat's UDP socket is bound there (another loopback address and a chosen
/// port), the others see that address in `!lm`, and messages flow both ways through it.
#[test]
fn the_udp_flag_binds_the_chat_where_it_says() {
    let (_tracker, addr) = tracker(&[]);
    let udp = format!("127.0.0.2:{}", free_port());
    let mut zed = chat_with("zed", addr, &["--udp", &udp], &[]);
    let mut ann = chat("ann", addr);
    zed.send("!j g");
    zed.expect_prefix("* you joined g");
    ann.send("!j g\n!lm g");
    ann.expect_line(&format!("  zed {udp}"));
    zed.send(&format!("through {udp}"));
    ann.expect_line(&format!("in g zed says:: through {udp}"));
    ann.send("back to it");
    zed.expect_line("in g ann says:: back to it");
    for c in [&mut ann, &mut zed] {
        c.close_stdin();
        assert!(c.wait_exit().success());
    }
}

/// `--udp` with an address that cannot be bound (here: a port another socket holds) fails with
/// a message about the UDP socket, not one that blames the tracker (which answers fine).
#[test]
fn a_udp_address_that_cannot_be_bound_is_named_in_the_error() {
    let (_tracker, addr) = tracker(&[]);
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let udp = taken.local_addr().expect("address").to_string();
    let mut c = spawn_chat("ann", addr, &["--udp", &udp], &[]);
    c.close_stdin();
    let status = c.wait_exit();
    assert!(!status.success(), "exited with {status}");
    c.expect_stderr(&format!("cannot bind the UDP socket to {udp}: "));
    assert!(
        !c.stderr().iter().any(|l| l.contains("tracker")),
        "{:#?}",
        c.stderr()
    );
}

/// `--quit-wait SECS`: when a member never acknowledges (every datagram it sends is lost, and
/// nobody reports it for a long while), `!q` waits that long for delivery, says it gave up,
/// and quits with the metrics.
#[test]
fn quit_wait_bounds_how_long_quitting_waits_for_a_silent_member() {
    let (_tracker, addr) = tracker(&[]);
    let quiet = ["--suspect-after", "600"];
    let mut ann = chat_with(
        "ann",
        addr,
        &["--quit-wait", "1.5", quiet[0], quiet[1]],
        &[],
    );
    // Lost datagrams rather than a process stopped with SIGSTOP: once, under a heavily loaded
    // CI run, the message became stable within 40 ms although zed had been stopped before it
    // was sent (not reproduced since; see the closing note of that session). A member whose
    // every datagram is lost can never acknowledge, whatever the scheduling.
    let mut zed = chat_with("zed", addr, &quiet, &[("MESSENGER_FAULTS", "loss=1.0")]);
    ann.send("!j g");
    ann.expect_prefix("* you joined g");
    zed.send("!j g");
    ann.expect_line("* zed joined g");
    ann.send("unheard");
    ann.expect_line("in g ann says:: unheard");
    let asked = Instant::now();
    ann.send("!q");
    let status = ann.wait_exit();
    let took = asked.elapsed();
    assert!(status.success(), "exited with {status}");
    ann.expect_line(
        "* gave up waiting after 1.5 s: some of your messages may not have reached everyone",
    );
    assert!(
        took >= Duration::from_millis(1_500),
        "quit {took:?} after !q: it did not wait"
    );
    let out = ann.stdout();
    assert_eq!(
        out.last().map(String::as_str),
        Some("Messages sent = 1 / Messages received = 0 / Total messages = 1"),
        "{out:#?}"
    );
}

/// The tracker prints its fingerprint; a chat that pins it gets in, a chat that pins another
/// is refused with a clear message; `--insecure` on both sides is plain TCP, and an insecure
/// chat is told that a TLS tracker requires TLS.
#[test]
fn the_tracker_fingerprint_is_printed_and_pinned() {
    let (tracker, addr) = tracker(&[]);
    let line = tracker.expect_prefix("tracker fingerprint ");
    let fingerprint = line
        .trim_start_matches("tracker fingerprint ")
        .trim()
        .to_owned();
    assert_eq!(fingerprint.len(), 95, "{line}");
    let mut ann = chat_with("ann", addr, &["--tracker-fingerprint", &fingerprint], &[]);
    let wrong = "AB:".repeat(31) + "AB";
    let refused = |name: &str, extra: &[&str]| spawn_chat(name, addr, extra, &[]);
    let mut bob = refused("bob", &["--tracker-fingerprint", &wrong]);
    bob.close_stdin();
    assert!(!bob.wait_exit().success());
    bob.expect_stderr("tracker not trusted");
    bob.expect_stderr(&format!("not the pinned {wrong}"));
    let mut cid = refused("cid", &["--insecure"]);
    cid.close_stdin();
    assert!(!cid.wait_exit().success());
    cid.expect_stderr("requires TLS");
    ann.close_stdin();
    assert!(ann.wait_exit().success());

    let (plain, plain_addr) = self::tracker(&["--insecure"]);
    plain.expect_line("tracker insecure (plain TCP)");
    let mut dan = chat_with("dan", plain_addr, &["--insecure"], &[]);
    dan.close_stdin();
    assert!(dan.wait_exit().success());
}
