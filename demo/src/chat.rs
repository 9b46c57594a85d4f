//! `messenger chat`: connect (asking for a name, hosting a tracker if none answers), then the
//! command loop, the same for a person at a terminal and for a script, then quit with the
//! metrics.
//!
//! The loop asks its input for one line at a time, handles it, and asks again; a Ctrl-C at
//! any point ends it, and every way out (`!q`, end of input, Ctrl-C) goes through [`finish`]:
//! the metrics are reported to the tracker and printed.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use messenger_core::{
    Client, ClientConfig, ClientError, ErrorCode, Order, Tracker, TrackerHandle, TrackerTrust,
};
use tracing_subscriber::EnvFilter;

use crate::cli::{ChatArgs, HostTracker};
use crate::commands::{self, Command, Join, Password, HELP};
use crate::handler::{ChatHandler, ChatState, OwnMessages};
use crate::input::{Ask, AskKind, Input, Lines};
use crate::output::{self, Output};
use crate::signal::Interrupts;
use crate::{interactive, scripted};

/// How long leaving a group waits for this chat's messages to reach everyone first.
const LEAVE_FLUSH: Duration = Duration::from_secs(2);

/// Runs a chat until it quits.
pub async fn run(args: ChatArgs) -> anyhow::Result<()> {
    let mut interrupts = Interrupts::catch().context("cannot catch Ctrl-C")?;
    let (mut lines, output) = open_input()?;
    init_logging(&output);
    let result = chat(&args, &mut lines, &output, &mut interrupts).await;
    // Lines still queued for the screen are printed before the program exits.
    output.flush();
    result
}

async fn chat(
    args: &ChatArgs,
    lines: &mut Lines,
    output: &Output,
    interrupts: &mut Interrupts,
) -> anyhow::Result<()> {
    let state = Arc::new(ChatState::default());

    let connected = tokio::select! {
        connected = connect(args, lines, output, &state) => connected?,
        () = interrupts.next() => {
            output.notice("interrupted before connecting");
            return Ok(());
        }
    };
    let mut chat = Chat {
        name: connected.client.username().to_string(),
        client: connected.client,
        output: output.clone(),
        state,
        current: None,
        default_order: args.order.into(),
    };
    output.notice(&format!(
        "connected to the tracker at {} as {}; type !help for the commands",
        connected.tracker, chat.name
    ));

    let exit = chat.run(lines, interrupts).await;
    if exit != Exit::Interrupted {
        tokio::select! {
            () = chat.drain(args.quit_wait()) => {}
            () = interrupts.next() => output.notice("not waiting for delivery any longer"),
        }
    }
    finish(chat, connected.hosted).await;
    Ok(())
}

/// A terminal gets the line editor; anything else is read as a script.
fn open_input() -> anyhow::Result<(Lines, Output)> {
    if std::io::stdin().is_terminal() && std::io::stdout().is_terminal() {
        match interactive::start() {
            Ok(pair) => return Ok(pair),
            Err(e) => {
                eprintln!("messenger: no line editing on this terminal ({e}); reading plain lines")
            }
        }
    }
    scripted::start().context("cannot read standard input")
}

/// Log lines go through the chat's printer; only errors unless RUST_LOG says otherwise (the
/// chat shows what matters as notices).
fn init_logging(output: &Output) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("error"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(output.clone())
        .with_ansi(false)
        .try_init();
}

struct Connected {
    client: Client,
    tracker: SocketAddr,
    /// The tracker this chat hosts, if any.
    hosted: Option<TrackerHandle>,
}

