//! Scripted input: standard input read line by line (a pipe, a file, a test). Prompts for a
//! name or a password go to stderr, so stdout holds only messages, notices and answers.

use std::io::{BufRead, IsTerminal, Write};

use crate::input::{self, AskKind, Input, Lines, Reader};
use crate::output::Output;

/// Starts reading standard input on its own thread.
pub fn start() -> std::io::Result<(Lines, Output)> {
    let (lines, reader) = input::channel();
    std::thread::Builder::new()
        .name("messenger-input".into())
        .spawn(move || read_lines(reader))?;
    Ok((lines, Output::scripted()))
}

fn read_lines(reader: Reader) {
    let stdin = std::io::stdin();
    // Typed answers end the prompt's line with their echo; piped ones do not.
    let end_of_prompt = if stdin.is_terminal() { "" } else { "\n" };
    let mut stdin = stdin.lock();
    let mut buf = Vec::new();
    while let Ok(ask) = reader.asks.recv() {
        if ask.kind != AskKind::Command {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "{}{end_of_prompt}", ask.prompt).and_then(|()| err.flush());
        }
        buf.clear();
        let input = match stdin.read_until(b'\n', &mut buf) {
            Ok(0) => Input::End,
            Ok(_) => {
                // Invalid UTF-8 is replaced rather than refused: a script's line is still a line.
                let line = String::from_utf8_lossy(&buf);
                Input::Line(line.trim_end_matches(['\n', '\r']).to_string())
            }
            Err(e) => {
                eprintln!("messenger: cannot read standard input: {e}");
                Input::End
            }
        };
        if reader.lines.send(input).is_err() {
            break;
        }
    }
}
