//! Interactive input: rustyline on the terminal, with line editing, history, completion of
//! the `!` commands and a masked password prompt. Incoming lines reach the terminal through the
//! editor's external printer, with the [`Screen`] deciding when, so they appear above the line
//! being typed and leave it intact.

use std::borrow::Cow;
use std::sync::Arc;

use rustyline::completion::Completer;
use rustyline::config::{ColorMode, Config};
use rustyline::error::ReadlineError;
use rustyline::highlight::{CmdKind, Highlighter};
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{Context, Editor, Helper};

use crate::commands::WORDS;
use crate::input::{self, AskKind, Input, Lines, Reader};
use crate::output::Output;
use crate::screen::Screen;

/// Starts the line editor on its own thread. Fails when the terminal cannot be driven (for
/// example `TERM=dumb`); the caller then falls back to scripted mode.
pub fn start() -> anyhow::Result<(Lines, Output)> {
    let config = Config::builder()
        .auto_add_history(false)
        .max_history_size(1000)?
        // Highlighting must always run: it is what masks passwords. The prompt's colours
        // follow NO_COLOR through `Output`.
        .color_mode(ColorMode::Forced)
        .build();
    let mut editor: Editor<ChatHelper, DefaultHistory> = Editor::with_config(config)?;
    let screen = Screen::start(editor.create_external_printer()?)?;
    editor.set_helper(Some(ChatHelper {
        masking: false,
        screen: Arc::clone(&screen),
    }));
    let output = Output::interactive(Arc::clone(&screen));
    let (lines, reader) = input::channel();
    std::thread::Builder::new()
        .name("messenger-input".into())
        .spawn(move || read_lines(editor, &screen, reader))?;
    Ok((lines, output))
}

/// Answers each ask with one line from the editor, until the chat stops asking.
fn read_lines(mut editor: Editor<ChatHelper, DefaultHistory>, screen: &Screen, reader: Reader) {
    while let Ok(ask) = reader.asks.recv() {
        let secret = ask.kind == AskKind::Password;
        if let Some(helper) = editor.helper_mut() {
            helper.masking = secret;
        }
        screen.editor_starting();
        let read = editor.readline(&(ask.prompt.as_str(), ask.styled.as_str()));
        screen.editor_done();
        let input = match read {
            Ok(line) => {
                if ask.kind == AskKind::Command && !line.trim().is_empty() {
                    let _ = editor.add_history_entry(line.as_str());
                }
                Input::Line(line)
            }
            Err(ReadlineError::Interrupted) => Input::Interrupted,
            Err(ReadlineError::Eof) => Input::End,
            Err(e) => {
                eprintln!("messenger: cannot read the terminal: {e}");
                Input::End
            }
        };
        if reader.lines.send(input).is_err() {
            break;
        }
    }
}

/// Completion of command words; masking of passwords; telling the [`Screen`] when the editor
/// has drawn its prompt and when a line is accepted.
#[derive(Debug)]
struct ChatHelper {
    masking: bool,
    screen: Arc<Screen>,
}

impl Completer for ChatHelper {
    type Candidate = String;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        let head = line.get(..pos).unwrap_or(line);
        if self.masking || !head.starts_with('!') || head.contains(char::is_whitespace) {
            return Ok((0, Vec::new()));
        }
        let candidates = WORDS
            .iter()
            .filter(|w| w.starts_with(head))
            .map(|w| format!("{w} "))
            .collect();
        Ok((0, candidates))
    }
}

impl Hinter for ChatHelper {
    type Hint = String;

    /// Called on every redraw, the first one included, in raw mode: the editor is ready for
    /// lines printed above it. No hint is shown.
    fn hint(&self, _line: &str, _pos: usize, _ctx: &Context<'_>) -> Option<String> {
        self.screen.editor_drawn();
        None
    }
}

impl Validator for ChatHelper {
    /// Called when Enter is pressed, still in raw mode: the editor is about to return.
    fn validate(&self, _ctx: &mut ValidationContext<'_>) -> rustyline::Result<ValidationResult> {
        self.screen.editor_finishing();
        Ok(ValidationResult::Valid(None))
    }
}

impl Highlighter for ChatHelper {
    fn highlight<'l>(&self, line: &'l str, _pos: usize) -> Cow<'l, str> {
        if self.masking {
            // One star per character: the width matches for all but double-width characters.
            Cow::Owned("*".repeat(line.chars().count()))
        } else {
            Cow::Borrowed(line)
        }
    }

    fn highlight_char(&self, _line: &str, _pos: usize, kind: CmdKind) -> bool {
        self.masking && kind != CmdKind::MoveCursor
    }
}

impl Helper for ChatHelper {}
