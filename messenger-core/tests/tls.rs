//! The control plane over TLS, on loopback: trust on first use and its known-trackers file, a
//! changed key refused with the line to delete, a fingerprint or a CA pinned in advance, TLS
//! and plain TCP refusing each other clearly, and a passive reader of the TCP stream that
//! finds neither the group password nor the username.
//!
//! Every test keeps its keys and pins in temporary directories of its own.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use messenger_core::client::{Client, ClientConfig, ClientError, ClientEvent};
use messenger_core::tls::{KnownTrackers, IDENTITY_FILE};
use messenger_core::tracker::{AccessPolicy, Tracker, TrackerConfig, TrackerHandle};
use messenger_core::{ErrorCode, FaultConfig, Fingerprint, Order, TrackerTrust};
use support::{temp_dir, Log};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const WAIT: Duration = Duration::from_secs(10);

fn local() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

async fn tracker_on(addr: SocketAddr, config: TrackerConfig) -> TrackerHandle {
    Tracker::spawn(addr, config).await.expect("tracker binds")
}

fn config(tracker: SocketAddr, name: &str, trust: TrackerTrust) -> ClientConfig {
    let mut config = ClientConfig::new(tracker, name).with_trust(trust);
    config.faults = Some(FaultConfig::default());
    config.reconnect_initial = Duration::from_millis(50);
    config.reconnect_max = Duration::from_millis(200);
    config
}

fn first_use(known: &Path) -> TrackerTrust {
    TrackerTrust::FirstUse {
        known_trackers: Some(known.to_owned()),
    }
}