/// Registers with the tracker under a name, hosting a tracker first when asked to (or, with
/// `auto`, when none answers).
async fn connect(
    args: &ChatArgs,
    lines: &mut Lines,
    output: &Output,
    state: &Arc<ChatState>,
) -> anyhow::Result<Connected> {
    let mut tracker = args.tracker;
    let mut hosted = None;
    let mut tried_hosting = false;
    let mut trust = args.trust();
    if args.host_tracker == HostTracker::Always {
        let handle = host(tracker, args).await?;
        tracker = handle.local_addr();
        output.notice(&format!(
            "hosting a tracker on {tracker} (it stops when this chat quits)"
        ));
        trust = hosted_trust(&handle, output, trust);
        hosted = Some(handle);
        tried_hosting = true;
    }
    let mut name = args.name.clone();
    // A name given on the command line of a script is not replaced by the script's next line.
    let mut name_is_fixed = args.name.is_some() && !output.is_interactive();
    loop {
        let username = match name.take() {
            Some(n) => n,
            None => match ask_name(lines, output).await {
                Some(n) => n,
                None => bail!("no username given"),
            },
        };
        let handler = ChatHandler::new(&username, output.clone(), state.clone());
        let mut config = ClientConfig::new(tracker, username.as_str()).with_trust(trust.clone());
        config.udp_bind = args.udp;
        config.group.suspect_timeout = args.suspect_after();
        match Client::connect(config, handler).await {
            Ok(client) => {
                return Ok(Connected {
                    client,
                    tracker,
                    hosted,
                })
            }
            Err(ClientError::TrackerUnavailable(why)) => {
                if args.host_tracker != HostTracker::Auto || tried_hosting {
                    bail!(
                        "no tracker answers at {tracker} ({why}); start one with `messenger \
                         tracker --bind {tracker}`, or let the chat host one (--host-tracker auto)"
                    );
                }
                tried_hosting = true;
                match Tracker::spawn(tracker, args.hosted_tracker()).await {
                    Ok(handle) => {
                        tracker = handle.local_addr();
                        output.notice(&format!(
                            "no tracker answered at {}; hosting one on {tracker} (it stops \
                             when this chat quits)",
                            args.tracker
                        ));
                        trust = hosted_trust(&handle, output, trust);
                        hosted = Some(handle);
                    }
                    // Another chat started one meanwhile: join that one.
                    Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {}
                    Err(e) => bail!(
                        "no tracker answers at {tracker} ({why}), and hosting one there failed: {e}"
                    ),
                }
                name = Some(username);
            }
            Err(e)
                if matches!(
                    e.code(),
                    Some(ErrorCode::UsernameTaken | ErrorCode::InvalidName)
                ) =>
            {
                if name_is_fixed {
                    bail!("{e}");
                }
                name_is_fixed = false;
                output.error(&format!("{e}; choose another"));
            }
            // The configuration or the machine (the --udp address) is at fault, not the tracker.
            Err(e @ (ClientError::Config(_) | ClientError::Io(_))) => bail!("{e}"),
            Err(e) => bail!("cannot register with the tracker at {tracker}: {e}"),
        }
    }
}

async fn host(addr: SocketAddr, args: &ChatArgs) -> anyhow::Result<TrackerHandle> {
    Tracker::spawn(addr, args.hosted_tracker())
        .await
        .with_context(|| format!("cannot host a tracker on {addr}"))
}

/// The trust of a chat in the tracker it hosts: the hosted tracker's own fingerprint (it is
/// this process's tracker; nothing to learn on first use), unless the user pinned one or
/// chose insecure. Says the fingerprint, for the others who will connect.
fn hosted_trust(handle: &TrackerHandle, output: &Output, trust: TrackerTrust) -> TrackerTrust {
    let Some(fingerprint) = handle.fingerprint() else {
        output.notice("the hosted tracker is insecure (plain TCP, no TLS)");
        return trust;
    };
    output.notice(&format!(
        "the hosted tracker's fingerprint is {fingerprint}"
    ));
    match trust {
        TrackerTrust::FirstUse { .. } => TrackerTrust::Fingerprint(fingerprint),
        other => other,
    }
}

async fn ask_name(lines: &mut Lines, output: &Output) -> Option<String> {
    loop {
        match lines
            .read(Ask::new(AskKind::Name, "Enter your username: "))
            .await
        {
            Input::Line(line) if line.trim().is_empty() => {
                output.error("a username cannot be empty");
            }
            Input::Line(line) => return Some(line.trim().to_string()),
            Input::End | Input::Interrupted => return None,
        }
    }
}

/// Why the command loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exit {
    Quit,
    EndOfInput,
    Interrupted,
}

/// The command loop's state.
struct Chat {
    client: Client,
    name: String,
    output: Output,
    state: Arc<ChatState>,
    /// The group plain lines go to.
    current: Option<String>,
    /// The order of groups this chat creates.
    default_order: Order,
}

impl Chat {
    async fn run(&mut self, lines: &mut Lines, interrupts: &mut Interrupts) -> Exit {
        loop {
            // The tracker may have removed this chat from the current group meanwhile (the
            // handler said so).
            if self
                .current
                .as_deref()
                .is_some_and(|g| !self.state.is_member(g))
            {
                self.current = None;
            }
            let prompt = output::prompt(
                &self.name,
                self.current.as_deref(),
                self.output.is_coloured(),
            );
            let input = tokio::select! {
                input = lines.read(Ask::styled(AskKind::Command, prompt)) => input,
                () = interrupts.next() => return Exit::Interrupted,
            };
            let line = match input {
                Input::Line(line) => line,
                Input::End => return Exit::EndOfInput,
                Input::Interrupted => return Exit::Interrupted,
            };
            let quit = tokio::select! {
                quit = self.handle(&line, lines) => quit,
                () = interrupts.next() => return Exit::Interrupted,
            };
            if quit {
                return Exit::Quit;
            }
        }
    }

