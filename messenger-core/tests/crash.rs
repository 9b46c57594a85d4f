//! A member process killed with SIGKILL during total-order traffic: the survivors get the view
//! change, go on delivering, and their logs stay identical.

mod support;

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use messenger_core::client::Client;
use messenger_core::tracker::Tracker;
use messenger_core::{FaultConfig, Order};
use support::{check_fifo, Log};
use tokio::io::{AsyncBufReadExt, BufReader};

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_killed_mid_stream_leaves_the_survivors_identical() {
    let heartbeat = Duration::from_millis(100);
    let misses = 3;
    let config = support::tracker_config().with_heartbeat(heartbeat, misses);
    let tracker = Tracker::spawn(SocketAddr::from(([127, 0, 0, 1], 0)), config)
        .await
        .expect("tracker binds");
    let addr = tracker.local_addr();

    let mut survivors = Vec::new();
    for name in ["ann", "bob", "cid"] {
        let log = Log::new();
        let mut c = support::client_config(addr, name);
        c.faults = Some(FaultConfig::default());
        let client = Client::connect(c, log.handler()).await.expect("connect");
        client.join("room", Order::Total, None).await.expect("join");
        survivors.push((client, log));
    }

    let mut victim = tokio::process::Command::new(env!("CARGO_BIN_EXE_messenger-member"))
        .args([&addr.to_string(), "vic", "room", "total", "1000000", "200"])
        .env_remove("MESSENGER_FAULTS")
        .env("MESSENGER_CONFIG_DIR", support::config_dir())
        .env("MESSENGER_STATE_DIR", support::state_dir())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("member process starts");
    let mut lines = BufReader::new(victim.stdout.take().expect("stdout")).lines();
    let first = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .expect("member answers")
        .expect("reads");
    assert_eq!(first.as_deref(), Some("joined"));
    for (_, log) in &survivors {
        log.wait_for("4 members", WAIT, |s| s.has_members("room", 4))
            .await;
    }

    // Survivors send while the victim sends; kill the victim once everyone heard from it.
    let per_sender = 300u64;
    let mut senders = Vec::new();
    for (c, _) in &survivors {
        let c = c.clone();
        senders.push(tokio::spawn(async move {
            for i in 1..=per_sender {
                c.send("room", format!("{}-{i}", c.username()))
                    .await
                    .expect("send");
            }
        }));
    }
    for (_, log) in &survivors {
        log.wait_for("messages from the victim", WAIT, |s| {
            s.from("room", "vic") >= 50
        })
        .await;
    }
    victim.start_kill().expect("SIGKILL");
    victim.wait().await.expect("reaped");

    // How fast the failure is detected is a benchmark, not a test: on a busy machine the
    // heartbeats themselves are late. The test waits, with a generous timeout, for the view.
    for (_, log) in &survivors {
        log.wait_for("the view without the victim", WAIT, |s| {
            s.has_members("room", 3)
        })
        .await;
    }
    for s in senders {
        s.await.expect("sender");
    }
    // Delivery goes on after the failure.
    for (c, _) in &survivors {
        c.send("room", format!("{}-{}", c.username(), per_sender + 1))
            .await
            .expect("send after the crash");
    }
    for (c, log) in &survivors {
        log.wait_for(
            &format!("{} delivers every survivor message", c.username()),
            WAIT,
            |s| {
                ["ann", "bob", "cid"]
                    .iter()
                    .all(|who| s.from("room", who) as u64 == per_sender + 1)
            },
        )
        .await;
    }
    // The resolution of the victim's last messages is the same everywhere: identical logs.
    let reference = survivors[0].1.deliveries("room");
    for (c, log) in &survivors {
        let mine = log.deliveries("room");
        check_fifo(c.username(), &mine);
        assert_eq!(mine, reference, "{}: log differs from ann's", c.username());
    }
    for (c, _) in &survivors {
        c.quit().await.expect("quit");
    }
    tracker.shutdown().await;
}
