//! Sharing the terminal between the line editor and the lines that arrive while it runs.
//!
//! rustyline's [`ExternalPrinter`] prints through the editor (clearing the line being typed,
//! printing, drawing it again) while the editor is in raw mode, and writes straight to the
//! terminal otherwise. Its check is racy at both ends of a `readline` call: a line written
//! straight while the editor is starting lands after the new prompt, and one written while it
//! is finishing lands after the accepted line, before its newline. So:
//!
//! - one thread, the only caller of the printer, prints every line, in order;
//! - the input thread tells the [`Screen`] where the editor is: starting (raw mode maybe not
//!   on yet), editing (the editor drew its prompt, so raw mode is on; known from the helper's
//!   `hint` callback, which every redraw calls), finishing (the user pressed Enter; known from
//!   the helper's `validate` callback, still in raw mode), or idle (no `readline` running);
//! - the printing thread writes straight to stdout when idle, through the printer when
//!   editing, and waits while the editor starts or finishes.

use std::io::Write as _;
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use rustyline::ExternalPrinter;

/// Longest time the editor waits, when a line is accepted, for a print in progress to end.
/// A print blocked inside the printer is past its raw-mode check and harmless; only a print
/// about to check could land badly, and it takes microseconds.
const FINISH_GRACE: Duration = Duration::from_millis(100);

/// Longest time a new prompt waits for queued lines to be printed before it (a print stuck
/// inside the printer waits for the next prompt itself).
const START_GRACE: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Phase {
    /// No `readline` running: the terminal is ours.
    #[default]
    Idle,
    /// `readline` called; raw mode may not be on yet.
    Starting,
    /// The editor drew its prompt: raw mode is on.
    Editing,
    /// A line was accepted; the editor is leaving raw mode.
    Finishing,
}

#[derive(Debug, Default)]
struct State {
    phase: Phase,
    /// The printing thread is inside the printer.
    printing: bool,
    /// Lines queued and not yet printed.
    pending: usize,
}

/// Where the editor is, and the queue of lines to print.
#[derive(Debug)]
pub struct Screen {
    state: Mutex<State>,
    changed: Condvar,
    queue: Mutex<mpsc::Sender<String>>,
}

impl Screen {
    /// Starts the printing thread, the only user of `printer` from now on.
    pub fn start(printer: impl ExternalPrinter + Send + 'static) -> std::io::Result<Arc<Screen>> {
        let (tx, rx) = mpsc::channel();
        let screen = Arc::new(Screen {
            state: Mutex::default(),
            changed: Condvar::new(),
            queue: Mutex::new(tx),
        });
        let printing = Arc::clone(&screen);
        std::thread::Builder::new()
            .name("messenger-printer".into())
            .spawn(move || printing.print_lines(rx, printer))?;
        Ok(screen)
    }

    /// Queues a line (without its newline).
    pub fn print(&self, line: String) {
        self.lock().pending += 1;
        let queued = self
            .queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(line);
        if let Err(mpsc::SendError(line)) = queued {
            self.lock().pending -= 1;
            write_line(&line);
        }
    }

    /// Waits (at most `timeout`) until every queued line is printed.
    pub fn flush(&self, timeout: Duration) {
        let state = self.lock();
        let _ = self
            .changed
            .wait_timeout_while(state, timeout, |s| s.pending > 0);
    }

    /// The input thread is about to call `readline`. Lines already queued (the answer to the
    /// last command) are printed first, so they come before the new prompt.
    pub fn editor_starting(&self) {
        let state = self.lock();
        let (mut state, _) = self
            .changed
            .wait_timeout_while(state, START_GRACE, |s| s.pending > 0)
            .unwrap_or_else(|e| e.into_inner());
        state.phase = Phase::Starting;
        self.changed.notify_all();
    }

    /// The editor drew its prompt (called from inside `readline`, in raw mode).
    pub fn editor_drawn(&self) {
        let mut state = self.lock();
        if state.phase == Phase::Starting {
            state.phase = Phase::Editing;
            self.changed.notify_all();
        }
    }

    /// The user accepted the line (called from inside `readline`, still in raw mode): no new
    /// print may start until `readline` returned.
    pub fn editor_finishing(&self) {
        let mut state = self.lock();
        state.phase = Phase::Finishing;
        self.changed.notify_all();
        let _ = self
            .changed
            .wait_timeout_while(state, FINISH_GRACE, |s| s.printing);
    }

    /// `readline` returned.
    pub fn editor_done(&self) {
        self.set_phase(Phase::Idle);
    }

    fn set_phase(&self, phase: Phase) {
        self.lock().phase = phase;
        self.changed.notify_all();
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The printing thread.
    fn print_lines(&self, lines: mpsc::Receiver<String>, mut printer: impl ExternalPrinter) {
        for line in lines {
            let mut state = self.lock();
            loop {
                match state.phase {
                    // Written while holding the lock: `readline` cannot start meanwhile.
                    Phase::Idle => {
                        write_line(&line);
                        break;
                    }
                    Phase::Editing => {
                        state.printing = true;
                        drop(state);
                        let printed = printer.print(format!("{line}\n")).is_ok();
                        state = self.lock();
                        state.printing = false;
                        if !printed {
                            write_line(&line);
                        }
                        break;
                    }
                    Phase::Starting | Phase::Finishing => {
                        state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
                    }
                }
            }
            state.pending -= 1;
            self.changed.notify_all();
        }
    }
}

fn write_line(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records what goes through the editor.
    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<String>>>);

    impl ExternalPrinter for Recorder {
        fn print(&mut self, msg: String) -> rustyline::Result<()> {
            self.0.lock().unwrap_or_else(|e| e.into_inner()).push(msg);
            Ok(())
        }
    }

    impl Recorder {
        fn lines(&self) -> Vec<String> {
            self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
        }
    }

    #[test]
    fn lines_wait_while_the_editor_starts_or_finishes() {
        let recorder = Recorder::default();
        let screen = Screen::start(recorder.clone()).expect("printing thread");
        screen.editor_starting();
        screen.print("early".into());
        // Raw mode may not be on yet: nothing may be printed (a bounded look).
        screen.flush(Duration::from_millis(50));
        assert!(recorder.lines().is_empty());
        screen.editor_drawn();
        screen.flush(Duration::from_secs(10));
        assert_eq!(recorder.lines(), ["early\n"]);

        screen.editor_finishing();
        screen.print("late".into());
        screen.flush(Duration::from_millis(50));
        assert_eq!(
            recorder.lines().len(),
            1,
            "printed while the editor finishes"
        );
        // Once the editor draws a prompt again, the line comes out above it.
        screen.set_phase(Phase::Starting);
        screen.editor_drawn();
        screen.flush(Duration::from_secs(10));
        assert_eq!(recorder.lines(), ["early\n", "late\n"]);
    }
}
