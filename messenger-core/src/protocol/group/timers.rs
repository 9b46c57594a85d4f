//! The group's deadlines, one slot per timer, as quinn-proto's `TimerTable`.

use std::time::Instant;

/// A deadline of the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Timer {
    /// Acknowledgements owed to peers go out (`ack_delay` after the first one became due).
    Ack,
    /// Session status to every member, and the silence check (every `status_interval`).
    Status,
    /// Repairs: NACKs, repeated proposals, status to members behind on our stream (every
    /// retransmission timeout while anything waits for a repeat).
    Repair,
    /// Not a wake-up of its own: the repair tick runs the slower repairs (finals members
    /// lack, session status, the resolution round's repeats) once this has passed, at most
    /// every `repair_interval`.
    SlowRepair,
}

impl Timer {
    const COUNT: usize = 4;

    /// The timers [`Group::poll_timeout`](super::Group::poll_timeout) reports.
    const WAKE_UPS: [Timer; 3] = [Timer::Status, Timer::Ack, Timer::Repair];
}

/// One optional deadline per [`Timer`].
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct TimerTable {
    at: [Option<Instant>; Timer::COUNT],
}

impl TimerTable {
    pub(super) fn set(&mut self, timer: Timer, at: Instant) {
        self.at[timer as usize] = Some(at);
    }

    /// Sets the timer unless it is already running (an earlier deadline stays).
    pub(super) fn set_if_stopped(&mut self, timer: Timer, at: Instant) {
        self.at[timer as usize].get_or_insert(at);
    }

    pub(super) fn get(&self, timer: Timer) -> Option<Instant> {
        self.at[timer as usize]
    }

    pub(super) fn stop(&mut self, timer: Timer) {
        self.at[timer as usize] = None;
    }

    pub(super) fn is_running(&self, timer: Timer) -> bool {
        self.at[timer as usize].is_some()
    }

    /// True when the timer runs and its deadline is at or before `now`.
    pub(super) fn is_expired(&self, timer: Timer, now: Instant) -> bool {
        self.at[timer as usize].is_some_and(|t| t <= now)
    }

    /// The earliest deadline that wakes the group.
    pub(super) fn next_wake_up(&self) -> Option<Instant> {
        Timer::WAKE_UPS.iter().filter_map(|&t| self.get(t)).min()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_earliest_wake_up_counts_and_slow_repair_wakes_nobody() {
        let t0 = crate::testing::epoch();
        let ms = Duration::from_millis;
        let mut timers = TimerTable::default();
        assert_eq!(timers.next_wake_up(), None);
        timers.set(Timer::SlowRepair, t0);
        assert_eq!(timers.next_wake_up(), None, "a rate limit, not a wake-up");
        timers.set(Timer::Status, t0 + ms(100));
        timers.set_if_stopped(Timer::Ack, t0 + ms(5));
        timers.set_if_stopped(Timer::Ack, t0 + ms(9));
        assert_eq!(
            timers.get(Timer::Ack),
            Some(t0 + ms(5)),
            "the first deadline stays"
        );
        assert_eq!(timers.next_wake_up(), Some(t0 + ms(5)));
        assert!(!timers.is_expired(Timer::Ack, t0 + ms(4)));
        assert!(timers.is_expired(Timer::Ack, t0 + ms(5)));
        timers.stop(Timer::Ack);
        assert!(!timers.is_running(Timer::Ack));
        assert_eq!(timers.next_wake_up(), Some(t0 + ms(100)));
    }
}
