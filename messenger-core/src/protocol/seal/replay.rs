//! The replay window of one receive key: which counters were accepted, as a sliding bitmap
//! (RFC 6479, as WireGuard and IPsec keep it).
//!
//! The window covers the [`REPLAY_WINDOW`] counters up to the highest accepted one. A counter
//! above it is new; a counter inside it is new unless its bit is set; a counter below it is
//! refused, whether it was seen or not. Checking ([`ReplayWindow::check`]) and recording
//! ([`ReplayWindow::accept`]) are separate steps: the caller records a counter only once the
//! datagram's tag has verified, so a forged datagram never moves the window.

use thiserror::Error;

/// How many counters below the highest accepted one (that one included) the window tracks.
pub const REPLAY_WINDOW: u64 = 2048;

const WORD_BITS: u64 = 64;
/// The counters of the window span at most `REPLAY_WINDOW / 64 + 1` words of the ring (the
/// window need not start at a word boundary); one word more would never be read.
const WORDS: usize = (REPLAY_WINDOW / WORD_BITS) as usize + 1;

/// Why a counter is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ReplayError {
    #[error("counter {counter} was already accepted (replay)")]
    Replayed { counter: u64 },
    #[error(
        "counter {counter} is older than the replay window ({REPLAY_WINDOW} counters up to \
         {highest})"
    )]
    TooOld { counter: u64, highest: u64 },
}

/// Accepted counters of one (sender, receiver, view) key. 280 bytes.
#[derive(Clone)]
pub struct ReplayWindow {
    /// Highest accepted counter; `None` before the first.
    highest: Option<u64>,
    /// Bit `c % 64` of word `(c / 64) % WORDS` is set when counter `c` of the window was
    /// accepted. Words of blocks that enter the window are cleared as it slides.
    ring: [u64; WORDS],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for ReplayWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayWindow")
            .field("highest", &self.highest)
            .finish_non_exhaustive()
    }
}

impl ReplayWindow {
    pub fn new() -> Self {
        ReplayWindow {
            highest: None,
            ring: [0; WORDS],
        }
    }

    /// The highest accepted counter.
    pub fn highest(&self) -> Option<u64> {
        self.highest
    }

    /// Whether `counter` would be accepted now. Changes nothing.
    pub fn check(&self, counter: u64) -> Result<(), ReplayError> {
        let Some(highest) = self.highest else {
            return Ok(());
        };
        if counter > highest {
            return Ok(());
        }
        if highest - counter >= REPLAY_WINDOW {
            return Err(ReplayError::TooOld { counter, highest });
        }
        let (word, bit) = Self::position(counter);
        if self.ring[word] & bit != 0 {
            return Err(ReplayError::Replayed { counter });
        }
        Ok(())
    }

    /// Records `counter` as accepted, sliding the window up when it is the new highest.
    /// Only for a counter that [`ReplayWindow::check`] allowed, of an authenticated datagram.
    pub fn accept(&mut self, counter: u64) {
        match self.highest {
            Some(highest) if counter <= highest => {}
            Some(highest) => {
                // Blocks between the old highest's and the new one's enter the window: their
                // words still hold counters a whole ring older, which are below it now.
                let old_block = highest / WORD_BITS;
                let new_block = counter / WORD_BITS;
                let entering = (new_block - old_block).min(WORDS as u64);
                for i in 1..=entering {
                    self.ring[((old_block + i) % WORDS as u64) as usize] = 0;
                }
                self.highest = Some(counter);
            }
            // A new window is all zeros: nothing to clear.
            None => self.highest = Some(counter),
        }
        let (word, bit) = Self::position(counter);
        self.ring[word] |= bit;
    }

    /// [`ReplayWindow::check`], then [`ReplayWindow::accept`]: for tests and callers that
    /// have authenticated the datagram already.
    pub fn check_and_accept(&mut self, counter: u64) -> Result<(), ReplayError> {
        self.check(counter)?;
        self.accept(counter);
        Ok(())
    }

