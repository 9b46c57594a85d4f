//! `messenger chat` at a terminal, driven through tmux: keys typed with `send-keys`, the
//! screen read with `capture-pane`. A message that arrives while a line is half typed must
//! appear on a line of its own, above the prompt, and leave the typed text intact.

#![cfg(unix)]

mod support;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use support::{chat, tracker, BIN, PATIENCE};

/// A tmux server of the test's own (its own socket), killed when dropped.
struct Tmux {
    socket: String,
    session: String,
}

impl Tmux {
    /// Fails the test, saying what to do, when tmux is missing: a test that cannot run must
    /// not pass.
    fn require() {
        let found = Command::new("tmux").arg("-V").output();
        if !found.is_ok_and(|o| o.status.success()) {
            panic!(
                "tmux is not installed, and the interactive test needs it: run `make test`, \
                 which installs it (or `apt-get install tmux`)"
            );
        }
    }

    /// Starts `command` in a detached 120x30 session.
    fn start(command: &str) -> Tmux {
        Tmux::require();
        let tmux = Tmux {
            socket: format!("messenger-test-{}", std::process::id()),
            session: "chat".to_string(),
        };
        let out = tmux.run(&[
            "new-session",
            "-d",
            "-s",
            &tmux.session,
            "-x",
            "120",
            "-y",
            "30",
            command,
        ]);
        assert!(out.status.success(), "tmux new-session: {out:?}");
        tmux
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            // A config of none: the user's tmux settings do not apply.
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .env_remove("TMUX")
            .env_remove("NO_COLOR")
            .env_remove("RUST_LOG")
            .output()
            .expect("tmux runs")
    }

    /// Types text literally.
    fn type_text(&self, text: &str) {
        let out = self.run(&["send-keys", "-t", &self.session, "-l", text]);
        assert!(out.status.success(), "send-keys: {out:?}");
    }

    /// Presses keys (`Enter`, `C-c`).
    fn press(&self, key: &str) {
        let out = self.run(&["send-keys", "-t", &self.session, key]);
        assert!(out.status.success(), "send-keys: {out:?}");
    }