    /// Handles one line; returns whether to quit.
    async fn handle(&mut self, line: &str, lines: &mut Lines) -> bool {
        let command = match commands::parse(line) {
            Ok(c) => c,
            Err(e) => {
                self.output.error(&e.to_string());
                return false;
            }
        };
        match command {
            Command::Nothing => {}
            Command::Say(text) => self.say(text).await,
            Command::Groups => self.list_groups().await,
            Command::Members(group) => self.list_members(&group).await,
            Command::Join(join) => self.join(join, lines).await,
            Command::Write(group) => self.write_to(group),
            Command::Leave(group) => self.leave(&group).await,
            Command::Stats => self.output.info(&self.client.metrics().to_string()),
            Command::Help => self.output.info(&help_text()),
            Command::Quit => return true,
        }
        false
    }

    async fn say(&mut self, text: String) {
        let Some(group) = self.current.clone() else {
            if self.state.groups().is_empty() {
                self.output
                    .error("no group chosen: use !j <group> to join one");
            } else {
                self.output.error("no group chosen: use !w <group>");
            }
            return;
        };
        match self.client.send(&group, text).await {
            Ok(seq) => self.state.sent(&group, seq),
            Err(e) => {
                if matches!(e, ClientError::NotJoined(_)) {
                    self.state.gone(&group);
                    self.current = None;
                }
                self.output.error(&describe(&e));
            }
        }
    }

    async fn list_groups(&self) {
        let mut groups = match self.client.groups().await {
            Ok(g) => g,
            Err(e) => return self.output.error(&describe(&e)),
        };
        if groups.is_empty() {
            return self.output.info("no groups yet: !j <group> creates one");
        }
        groups.sort_by(|a, b| a.name.cmp(&b.name));
        let mut text = String::from("groups:");
        for g in groups {
            let mark = if self.current.as_deref() == Some(g.name.as_str()) {
                ", you write here"
            } else if self.state.is_member(&g.name) {
                ", you are in it"
            } else {
                ""
            };
            text.push_str(&format!(
                "\n  {} ({} order, {} member{}{mark})",
                g.name,
                g.order,
                g.members,
                if g.members == 1 { "" } else { "s" },
            ));
        }
        self.output.info(&text);
    }

    async fn list_members(&self, group: &str) {
        let view = match self.client.members(group).await {
            Ok(v) => v,
            Err(e) => return self.output.error(&describe(&e)),
        };
        let mut text = format!("members of {group} ({} order):", view.order);
        for m in &view.members {
            let you = if m.name == self.name { " (you)" } else { "" };
            text.push_str(&format!("\n  {} {}{you}", m.name, m.addr));
        }
        self.output.info(&text);
    }

    async fn join(&mut self, join: Join, lines: &mut Lines) {
        let Join {
            group,
            order,
            password,
        } = join;
        if self.state.is_member(&group) {
            return self.output.error(&format!(
                "you are already in {group}: use !w {group} to write to it"
            ));
        }
        // Without an explicit order, an existing group is joined with whatever order it has.
        let mut order_given = order.is_some();
        let mut order = order.unwrap_or(self.default_order);
        let mut password = match password {
            Password::None => None,
            Password::Given(p) => Some(p),
            Password::Ask => match self.ask_password(&group, lines).await {
                Some(p) => Some(p),
                None => return,
            },
        };
        loop {
            match self.client.join(&group, order, password.as_deref()).await {
                Ok(view) => {
                    // The handler announces the join (with the members) in delivery order.
                    self.state.joined(&group, view.order);
                    self.current = Some(group);
                    return;
                }
                // The library asks for an order on every join; the tracker refuses the other
                // one for an existing group, which is then joined with the order it has.
                Err(e) if e.code() == Some(ErrorCode::OrderMismatch) && !order_given => {
                    order = match order {
                        Order::Fifo => Order::Total,
                        Order::Total => Order::Fifo,
                    };
                    order_given = true;
                }
                // A person may not know the group needs a password: ask once.
                Err(e)
                    if e.code() == Some(ErrorCode::AccessDenied)
                        && password.is_none()
                        && self.output.is_interactive() =>
                {
                    self.output.error(&describe(&e));
                    match self.ask_password(&group, lines).await {
                        Some(p) => password = Some(p),
                        None => return,
                    }
                }
                Err(e) => return self.output.error(&describe(&e)),
            }
        }
    }

