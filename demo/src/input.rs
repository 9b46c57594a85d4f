//! Where the command loop's lines come from: a line editor on a terminal
//! ([`interactive`](crate::interactive)) or plain standard input
//! ([`scripted`](crate::scripted)).
//!
//! Both read on a thread of their own, one line per [`Ask`]: the loop asks for the next line
//! only once it has handled the previous one, so the prompt it shows is always current (name,
//! group) and a password is asked for at the right moment.

use tokio::sync::mpsc;

/// What kind of line the loop wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AskKind {
    /// A command or a message (added to the history).
    Command,
    /// A username.
    Name,
    /// A password (masked on a terminal, never in the history).
    Password,
}

/// A request for one line.
#[derive(Debug, Clone)]
pub struct Ask {
    pub kind: AskKind,
    /// The prompt as plain text.
    pub prompt: String,
    /// The prompt with colours (same width).
    pub styled: String,
}

impl Ask {
    pub fn new(kind: AskKind, prompt: impl Into<String>) -> Self {
        let prompt = prompt.into();
        Ask {
            kind,
            styled: prompt.clone(),
            prompt,
        }
    }

    pub fn styled(kind: AskKind, (prompt, styled): (String, String)) -> Self {
        Ask {
            kind,
            prompt,
            styled,
        }
    }
}

/// What came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Line(String),
    /// End of input (Ctrl-D, or the end of a script).
    End,
    /// Ctrl-C at the prompt.
    Interrupted,
}

/// The loop's side of an input thread.
#[derive(Debug)]
pub struct Lines {
    asks: std::sync::mpsc::Sender<Ask>,
    lines: mpsc::UnboundedReceiver<Input>,
}

/// The input thread's side: asks to answer, and where answers go.
#[derive(Debug)]
pub struct Reader {
    pub asks: std::sync::mpsc::Receiver<Ask>,
    pub lines: mpsc::UnboundedSender<Input>,
}

/// A connected pair: give the [`Reader`] to an input thread, keep the [`Lines`].
pub fn channel() -> (Lines, Reader) {
    let (ask_tx, ask_rx) = std::sync::mpsc::channel();
    let (line_tx, line_rx) = mpsc::unbounded_channel();
    (
        Lines {
            asks: ask_tx,
            lines: line_rx,
        },
        Reader {
            asks: ask_rx,
            lines: line_tx,
        },
    )
}

impl Lines {
    /// The next line. A gone input thread reads as the end of input.
    pub async fn read(&mut self, ask: Ask) -> Input {
        if self.asks.send(ask).is_err() {
            return Input::End;
        }
        self.lines.recv().await.unwrap_or(Input::End)
    }
}
