//! What the chat prints and where: message lines, notices, answers, errors, in plain text for
//! scripts or in colour above the prompt for a person.
//!
//! Scripted mode writes messages, notices (`* ...`) and answers to stdout, one line each, and
//! errors and log lines to stderr. Interactive mode sends every line to the [`Screen`], which
//! prints it through the line editor's external printer: the editor clears the line being
//! typed, prints, and draws it again, so what arrives never garbles what is being typed.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use anstyle::{AnsiColor, Effects, Style};
use messenger_core::Message;

use crate::screen::Screen;

/// Where a line goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stream {
    Out,
    Err,
}

/// The chat's printer; cheap to clone, usable from any thread.
#[derive(Clone)]
pub struct Output {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Output")
            .field("interactive", &self.is_interactive())
            .finish_non_exhaustive()
    }
}

struct Inner {
    sink: Sink,
    colour: bool,
}

enum Sink {
    /// Plain lines on stdout and stderr.
    Std,
    /// Through the line editor, above the line being typed.
    Screen(Arc<Screen>),
}

impl Output {
    /// Plain lines for scripts.
    pub fn scripted() -> Self {
        Output {
            inner: Arc::new(Inner {
                sink: Sink::Std,
                colour: false,
            }),
        }
    }

    /// Lines printed above the prompt, in colour unless `NO_COLOR` is set.
    pub fn interactive(screen: Arc<Screen>) -> Self {
        let colour = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        Output {
            inner: Arc::new(Inner {
                sink: Sink::Screen(screen),
                colour,
            }),
        }
    }

    /// Waits (briefly) until every line is on the screen: before the program exits.
    pub fn flush(&self) {
        if let Sink::Screen(screen) = &self.inner.sink {
            screen.flush(Duration::from_secs(2));
        }
    }

    /// Whether lines (and the prompt) carry colours.
    pub fn is_coloured(&self) -> bool {
        self.inner.colour
    }

    pub fn is_interactive(&self) -> bool {
        matches!(self.inner.sink, Sink::Screen(_))
    }

    /// A delivered message: `in <group> <sender> says:: <text>` in scripted mode;
    /// `[group] sender: text` with one colour per sender in interactive mode (own messages
    /// dimmed: they come back in the group's order, which shows where they landed).
    pub fn message(&self, m: &Message) {
        let text = one_line(&m.text());
        let line = if self.is_interactive() {
            let name = if self.inner.colour && !m.own {
                paint(sender_style(&m.sender), &m.sender)
            } else {
                m.sender.to_string()
            };
            let line = format!("[{}] {name}: {text}", m.group);
            if m.own {
                self.paint(Style::new().effects(Effects::DIMMED), &line)
            } else {
                line
            }
        } else {
            format!("in {} {} says:: {text}", m.group, m.sender)
        };
        self.emit(Stream::Out, line);
    }

    /// A notice (joins, leaves, connection events): one line starting with `*`.
    pub fn notice(&self, text: &str) {
        let line = format!("* {}", one_line(text));
        let line = self.paint(AnsiColor::Yellow.on_default(), &line);
        self.emit(Stream::Out, line);
    }

    /// The answer to a command (may be several lines).
    pub fn info(&self, text: &str) {
        self.emit(Stream::Out, text.to_string());
    }

    /// A mistake or a failure, on one line.
    pub fn error(&self, text: &str) {
        let line = format!("error: {}", one_line(text));
        let line = self.paint(AnsiColor::Red.on_default().bold(), &line);
        self.emit(Stream::Err, line);
    }

    /// A log line (from `tracing`), as formatted by the subscriber.
    fn log(&self, text: String) {
        self.emit(Stream::Err, text);
    }

    fn paint(&self, style: Style, text: &str) -> String {
        if self.inner.colour {
            paint(style, text)
        } else {
            text.to_string()
        }
    }

    fn emit(&self, stream: Stream, line: String) {
        match &self.inner.sink {
            Sink::Std => write_std(stream, &line),
            Sink::Screen(screen) => screen.print(line),
        }
    }
}

