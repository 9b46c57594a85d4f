//! The progress bar on stderr: messages delivered out of expected, one bar per phase (ours at
//! full speed, ours at a fixed rate, each baseline). Hidden with `--json` and when stderr is
//! not a terminal.

use std::io::IsTerminal as _;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Cheap to clone; every clone drives the same bar.
#[derive(Debug, Clone)]
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    pub fn new(json: bool) -> Progress {
        let bar = if json || !std::io::stderr().is_terminal() {
            ProgressBar::hidden()
        } else {
            ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr())
        };
        let style = ProgressStyle::with_template(
            "{prefix:>22} [{bar:30}] {human_pos}/{human_len} delivered  {elapsed}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        Progress { bar }
    }

    /// Starts a phase that should deliver `expected` messages.
    pub fn phase(&self, label: impl Into<String>, expected: u64) {
        self.bar.reset();
        self.bar.set_prefix(label.into());
        self.bar.set_length(expected);
        self.bar.set_position(0);
    }

    /// Messages delivered so far in this phase.
    pub fn set(&self, delivered: u64) {
        self.bar.set_position(delivered);
    }

    /// Removes the bar (before the report is printed).
    pub fn clear(&self) {
        self.bar.finish_and_clear();
    }
}