fn not_trusted(result: Result<Client, ClientError>) -> String {
    match result {
        Err(ClientError::TrackerNotTrusted(message)) => message,
        Err(other) => panic!("expected TrackerNotTrusted, got {other:?}"),
        Ok(_) => panic!("expected TrackerNotTrusted, the client connected"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_records_the_key_on_first_use_and_reconnects_to_it() {
    let state = temp_dir("state");
    let known = temp_dir("config").join("known_trackers");
    let tracker = tracker_on(local(), TrackerConfig::default().with_state_dir(&state)).await;
    let addr = tracker.local_addr();
    let fingerprint = tracker
        .fingerprint()
        .expect("a TLS tracker has a fingerprint");
    assert!(state.join(IDENTITY_FILE).exists());

    let log = Log::new();
    let client = Client::connect(config(addr, "ann", first_use(&known)), log.handler())
        .await
        .expect("first connection");
    assert_eq!(
        KnownTrackers::new(&known)
            .lookup(&addr.to_string())
            .expect("readable"),
        Some((1, fingerprint)),
        "the first connection records the tracker"
    );
    let text = std::fs::read_to_string(&known).expect("known trackers");
    assert_eq!(text, format!("{addr} {fingerprint}\n"));
    client.join("room", Order::Fifo, None).await.expect("join");

    // The tracker restarts with the same key (same state directory): the client goes back.
    tracker.shutdown().await;
    let again = tracker_on(addr, TrackerConfig::default().with_state_dir(&state)).await;
    assert_eq!(again.fingerprint(), Some(fingerprint));
    log.wait_for("reconnected", WAIT, |s| {
        s.events
            .iter()
            .any(|e| matches!(e, ClientEvent::Reconnected { .. }))
    })
    .await;
    // A second client on the same file: the recorded key matches, nothing is added.
    let other = Client::connect(config(addr, "bob", first_use(&known)), ())
        .await
        .expect("known tracker");
    assert_eq!(std::fs::read_to_string(&known).expect("read"), text);
    other.quit().await.expect("quit");
    client.quit().await.expect("quit");
    again.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tracker_back_with_another_key_is_refused_naming_the_line_to_delete() {
    let known = temp_dir("config").join("known_trackers");
    // Another tracker recorded first, so that the line is not the first one.
    KnownTrackers::new(&known)
        .record("127.0.0.1:1", Fingerprint::from_bytes([7; 32]))
        .expect("record");
    let first = tracker_on(
        local(),
        TrackerConfig::default().with_state_dir(temp_dir("state")),
    )
    .await;
    let addr = first.local_addr();
    let log = Log::new();
    let client = Client::connect(config(addr, "ann", first_use(&known)), log.handler())
        .await
        .expect("first connection");
    client.join("room", Order::Fifo, None).await.expect("join");
    let recorded = first.fingerprint();
    first.shutdown().await;

    let impostor = tracker_on(
        addr,
        TrackerConfig::default().with_state_dir(temp_dir("state")),
    )
    .await;
    assert_ne!(impostor.fingerprint(), recorded);
    let message = not_trusted(Client::connect(config(addr, "bob", first_use(&known)), ()).await);
    let path = known.display().to_string();
    assert!(message.contains(&path), "names the file: {message}");
    assert!(
        message.contains("delete line 2"),
        "names the line: {message}"
    );
    assert!(
        message.contains(&impostor.fingerprint().unwrap().to_string()),
        "{message}"
    );
    // The client that was connected keeps trying, and never gets in.
    log.wait_for("tracker lost", WAIT, |s| {
        s.events
            .iter()
            .any(|e| matches!(e, ClientEvent::TrackerLost { .. }))
    })
    .await;
    // Each refused attempt is a failed handshake at the impostor (bob's above was the first):
    // wait until the reconnecting client has been refused twice.
    let deadline = tokio::time::Instant::now() + WAIT;
    while impostor.stats().bad_connections < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the client made no two further attempts within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        log.with(|s| !s
            .events
            .iter()
            .any(|e| matches!(e, ClientEvent::Reconnected { .. }))),
        "a changed key is never accepted"
    );
    assert_eq!(impostor.stats().clients, 0);
    drop(client);
    impostor.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fingerprint_pinned_in_advance_is_accepted_and_a_wrong_one_refused() {
    let tracker = tracker_on(
        local(),
        TrackerConfig::default().with_state_dir(temp_dir("state")),
    )
    .await;
    let addr = tracker.local_addr();
    let fingerprint = tracker.fingerprint().expect("fingerprint");
    let pinned = fingerprint
        .to_string()
        .parse()
        .expect("parses its own text");
    let client = Client::connect(config(addr, "ann", TrackerTrust::Fingerprint(pinned)), ())
        .await
        .expect("pinned key");
    client.join("room", Order::Total, None).await.expect("join");

    let wrong = Fingerprint::from_bytes([0xAB; 32]);
    let message = not_trusted(
        Client::connect(config(addr, "bob", TrackerTrust::Fingerprint(wrong)), ()).await,
    );
    assert!(message.contains(&wrong.to_string()), "{message}");
    assert!(message.contains(&fingerprint.to_string()), "{message}");
    client.quit().await.expect("quit");
    tracker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_issued_by_a_pinned_ca_is_accepted() {
    let dir = temp_dir("ca");
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = rcgen::KeyPair::generate().expect("key");
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .expect("params")
        .signed_by(&leaf_key, &issuer)
        .expect("leaf");
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).expect("write");
    std::fs::write(dir.join("chain.pem"), leaf.pem() + &ca_cert.pem()).expect("write");
    std::fs::write(dir.join("key.pem"), leaf_key.serialize_pem()).expect("write");

    let tracker = tracker_on(
        local(),
        TrackerConfig::default().with_certificate(dir.join("chain.pem"), dir.join("key.pem")),
    )
    .await;
    let addr = tracker.local_addr();
    assert_eq!(
        tracker.fingerprint(),
        Some(Fingerprint::of_certificate(leaf.der()))
    );
    let client = Client::connect(
        config(addr, "ann", TrackerTrust::CaFile(dir.join("ca.pem"))),
        (),
    )
    .await
    .expect("issued by the CA");
    client.quit().await.expect("quit");

    // Another CA did not issue it.
    let other_key = rcgen::KeyPair::generate().expect("key");
    let mut other = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    other.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let other = other.self_signed(&other_key).expect("CA");
    std::fs::write(dir.join("other.pem"), other.pem()).expect("write");
    not_trusted(
        Client::connect(
            config(addr, "bob", TrackerTrust::CaFile(dir.join("other.pem"))),
            (),
        )
        .await,
    );
    tracker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_plain_tcp_refuse_each_other_clearly() {
    let known = temp_dir("config").join("known_trackers");
    let secure = tracker_on(
        local(),
        TrackerConfig::default().with_state_dir(temp_dir("state")),
    )
    .await;
    match Client::connect(
        config(secure.local_addr(), "ann", TrackerTrust::Insecure),
        (),
    )
    .await
    {
        Err(ClientError::Rejected {
            code: ErrorCode::BadRequest,
            message,
        }) => assert!(message.contains("requires TLS"), "{message}"),
        other => panic!(
            "expected a refusal that asks for TLS, got {:?}",
            other.err()
        ),
    }
    assert_eq!(secure.stats().bad_connections, 1);

    let plain = tracker_on(local(), TrackerConfig::default().insecure()).await;
    assert_eq!(plain.fingerprint(), None);
    let message = not_trusted(
        Client::connect(config(plain.local_addr(), "bob", first_use(&known)), ()).await,
    );
    assert!(message.contains("does not speak TLS"), "{message}");
    assert!(
        !known.exists(),
        "nothing is recorded for a tracker without TLS"
    );
    // Both insecure: plain TCP, as asked.
    let client = Client::connect(
        config(plain.local_addr(), "cid", TrackerTrust::Insecure),
        (),
    )
    .await
    .expect("plain TCP on both sides");
    client.quit().await.expect("quit");
    secure.shutdown().await;
    plain.shutdown().await;
}

/// A TCP proxy that forwards one connection at a time to `to` and records every byte in both
/// directions.
async fn recording_proxy(to: SocketAddr) -> (SocketAddr, Arc<Mutex<Vec<u8>>>) {
    let listener = TcpListener::bind(local()).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let capture = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&capture);
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(to).await else {
                return;
            };
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            tokio::spawn(pump(cr, sw, Arc::clone(&record)));
            tokio::spawn(pump(sr, cw, Arc::clone(&record)));
        }
    });
    (addr, capture)
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    record: Arc<Mutex<Vec<u8>>>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => {
                let _ = to.shutdown().await;
                return;
            }
            Ok(n) => {
                record.lock().unwrap().extend_from_slice(&buf[..n]);
                if to.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// A session through a recording proxy: hello, a join with the group's password, a message,
/// the member list, quit. Returns the capture.
async fn captured_session(tracker: &TrackerHandle, trust: TrackerTrust) -> Vec<u8> {
    let (proxy, capture) = recording_proxy(tracker.local_addr()).await;
    let log = Log::new();
    let client = Client::connect(config(proxy, "alice-the-username", trust), log.handler())
        .await
        .expect("connects through the proxy");
    client
        .join("vault", Order::Total, Some("hunter2-the-password"))
        .await
        .expect("join with the password");
    client.send("vault", "hello").await.expect("send");
    log.wait_for("own message", WAIT, |s| s.count("vault") >= 1)
        .await;
    client.quit().await.expect("quit");
    let bytes = capture.lock().unwrap().clone();
    assert!(!bytes.is_empty(), "the proxy saw the session");
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passive_reader_of_the_control_connection_finds_no_password_and_no_username() {
    let policy = AccessPolicy::from_toml_str(
        "[[group]]\nname = \"vault\"\npassword = \"hunter2-the-password\"",
    )
    .expect("policy");
    let secure = tracker_on(
        local(),
        TrackerConfig::default()
            .with_state_dir(temp_dir("state"))
            .with_policy(policy.clone()),
    )
    .await;
    let pinned = TrackerTrust::Fingerprint(secure.fingerprint().expect("fingerprint"));
    let capture = captured_session(&secure, pinned).await;
    assert!(!contains(&capture, "hunter2-the-password"));
    assert!(!contains(&capture, "alice-the-username"));
    assert!(!contains(&capture, "vault"));

    // The same session without TLS shows both: the capture does look at the right bytes.
    let plain = tracker_on(
        local(),
        TrackerConfig::default().insecure().with_policy(policy),
    )
    .await;
    let capture = captured_session(&plain, TrackerTrust::Insecure).await;
    assert!(contains(&capture, "hunter2-the-password"));
    assert!(contains(&capture, "alice-the-username"));
    secure.shutdown().await;
    plain.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_over_a_limit_learns_why_inside_tls() {
    let tracker = tracker_on(
        local(),
        TrackerConfig::default()
            .with_state_dir(temp_dir("state"))
            .with_max_connections_per_ip(1),
    )
    .await;
    let pinned = TrackerTrust::Fingerprint(tracker.fingerprint().expect("fingerprint"));
    let first = Client::connect(config(tracker.local_addr(), "ann", pinned.clone()), ())
        .await
        .expect("the first connection");
    match Client::connect(config(tracker.local_addr(), "bob", pinned), ()).await {
        Err(ClientError::Rejected {
            code: ErrorCode::LimitReached,
            message,
        }) => assert!(message.contains("connections"), "{message}"),
        other => panic!("expected LimitReached, got {:?}", other.err()),
    }
    assert_eq!(tracker.stats().refused_connections, 1);
    first.quit().await.expect("quit");
    tracker.shutdown().await;
}
