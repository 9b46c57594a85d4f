//! Running `messenger` processes in tests: a child with piped stdio whose output lines are
//! collected by reader threads, and waits for expected lines with a deadline (never a sleep).

#![allow(dead_code)] // Each test file uses its own part of this module.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long any expected output may take to appear.
pub const PATIENCE: Duration = Duration::from_secs(20);

pub const BIN: &str = env!("CARGO_BIN_EXE_messenger");

/// Lines read from one stream so far, and whether it is closed.
#[derive(Default)]
struct Stream {
    lines: Mutex<(Vec<String>, bool)>,
    changed: Condvar,
}

impl Stream {
    fn follow(self: &Arc<Self>, source: impl Read + Send + 'static) {
        let stream = Arc::clone(self);
        std::thread::spawn(move || {
            for line in BufReader::new(source).lines() {
                let Ok(line) = line else { break };
                let mut guard = stream.lines.lock().unwrap_or_else(|e| e.into_inner());
                guard.0.push(line);
                stream.changed.notify_all();
            }
            let mut guard = stream.lines.lock().unwrap_or_else(|e| e.into_inner());
            guard.1 = true;
            stream.changed.notify_all();
        });
    }

    fn snapshot(&self) -> Vec<String> {
        self.lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .clone()
    }

    /// Waits until `done` holds for the lines so far; panics after [`PATIENCE`].
    /// `other` is the process's other stream, shown when the wait fails.
    fn wait(&self, what: &str, who: &str, other: &Stream, done: impl Fn(&[String]) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        let mut guard = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if done(&guard.0) {
                return;
            }
            let now = Instant::now();
            if now >= deadline || guard.1 {
                panic!(
                    "{who}: {} waiting for {what}; output so far:\n{}\nits other output:\n{}",
                    if guard.1 {
                        "output closed"
                    } else {
                        "timed out"
                    },
                    guard.0.join("\n"),
                    other.snapshot().join("\n")
                );
            }
            guard = self
                .changed
                .wait_timeout(guard, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn wait_closed(&self, who: &str) {
        let deadline = Instant::now() + PATIENCE;
        let mut guard = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        while !guard.1 {
            let now = Instant::now();
            assert!(now < deadline, "{who}: did not exit in time");
            guard = self
                .changed
                .wait_timeout(guard, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// This test process's state and configuration directories (temporary).
pub fn test_dirs() -> &'static (std::path::PathBuf, std::path::PathBuf) {
    static DIRS: std::sync::OnceLock<(std::path::PathBuf, std::path::PathBuf)> =
        std::sync::OnceLock::new();
    DIRS.get_or_init(|| {
        let root = std::env::temp_dir().join(format!("messenger-demo-test-{}", std::process::id()));
        let dirs = (root.join("state"), root.join("config"));
        std::fs::create_dir_all(&dirs.0).expect("state dir");
        std::fs::create_dir_all(&dirs.1).expect("config dir");
        dirs
    })
}

/// A `messenger` process; killed when dropped.
pub struct Proc {
    pub name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    out: Arc<Stream>,
    err: Arc<Stream>,
}

impl Proc {
    pub fn spawn(name: &str, args: &[&str], envs: &[(&str, &str)]) -> Proc {
        let mut command = Command::new(BIN);
        let (state, config) = test_dirs();
        command
            .args(args)
            // Keys and known trackers in this test process's own directories, never the
            // home directory's; shared by its processes, as one user's are on one machine.
            .env("MESSENGER_STATE_DIR", state)
            .env("MESSENGER_CONFIG_DIR", config)
            .env_remove("RUST_LOG")
            .env_remove("MESSENGER_FAULTS")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in envs {
            command.env(k, v);
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {BIN}: {e}"));
        let out = Arc::new(Stream::default());
        let err = Arc::new(Stream::default());
        out.follow(child.stdout.take().expect("piped stdout"));
        err.follow(child.stderr.take().expect("piped stderr"));
        Proc {
            name: name.to_string(),
            stdin: child.stdin.take(),
            child,
            out,
            err,
        }
    }

    /// Writes lines to the process's standard input.
    pub fn send(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        let mut text = text.to_string();
        if !text.ends_with('\n') {
            text.push('\n');
        }
        stdin
            .write_all(text.as_bytes())
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|e| panic!("{}: cannot write to stdin: {e}", self.name));
    }

    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    pub fn stdout(&self) -> Vec<String> {
        self.out.snapshot()
    }

    pub fn stderr(&self) -> Vec<String> {
        self.err.snapshot()
    }

    /// Waits for a stdout line equal to `line`.
    pub fn expect_line(&self, line: &str) {
        self.out
            .wait(&format!("{line:?}"), &self.name, &self.err, |ls| {
                ls.iter().any(|l| l == line)
            });
    }

    /// Waits for a stdout line starting with `prefix`; returns it.
    pub fn expect_prefix(&self, prefix: &str) -> String {
        self.out.wait(
            &format!("a line starting {prefix:?}"),
            &self.name,
            &self.err,
            |ls| ls.iter().any(|l| l.starts_with(prefix)),
        );
        self.stdout()
            .into_iter()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_default()
    }

    /// Waits until `count` stdout lines start with `prefix`.
    pub fn expect_count(&self, prefix: &str, count: usize) {
        self.out.wait(
            &format!("{count} lines starting {prefix:?}"),
            &self.name,
            &self.err,
            |ls| ls.iter().filter(|l| l.starts_with(prefix)).count() >= count,
        );
    }

    /// Waits for a stderr line containing `text`.
    pub fn expect_stderr(&self, text: &str) {
        self.err
            .wait(&format!("stderr {text:?}"), &self.name, &self.out, |ls| {
                ls.iter().any(|l| l.contains(text))
            });
    }

    /// Waits for the process to exit (both outputs closed, every line read) and returns its
    /// status.
    pub fn wait_exit(&mut self) -> ExitStatus {
        self.out.wait_closed(&self.name);
        self.err.wait_closed(&self.name);
        self.child
            .wait()
            .unwrap_or_else(|e| panic!("{}: wait: {e}", self.name))
    }

    /// Sends SIGINT, as Ctrl-C does.
    pub fn interrupt(&self) {
        self.signal("INT");
    }

    /// Stops the process with SIGSTOP: its sockets stay open, but it answers nothing (the
    /// kill on drop still ends it).
    pub fn freeze(&self) {
        self.signal("STOP");
    }

    /// Sends the signal `name` (`INT`, `STOP`, ...) with kill(1).
    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{name} failed");
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `messenger tracker` on a free loopback port; returns it and its address.
pub fn tracker(extra: &[&str]) -> (Proc, SocketAddr) {
    let mut args = vec!["tracker", "--bind", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let tracker = Proc::spawn("tracker", &args, &[("RUST_LOG", "info")]);
    let line = tracker.expect_prefix("tracker listening on ");
    let addr = line
        .trim_start_matches("tracker listening on ")
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("bad address line {line:?}: {e}"));
    (tracker, addr)
}

/// A scripted chat registered as `name` with the tracker at `addr`.
pub fn chat(name: &str, addr: SocketAddr) -> Proc {
    chat_with(name, addr, &[], &[])
}

/// [`chat`] with more arguments and environment variables.
pub fn chat_with(name: &str, addr: SocketAddr, extra: &[&str], envs: &[(&str, &str)]) -> Proc {
    let chat = spawn_chat(name, addr, extra, envs);
    chat.expect_prefix("* connected to the tracker");
    chat
}

/// A scripted chat as [`chat_with`] starts it, without waiting for it to connect (for chats
/// that must fail to).
pub fn spawn_chat(name: &str, addr: SocketAddr, extra: &[&str], envs: &[(&str, &str)]) -> Proc {
    let addr = addr.to_string();
    let mut args = vec![
        "chat",
        "--name",
        name,
        "--tracker",
        &addr,
        "--host-tracker",
        "never",
    ];
    args.extend_from_slice(extra);
    Proc::spawn(name, &args, envs)
}

/// A policy file with one group, `ops`, whose password is `s3cret`; returns its path.
pub fn policy_file(test: &str) -> String {
    let path = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("policy-{test}-{}.toml", std::process::id()));
    std::fs::write(&path, "[[group]]\nname = \"ops\"\npassword = \"s3cret\"\n")
        .expect("write the policy file");
    path.to_string_lossy().into_owned()
}

/// A loopback port that was free a moment ago, below the range the kernel hands out for
/// port 0: no tracker or connection of a concurrent test can take it meanwhile.
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32_768);
    let start = 10_000;
    let span = ephemeral_low.saturating_sub(start).max(1_000);
    // Concurrent test processes (a stress run) start from different places.
    let clock = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let seed = std::process::id().wrapping_mul(7_919) ^ clock;
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let port = start + seed.wrapping_add(n.wrapping_mul(104_729)) % span;
        let Ok(port) = u16::try_from(port) else {
            continue;
        };
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port below {ephemeral_low}");
}

/// The `in <group> <sender> says:: <text>` lines of `lines`, as (group, sender, text).
pub fn deliveries(lines: &[String]) -> Vec<(String, String, String)> {
    lines
        .iter()
        .filter_map(|l| {
            let rest = l.strip_prefix("in ")?;
            let (head, text) = rest.split_once(" says:: ")?;
            let (group, sender) = head.split_once(' ')?;
            Some((group.to_string(), sender.to_string(), text.to_string()))
        })
        .collect()
}