    /// The screen, one string per row (with colours when `escapes`).
    fn screen(&self, escapes: bool) -> Vec<String> {
        let mut args = vec!["capture-pane", "-p", "-t", &self.session];
        if escapes {
            args.push("-e");
        }
        let out = self.run(&args);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim_end().to_string())
            .collect()
    }

    /// Reads the screen until `done` holds for it; panics after [`PATIENCE`].
    fn wait_for(&self, what: &str, done: impl Fn(&[String]) -> bool) -> Vec<String> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let screen = self.screen(false);
            if done(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; the screen:\n{}",
                screen.join("\n")
            );
            // The screen has no change notification: look again shortly.
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn wait_for_line(&self, line: &str) -> Vec<String> {
        self.wait_for(&format!("{line:?}"), |s| s.iter().any(|l| l == line))
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// The last non-empty row: where the prompt is.
fn last_row(screen: &[String]) -> &str {
    screen
        .iter()
        .rev()
        .find(|l| !l.is_empty())
        .map(String::as_str)
        .unwrap_or("")
}

/// No row holds a prompt with something printed after it (a notice, a message, an answer):
/// what arrives goes above the prompt, never into it.
fn assert_clean(screen: &[String]) {
    for row in screen {
        if let Some((_, after)) = row.split_once("> ") {
            assert!(
                !["* ", "[", "error:", "-----", "members of", "groups:"]
                    .iter()
                    .any(|p| after.contains(p)),
                "garbled row {row:?} in {screen:#?}"
            );
        }
    }
}

#[test]
fn an_incoming_message_does_not_garble_the_line_being_typed() {
    Tmux::require();
    let policy = support::policy_file("interactive");
    let (tracker, addr) = tracker(&["--policy", &policy]);
    // The shell line reports the exit status, and keeps the pane open to read it.
    // The shell in tmux does not inherit the test's environment: the directories go on the
    // command line.
    let (state, config) = support::test_dirs();
    let tmux = Tmux::start(&format!(
        "MESSENGER_STATE_DIR='{}' MESSENGER_CONFIG_DIR='{}' {BIN} chat --name ann --tracker \
         {addr} --host-tracker never; echo \"[exit $?]\"; sleep 60",
        state.display(),
        config.display()
    ));
    tmux.wait_for("the prompt", |s| last_row(s) == "ann>");

    // A group with a password: the chat asks for it, and the screen shows stars.
    tmux.type_text("!j ops");
    tmux.press("Enter");
    tmux.wait_for_line("error: \"ops\" needs a password");
    tmux.wait_for("the password prompt", |s| {
        last_row(s) == "Password for ops (empty line cancels):"
    });
    tmux.type_text("s3cret");
    tmux.wait_for("the masked password", |s| {
        last_row(s) == "Password for ops (empty line cancels): ******"
    });
    tmux.press("Enter");
    let screen = tmux.wait_for_line("* you joined ops (fifo order); no one else is in it yet");
    assert!(
        !screen.iter().any(|l| l.contains("s3cret")),
        "the password is on the screen: {screen:#?}"
    );

    // Two commands pasted at once: both run.
    tmux.type_text("!lm ops\n!g\n");
    tmux.wait_for_line("members of ops (fifo order):");
    tmux.wait_for_line("  ops (fifo order, 1 member, you write here)");
    tmux.type_text("!j lobby total");
    tmux.press("Enter");
    tmux.wait_for_line("* you joined lobby (total order); no one else is in it yet");
    tmux.wait_for("the prompt with the group", |s| last_row(s) == "ann@lobby>");

    let mut bob = chat("bob", addr);
    bob.send("!j lobby");
    bob.expect_line("* you joined lobby (total order) with ann");
    tmux.wait_for_line("* bob joined lobby");

    // Half a line typed, then bob speaks.
    tmux.type_text("half typed");
    tmux.wait_for("the half-typed line", |s| {
        last_row(s) == "ann@lobby> half typed"
    });
    bob.send("hello from bob");
    // The editor clears the prompt, prints the message and draws the prompt again: wait for
    // the end of that redraw (a garbled line would never get there).
    let screen = tmux.wait_for("bob's message above the half-typed line", |s| {
        s.iter().any(|l| l == "[lobby] bob: hello from bob")
            && last_row(s) == "ann@lobby> half typed"
    });
    let message = screen
        .iter()
        .position(|l| l == "[lobby] bob: hello from bob")
        .unwrap_or_default();
    let prompt = screen
        .iter()
        .rposition(|l| !l.is_empty())
        .unwrap_or_default();
    assert!(
        message < prompt,
        "the message is not above the prompt: {screen:#?}"
    );
    assert_eq!(screen[prompt], "ann@lobby> half typed", "{screen:#?}");
    assert_eq!(
        screen.iter().filter(|l| l.contains("half typed")).count(),
        1,
        "the typed text appears elsewhere: {screen:#?}"
    );
    // bob has a colour of his own.
    let coloured = tmux.screen(true);
    let row = coloured
        .iter()
        .find(|l| l.contains("hello from bob"))
        .cloned()
        .unwrap_or_default();
    assert!(row.contains('\u{1b}'), "bob's line has no colour: {row:?}");

    // The line, finished, is sent whole.
    tmux.type_text(" and finished");
    tmux.press("Enter");
    bob.expect_line("in lobby ann says:: half typed and finished");
    tmux.wait_for_line("[lobby] ann: half typed and finished");

    // A mistake gets an answer and the chat goes on.
    tmux.type_text("!w nowhere");
    tmux.press("Enter");
    tmux.wait_for_line("error: you are not in nowhere: use !j nowhere to join it");
    tmux.wait_for("the prompt again", |s| last_row(s) == "ann@lobby>");

    assert_clean(&tmux.screen(false));

    // Ctrl-C quits as !q does: metrics printed and reported to the tracker.
    tmux.press("C-c");
    let screen = tmux.wait_for_line("[exit 0]");
    assert!(
        screen.contains(&"-----Performance analytics -----".to_string())
            && screen.contains(
                &"Messages sent = 1 / Messages received = 1 / Total messages = 2".to_string()
            ),
        "{screen:#?}"
    );
    tracker.expect_stderr("metrics ann: sent 1, received 1, total 2");
    bob.expect_line("* ann left lobby");
    bob.close_stdin();
    assert!(bob.wait_exit().success());
    let _ = std::fs::remove_file(&policy);
}