fn write_std(stream: Stream, line: &str) {
    // One locked write per line: lines from the callback thread and the command loop never
    // interleave. A closed pipe is not worth dying for.
    let _ = match stream {
        Stream::Out => {
            let mut out = std::io::stdout().lock();
            writeln!(out, "{line}").and_then(|()| out.flush())
        }
        Stream::Err => writeln!(std::io::stderr().lock(), "{line}"),
    };
}

fn paint(style: Style, text: &str) -> String {
    format!("{style}{text}{style:#}")
}

/// Text from the network on one line: control characters (newlines, escape sequences that
/// could drive the terminal) are shown escaped.
pub fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            let _ = write!(out, "{}", c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

const SENDER_COLOURS: [AnsiColor; 12] = [
    AnsiColor::Cyan,
    AnsiColor::Green,
    AnsiColor::Magenta,
    AnsiColor::Blue,
    AnsiColor::Yellow,
    AnsiColor::Red,
    AnsiColor::BrightCyan,
    AnsiColor::BrightGreen,
    AnsiColor::BrightMagenta,
    AnsiColor::BrightBlue,
    AnsiColor::BrightYellow,
    AnsiColor::BrightRed,
];

/// One colour per sender, the same in every run and every chat (FNV-1a of the name).
pub fn sender_style(name: &str) -> Style {
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let colour = SENDER_COLOURS[(hash % SENDER_COLOURS.len() as u64) as usize];
    colour.on_default().bold()
}

/// The prompt: `name@group> `, plain and styled (same width).
pub fn prompt(name: &str, group: Option<&str>, colour: bool) -> (String, String) {
    let raw = match group {
        Some(g) => format!("{name}@{g}> "),
        None => format!("{name}> "),
    };
    if !colour {
        return (raw.clone(), raw);
    }
    let bold = Style::new().bold();
    let styled = match group {
        Some(g) => format!(
            "{}@{}> ",
            paint(bold, name),
            paint(AnsiColor::Cyan.on_default(), g)
        ),
        None => format!("{}> ", paint(bold, name)),
    };
    (raw, styled)
}

/// Lets `tracing` write through the chat's printer (log lines must not garble the prompt
/// either).
impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Output {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> LogWriter {
        LogWriter {
            output: self.clone(),
            buf: Vec::new(),
        }
    }
}

/// Collects one log event and prints it when dropped.
#[derive(Debug)]
pub struct LogWriter {
    output: Output,
    buf: Vec<u8>,
}

impl std::io::Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.buf);
        let text = text.trim_end();
        if !text.is_empty() {
            self.output.log(text.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_text_stays_on_one_line() {
        assert_eq!(one_line("plain text"), "plain text");
        assert_eq!(one_line("two\nlines"), "two\\nlines");
        assert_eq!(one_line("\u{1b}[2Jboom"), "\\u{1b}[2Jboom");
        assert_eq!(one_line("tab\there"), "tab\\there");
        assert_eq!(one_line("héllo ✓"), "héllo ✓");
    }

    #[test]
    fn sender_colours_are_stable_and_spread() {
        assert_eq!(sender_style("ann"), sender_style("ann"));
        let names = ["ann", "bob", "carl", "dora", "eve", "fay"];
        let distinct: std::collections::HashSet<String> = names
            .iter()
            .map(|n| format!("{}", sender_style(n)))
            .collect();
        assert!(distinct.len() >= 4, "{distinct:?}");
    }

    #[test]
    fn prompt_has_the_same_width_plain_and_styled() {
        let (raw, styled) = prompt("ann", Some("lobby"), true);
        assert_eq!(raw, "ann@lobby> ");
        let stripped: String = {
            // Drop the escape sequences: ESC [ ... m.
            let mut out = String::new();
            let mut chars = styled.chars();
            while let Some(c) = chars.next() {
                if c == '\u{1b}' {
                    for d in chars.by_ref() {
                        if d == 'm' {
                            break;
                        }
                    }
                } else {
                    out.push(c);
                }
            }
            out
        };
        assert_eq!(stripped, raw);
        assert_eq!(prompt("ann", None, false).0, "ann> ");
    }
}