    fn position(counter: u64) -> (usize, u64) {
        let word = ((counter / WORD_BITS) % WORDS as u64) as usize;
        (word, 1u64 << (counter % WORD_BITS))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn a_window_is_280_bytes() {
        // The figure the module documentation gives for a view's memory.
        assert_eq!(std::mem::size_of::<ReplayWindow>(), 280);
    }

    #[test]
    fn a_counter_is_accepted_once() {
        let mut w = ReplayWindow::new();
        assert_eq!(w.check_and_accept(0), Ok(()));
        assert_eq!(
            w.check_and_accept(0),
            Err(ReplayError::Replayed { counter: 0 })
        );
        assert_eq!(w.check_and_accept(1), Ok(()));
        assert_eq!(
            w.check_and_accept(1),
            Err(ReplayError::Replayed { counter: 1 })
        );
    }

    #[test]
    fn out_of_order_inside_the_window_is_accepted_once() {
        let mut w = ReplayWindow::new();
        w.check_and_accept(100).unwrap();
        for c in [3, 99, 50, 0, 64, 63] {
            assert_eq!(w.check_and_accept(c), Ok(()), "counter {c}");
            assert_eq!(
                w.check_and_accept(c),
                Err(ReplayError::Replayed { counter: c })
            );
        }
        assert_eq!(w.highest(), Some(100));
    }

    #[test]
    fn the_window_is_exactly_replay_window_counters_wide() {
        let mut w = ReplayWindow::new();
        let highest = 10 * REPLAY_WINDOW + 17;
        w.check_and_accept(highest).unwrap();
        let oldest = highest - (REPLAY_WINDOW - 1);
        assert_eq!(w.check(oldest), Ok(()));
        assert_eq!(
            w.check(oldest - 1),
            Err(ReplayError::TooOld {
                counter: oldest - 1,
                highest
            })
        );
        assert!(w.check(0).is_err());
    }

    #[test]
    fn sliding_forgets_nothing_inside_and_keeps_nothing_outside() {
        // Accept every third counter while sliding by odd steps, and compare with a set.
        let mut w = ReplayWindow::new();
        let mut seen = BTreeSet::new();
        let mut c = 0u64;
        for step in 0..5_000u64 {
            c += 1 + (step * 7919) % 300;
            for back in [0, 1, 65, 700, 2047, 2048, 3000] {
                let probe = c.saturating_sub(back);
                // A seen counter that fell out of the window is too old, not a replay.
                let expected = match w.highest() {
                    Some(highest) if probe + REPLAY_WINDOW <= highest => Err(ReplayError::TooOld {
                        counter: probe,
                        highest,
                    }),
                    _ if seen.contains(&probe) => Err(ReplayError::Replayed { counter: probe }),
                    _ => Ok(()),
                };
                assert_eq!(w.check(probe), expected, "probe {probe} at {c}");
                if expected.is_ok() && probe % 3 == 0 {
                    w.accept(probe);
                    seen.insert(probe);
                }
            }
        }
    }

    #[test]
    fn a_jump_of_more_than_the_ring_clears_it() {
        let mut w = ReplayWindow::new();
        for c in 0..REPLAY_WINDOW {
            w.check_and_accept(c).unwrap();
        }
        let far = 5 * REPLAY_WINDOW + 3;
        w.check_and_accept(far).unwrap();
        // Every counter of the new window except `far` is fresh, although the ring's words
        // held the old window's bits.
        for c in (far - (REPLAY_WINDOW - 1))..far {
            assert_eq!(w.check(c), Ok(()), "counter {c}");
        }
    }

    #[test]
    fn the_top_of_the_counter_range_works() {
        let mut w = ReplayWindow::new();
        w.check_and_accept(u64::MAX - 1).unwrap();
        w.check_and_accept(u64::MAX).unwrap();
        assert_eq!(
            w.check(u64::MAX),
            Err(ReplayError::Replayed { counter: u64::MAX })
        );
        assert_eq!(w.check(u64::MAX - 5), Ok(()));
    }
}