    async fn ask_password(&self, group: &str, lines: &mut Lines) -> Option<String> {
        let ask = Ask::new(
            AskKind::Password,
            format!("Password for {group} (empty line cancels): "),
        );
        match lines.read(ask).await {
            Input::Line(p) if !p.is_empty() => Some(p),
            _ => {
                self.output.notice(&format!("not joining {group}"));
                None
            }
        }
    }

    fn write_to(&mut self, group: String) {
        if self.state.is_member(&group) {
            self.current = Some(group);
        } else {
            self.output.error(&format!(
                "you are not in {group}: use !j {group} to join it"
            ));
        }
    }

    async fn leave(&mut self, group: &str) {
        if !self.state.is_member(group) {
            return self.output.error(&format!("you are not in {group}"));
        }
        // Let what this chat just said reach everyone before it goes.
        let _ = self.client.flush(LEAVE_FLUSH).await;
        match self.client.leave(group).await {
            Ok(()) => {
                self.state.gone(group);
                let was_current = self.current.as_deref() == Some(group);
                if was_current {
                    self.current = None;
                }
                if was_current && !self.state.groups().is_empty() {
                    self.output.notice(&format!(
                        "you left {group}; use !w <group> to choose where your lines go"
                    ));
                } else {
                    self.output.notice(&format!("you left {group}"));
                }
            }
            Err(e) => self.output.error(&describe(&e)),
        }
    }

    /// Waits (at most `wait`) until everything this chat sent is delivered: stable at every
    /// member, and, in total-order groups, delivered back here in the agreed order.
    async fn drain(&self, wait: Duration) {
        let deadline = tokio::time::Instant::now() + wait;
        let stable = self.client.flush(wait).await.unwrap_or(false);
        let mut own = self.state.watch_own();
        let back = tokio::time::timeout_at(deadline, own.wait_for(OwnMessages::all_delivered))
            .await
            .is_ok_and(|r| r.is_ok());
        if !(stable && back) {
            self.output.notice(&format!(
                "gave up waiting after {:.1} s: some of your messages may not have reached \
                 everyone",
                wait.as_secs_f64()
            ));
        }
    }
}

/// Reports the metrics to the tracker, stops the hosted tracker, prints the metrics.
async fn finish(chat: Chat, hosted: Option<TrackerHandle>) {
    chat.state.quitting();
    let metrics = match chat.client.quit().await {
        Ok(m) => m,
        Err(e) => {
            chat.output.error(&format!(
                "could not report the metrics to the tracker: {}",
                describe(&e)
            ));
            chat.client.metrics()
        }
    };
    if let Some(handle) = hosted {
        chat.output.notice("stopping the tracker this chat hosted");
        handle.shutdown().await;
    }
    chat.output.info(&metrics.to_string());
}

/// A client error as a one-line answer.
fn describe(e: &ClientError) -> String {
    match e {
        ClientError::Rejected { message, .. } => message.clone(),
        ClientError::TrackerUnavailable(why) => {
            format!("the tracker is unreachable ({why}); try again once it is back")
        }
        ClientError::Closed => "the client has stopped".to_string(),
        ClientError::NotJoined(group) => {
            format!("you are not in {group}: use !j {group} to join it")
        }
        ClientError::TooLarge { len, limit } => {
            format!("message too long: {len} bytes, the limit is {limit}")
        }
        other => other.to_string(),
    }
}

fn help_text() -> String {
    let width = HELP.iter().map(|(c, _)| c.len()).max().unwrap_or(0);
    let mut text = String::from("commands:");
    for (command, what) in HELP {
        text.push_str(&format!("\n  {command:<width$}  {what}"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_lists_every_command() {
        let help = help_text();
        for word in commands::WORDS {
            assert!(help.contains(&format!("\n  {word}")), "{word} missing");
        }
    }

    #[test]
    fn errors_are_one_line() {
        let errors = [
            ClientError::TrackerUnavailable("connection closed".into()),
            ClientError::NotJoined("lobby".into()),
            ClientError::TooLarge {
                len: 70_000,
                limit: 60_000,
            },
            ClientError::Rejected {
                code: ErrorCode::AccessDenied,
                message: "wrong password for \"ops\"".into(),
            },
        ];
        for e in errors {
            let text = describe(&e);
            assert!(!text.is_empty() && !text.contains('\n'), "{text:?}");
        }
    }
}
